"""Compiled inference: `netc build --optimize inference --compile [onnxruntime|inductor]`,
`Network.build(optimize="inference", compile=True)`, `netc.optimize(module, "inference", compile=True)`.

Both backends start from netc's own rewrites (`optimize.py`: batch norms folded into convs,
dropout and identities gone, in-place activations, channels_last) and have a dynamic batch:

- `onnxruntime` (the default where the package is installed): the rewritten graph exported to
  ONNX (opset 17), run by an onnxruntime CPU session with every graph optimisation;
- `inductor`: the graph exported (`torch.export`) and compiled ahead of time by inductor with
  freezing (weights as constants) into an AOTInductor package (`.pt2`: a shared library and the
  weights) loaded with `aoti_load_package`.

The artefact is cached on disk (`cache.py`: a private folder, each entry checked against the
digest netc recorded before it is loaded, least recently used entries evicted past a size bound)
under a hash of everything it depends on: the rewritten graph's code, every parameter and buffer,
the input shape, the backend and its options, torch's and netc's versions, the machine and (for
inductor) the vector ISA the C++ was compiled for. A second build with the same weights (`netc
build --seed N` or `--weights FILE`) loads it instead of compiling again.

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
import re
import time
from pathlib import Path

import torch
from torch import nn

from netc.backends.torch import cache as store
from netc.backends.torch.program import plain_tuple_outputs, returned_type
from netc.errors import error

MAX_BATCH = 4096  # the exported program's batch dimension ranges over 1..MAX_BATCH
BACKENDS = ("inductor", "onnxruntime")
OPSET = 17


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


def cache_key(gm: torch.fx.GraphModule, input_shape, backend: str = "inductor") -> str:
    """A hash of everything the compiled package depends on."""
    import platform
    import sys
    from importlib.metadata import version

    h = hashlib.sha256()
    isa = ""
    if backend == "inductor":  # the package's C++ uses this CPU's vector ISA: another CPU may lack it
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        isa = str(pick_vec_isa())
    netc_version = version("netc")
    h.update(f"{torch.__version__}|{netc_version}|{sys.version_info[:2]}|{platform.machine()}|{isa}|"
             f"{tuple(input_shape)}|{MAX_BATCH}|{backend}|freezing|opset{OPSET}|".encode())
    h.update(gm.code.encode())
    tensors = dict(gm.named_parameters(remove_duplicate=False))
    tensors.update(gm.named_buffers(remove_duplicate=False))  # non-persistent buffers too
    for name, t in sorted(tensors.items()):
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

    if compile:  # compile_inference makes the inference rewrite itself: once is enough on a cache hit's path
        backend = compile if isinstance(compile, str) and compile != "default" else None
        return compile_inference(module, input_shape, name=name, backend=backend)
    return rewrite(module, level)


def compile_inference(module: nn.Module, input_shape, cache: str | os.PathLike | None = None,
                      name: str = "model", backend: str | None = None) -> CompiledModule:
    """`module` (a built netc module, or one `optimize_for_inference` already rewrote: the
    rewrites are idempotent) compiled for eval-mode inference on the CPU; inputs are
    (batch, *input_shape). `cache`: the folder of compiled packages (default `cache.cache_dir()`).
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
    limit = store.max_bytes()  # a bad NETC_CACHE_SIZE or cache folder is an error before the compile
    folder = store.private_dir(Path(cache) if cache is not None else store.cache_dir())
    started = time.perf_counter()
    gm = optimize_for_inference(module)
    store.remove_stale_temps(folder)
    filename = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:64]}-{cache_key(gm, input_shape, backend)}" \
               f"{'.pt2' if backend == 'inductor' else '.onnx'}"
    package = store.lookup(folder, filename)
    cached = package is not None
    if not cached:
        package = store.store(folder, filename, lambda tmp: _write_package(gm, input_shape, backend, tmp))
    runner = torch._inductor.aoti_load_package(str(package)) if backend == "inductor" else ort_runner(str(package))
    store.evict(folder, limit, keep=package)
    return CompiledModule(runner, package, input_shape, time.perf_counter() - started, cached, backend,
                          returned_type(gm))


def _write_package(gm: torch.fx.GraphModule, input_shape, backend: str, path: Path) -> None:
    if backend == "inductor":
        _compile_package(gm, input_shape, path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(onnx_bytes(gm, torch.randn(2, *input_shape)))


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
        torch.onnx.export(_Call(model).eval(), (example,), buf, dynamo=False, input_names=["x"], opset_version=OPSET,
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


def _compile_package(gm: torch.fx.GraphModule, input_shape, path: Path) -> None:
    """Export with a dynamic batch, compile with freezing into the package `path` (a temp file of the cache)."""
    example = torch.randn(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(gm, (example,), dynamic_shapes={"x": {0: batch}})
    plain_tuple_outputs(program)
    torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs={"freezing": True})
