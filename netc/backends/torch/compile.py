"""Compiled inference: `netc build --optimize inference --compile [onnxruntime|inductor]`,
`Network.build(optimize="inference", compile=True)`, `netc.optimize(module, "inference", compile=True)`.

Both backends start from netc's own rewrites (`optimize.py`: batch norms folded into convs,
dropout and identities gone, in-place activations, channels_last) and have a dynamic batch:

- `onnxruntime` (the default where the package is installed): the rewritten graph exported to
  ONNX (opset 17), run by an onnxruntime CPU session with every graph optimisation;
- `inductor`: the graph exported (`torch.export`) and compiled ahead of time by inductor with
  freezing (weights as constants) into an AOTInductor package (`.pt2`: a shared library and the
  weights) loaded with `aoti_load_package`.

The artefact is cached on disk (`$NETC_CACHE_DIR`, default `~/.cache/netc/compiled`) under a hash
of the graph, the weights, the input shape, the backend and the torch version, so a second build
of the same weights loads it (well under a second) instead of compiling again.

Why onnxruntime by default (benchmarks/bench_inference.py, RESULTS.md; one interleaved run on the
shared 2-core CPU under a load average of ~19): resnet50 at batch 1, onnxruntime ran in 0.67 s,
inductor's JIT `torch.compile` with freezing + channels_last in 1.8 s, this AOTInductor package in
4.8 s (no faster than the eager rewritten module: the AOT package with a dynamic batch did not get
the JIT path's gains here), eager torchvision in 10.6 s. Compiling took 21 s against 186 s. Much of
onnxruntime's lead there is its thread pool coping with the oversubscribed cores better than
torch's OpenMP; on an idle machine the order may differ, and the backend can be chosen.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from netc.backends.torch.program import plain_tuple_outputs, returned_type
from netc.errors import error

MAX_BATCH = 4096  # the exported program's batch dimension ranges over 1..MAX_BATCH
BACKENDS = ("inductor", "onnxruntime")


def default_backend() -> str:
    """onnxruntime where it is installed (the faster of the two as measured, see above), else inductor."""
    import importlib.util

    return "onnxruntime" if importlib.util.find_spec("onnxruntime") else "inductor"


class CompiledModule(nn.Module):
    """An AOTInductor package behind a module's call; eval-only, inputs NCHW of the build's shape."""

    def __init__(self, runner, package: Path, input_shape: tuple[int, ...], seconds: float, cached: bool,
                 backend: str, outputs: type | None = None):
        super().__init__()
        self.runner, self.package, self.input_shape = runner, package, tuple(input_shape)
        self.compile_seconds, self.from_cache, self.backend = seconds, cached, backend
        self.outputs = outputs  # the namedtuple of a spec's several outputs, as the eager module returns

    def forward(self, x):
        out = self.runner(x)
        if isinstance(out, (list, tuple)):
            return self.outputs(*out) if self.outputs is not None else out[0]
        return out

    def extra_repr(self) -> str:
        return f"backend={self.backend}, package={self.package}, input_shape={self.input_shape}"


def cache_dir() -> Path:
    return Path(os.environ.get("NETC_CACHE_DIR") or Path.home() / ".cache" / "netc" / "compiled")


def cache_key(gm: torch.fx.GraphModule, input_shape, backend: str = "inductor") -> str:
    """A hash of everything the compiled package depends on."""
    h = hashlib.sha256()
    h.update(f"{torch.__version__}|{tuple(input_shape)}|{MAX_BATCH}|{backend}|freezing|".encode())
    h.update(gm.code.encode())
    for name, t in sorted(gm.state_dict().items()):
        h.update(name.encode())
        h.update(str((tuple(t.shape), t.dtype, t.stride())).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def optimize(module: nn.Module, level: str | None = "inference", compile: bool | str = False, input_shape=None,
             name: str = "model") -> nn.Module:
    """`netc.api.optimize`: `level`'s rewrite (`optimize.py`), then with `compile` the compiled package."""
    if compile and level != "inference":
        raise error("usage", "compiling needs the inference optimisation", None, "use --optimize inference --compile")
    if compile and input_shape is None:
        raise error("usage", "compiling needs the input shape (C, H, W) of the module", None,
                    "pass input_shape=network.input_shape")
    from netc.backends.torch.optimize import optimize as rewrite

    module = rewrite(module, level)
    if compile:
        backend = compile if isinstance(compile, str) and compile != "default" else None
        module = compile_inference(module, input_shape, name=name, backend=backend)
    return module


def compile_inference(module: nn.Module, input_shape, cache: str | os.PathLike | None = None,
                      name: str = "model", backend: str | None = None) -> CompiledModule:
    """`module` (a built netc module, or one `optimize_for_inference` already rewrote: the
    rewrites are idempotent) compiled for eval-mode inference on the CPU; inputs are
    (batch, *input_shape). `cache`: the folder of compiled packages (default `cache_dir()`).
    `backend`: `inductor` (AOTInductor package) or `onnxruntime` (an ONNX file run by ORT);
    default: `default_backend()`."""
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise error("usage", f"unknown compile backend '{backend}'", None, f"one of {', '.join(BACKENDS)}")
    from netc.backends.torch.optimize import optimize_for_inference

    device = next(module.parameters()).device
    if device.type != "cpu":
        raise error("usage", f"--compile builds for the CPU; the module is on {device}", None,
                    "build with --device cpu, or use --optimize inference alone on CUDA")
    started = time.perf_counter()
    gm = optimize_for_inference(module)
    key = cache_key(gm, input_shape, backend)
    folder = Path(cache) if cache is not None else cache_dir()
    package = folder / f"{name}-{key}{'.pt2' if backend == 'inductor' else '.onnx'}"
    cached = package.exists()
    if backend == "inductor":
        if not cached:
            _compile_package(gm, input_shape, package)
        runner = torch._inductor.aoti_load_package(str(package))
    else:
        if not cached:
            from netc.fsutil import write_atomic

            package.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(package, onnx_bytes(gm, torch.randn(2, *input_shape)))
        runner = ort_runner(str(package))
    return CompiledModule(runner, package, input_shape, time.perf_counter() - started, cached, backend,
                          returned_type(gm))


class _Call(nn.Module):
    """A plain module around a GraphModule: the TorchScript ONNX exporter mistakes an fx graph
    (`module.graph`) for a TorchScript one."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """`model` as an ONNX model (opset 17) with a dynamic batch; input `x`."""
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Call(model).eval(), (example,), buf, dynamo=False, input_names=["x"], opset_version=17,
                          dynamic_axes={"x": {0: "batch"}})
    return buf.getvalue()


def ort_runner(model: bytes | str):
    """An onnxruntime CPU session (every graph optimisation, torch's thread count) as a callable
    from a torch tensor to the list of the model's outputs."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise error("usage", "the onnxruntime backend needs the onnxruntime package", None,
                    "pip install onnxruntime, or use the inductor backend") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(x):
        return [torch.from_numpy(out) for out in session.run(None, {"x": x.contiguous().numpy()})]

    return run


def _compile_package(gm: torch.fx.GraphModule, input_shape, package: Path) -> None:
    """Export with a dynamic batch, compile with freezing, write the package atomically."""
    example = torch.randn(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(gm, (example,), dynamic_shapes={"x": {0: batch}})
    plain_tuple_outputs(program)
    package.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".pt2", dir=package.parent)
    os.close(fd)
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=tmp, inductor_configs={"freezing": True})
        os.replace(tmp, package)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
