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
digest netc recorded before it is loaded, least recently used entries evicted past a size bound).
A build whose weights are fixed before it starts (`netc build --seed N` or `--weights FILE`, the
API's `seed=`/`weights=`) is keyed before building, from the IR, the init scheme, the seed or the
weights' digest, netc's source and the machine (`recipe.py`): a second such build loads the
package without building the module at all (`netc.api.building.load_compiled`). Any other module
(`netc.optimize(module, compile=True)`, an unseeded build) is keyed after the rewrite by
`cache_key`: the rewritten graph's code and every parameter and buffer, with the same versions and
machine.

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
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from netc.backends.torch import cache as store
from netc.backends.torch import packages
from netc.backends.torch.packages import (
    MAX_BATCH,
    OPSET,
    Package,
    backend_of,
    cache_folder,
    entry_name,
    options,
    ort_session,
)
from netc.backends.torch.program import plain_tuple_outputs, returned_type
from netc.errors import error


class CompiledModule(nn.Module):
    """A compiled package behind a module's call; eval-only, inputs NCHW of the build's shape."""

    def __init__(self, package: Package, input_shape: tuple[int, ...], outputs: type | None = None):
        super().__init__()
        self.package, self.input_shape, self.backend = package.path, tuple(input_shape), package.backend
        self.compile_seconds, self.from_cache = package.seconds, package.cached
        self.runner = package.runner if package.backend == "inductor" else _torch_io(package.runner)
        self.outputs = outputs  # the namedtuple of a spec's several outputs, as the eager module returns

    def forward(self, x):
        out = self.runner(x)
        if isinstance(out, (list, tuple)):
            return self.outputs(*out) if self.outputs is not None else out[0]
        return out

    def extra_repr(self) -> str:
        return f"backend={self.backend}, package={self.package}, input_shape={self.input_shape}"


def cache_key(gm: torch.fx.GraphModule, input_shape, backend: str = "inductor") -> str:
    """The key of a built module's package (`recipe.py` keys a seeded or weights-file build
    before building): a hash of everything the package depends on, its weights included."""
    from netc.backends.torch import recipe

    h = hashlib.sha256()
    h.update(f"{recipe.source_digest()}|{recipe.versions(backend)}|{recipe.machine(backend)}|{tuple(input_shape)}|"
             f"{backend}|{options(backend)}|".encode())
    h.update(gm.code.encode())
    tensors = dict(gm.named_parameters(remove_duplicate=False))
    tensors.update(gm.named_buffers(remove_duplicate=False))  # non-persistent buffers too
    recipe.hash_tensors(h, tensors)
    return h.hexdigest()[:32]


def optimize(module: nn.Module, level: str | None = "inference", compile: bool | str = False, input_shape=None,
             name: str = "model", key: str | None = None, note: dict | None = None) -> nn.Module:
    """`netc.api.optimize`: `level`'s rewrite (`optimize.py`), then with `compile` the compiled
    package (`key`, `note`: see `compile_inference`)."""
    if compile and level != "inference":
        raise error("usage", "compiling needs the inference optimisation", None, "use --optimize inference --compile")
    if compile and input_shape is None:
        raise error("usage", "compiling needs the input shape (C, H, W) of the module", None,
                    "pass input_shape=network.input_shape")
    from netc.backends.torch.optimize import optimize as rewrite

    if compile:  # compile_inference makes the inference rewrite itself: once is enough on a cache hit's path
        return compile_inference(module, input_shape, name=name, backend=backend_of(compile), key=key, note=note)
    return rewrite(module, level)


def compile_inference(module: nn.Module, input_shape, cache: str | os.PathLike | None = None,
                      name: str = "model", backend: str | None = None, key: str | None = None,
                      note: dict | None = None) -> CompiledModule:
    """`module` (a built netc module, or one `optimize_for_inference` already rewrote: the
    rewrites are idempotent) compiled for eval-mode inference on the CPU; inputs are
    (batch, *input_shape). `cache`: the folder of compiled packages (default `cache.cache_dir()`).
    `backend`: `inductor` (AOTInductor package) or `onnxruntime` (an ONNX file run by ORT);
    default: `default_backend()`. `key`: the entry's key when the caller computed it before
    building (`recipe.py`), else `cache_key` of the rewritten module; `note`: recorded with a
    package this writes."""
    backend = backend_of(backend)
    from netc.backends.torch.optimize import optimize_for_inference

    device = next(module.parameters()).device
    if device.type != "cpu":
        raise error("usage", f"--compile builds for the CPU; the module is on {device}", None,
                    "build with --device cpu, or use --optimize inference alone on CUDA")
    folder, limit = cache_folder(cache)
    started = time.perf_counter()
    gm = optimize_for_inference(module)
    store.remove_stale_temps(folder)
    filename = entry_name(name, key or cache_key(gm, input_shape, backend), backend)
    package = packages.find(folder, filename, backend, limit, torch.get_num_threads())
    if package is None:
        path = store.store(folder, filename, lambda tmp: _write_package(gm, input_shape, backend, tmp), note)
        runner = packages.open_runner(path, backend, torch.get_num_threads())
        store.evict(folder, limit, keep=path)
        package = Package(path, backend, runner, 0.0, False, note or {})
    package = replace(package, seconds=time.perf_counter() - started)
    return CompiledModule(package, input_shape, returned_type(gm))


def _write_package(gm: torch.fx.GraphModule, input_shape, backend: str, path: Path) -> None:
    if backend == "inductor":
        _compile_package(gm, input_shape, path)
        return
    # onnxruntime's graph optimisations run once, here, and the optimised graph is the package:
    # a hit opens it with nothing left to optimise (a third of a resnet50 session's start-up)
    ort_session(onnx_bytes(gm, torch.randn(2, *input_shape)), save_to=path)
    os.chmod(path, 0o600)


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
    return _torch_io(ort_session(model, torch.get_num_threads()))


def _torch_io(session):
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
