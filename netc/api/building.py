"""The API's build verbs: `build` (the one pipeline from a Network to a module), `optimize`, the
`Built` result and the diagram formats. Nothing here imports torch until it is called."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def render_formats() -> tuple[str, ...]:
    """The formats `Network.render` draws in."""
    from netc.backends.render import FORMATS

    return FORMATS


@dataclass(frozen=True)
class Built:
    """A built module and what building it established."""

    module: Any  # torch.nn.Module
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    bytes: int  # parameter and buffer memory, checked against the device's free memory
    confirmed: int | None  # ops whose shapes a meta-device forward confirmed (None: not asked)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the module's state_dict (torch.save) to `path` atomically."""
        import io

        import torch

        from netc.fsutil import write_atomic

        buf = io.BytesIO()
        torch.save(self.module.state_dict(), buf)
        return write_atomic(path, buf.getvalue())


def build(network, device: str = "cpu", dtype: str | None = None, init: bool = True,
          optimize: str | None = None, confirm: bool = False, compile: bool | str = False,
          seed: int | None = None, weights: str | os.PathLike | dict | None = None) -> Built:
    """The one build pipeline (`Network.build`, `netc build`): with `confirm`, a forward on the
    meta device checks every op's shape against the IR (after the parameter and buffer memory
    is checked against the device's free memory: `error[limit]`); then the module is
    allocated, initialised by the spec's `init:` scheme (`init=False`: PyTorch's defaults) from
    torch's random generator seeded with `seed` when given (the global generator is left as it
    was), loaded with `weights` (a state_dict, or a file of one read by
    `netc.backends.torch.weights`; every key must match), cast to `dtype` and, with `optimize`,
    rewritten for inference (and with `compile`, compiled for the CPU, where `device="auto"`
    means the CPU: `optimize()`).

    A compiled build with `seed` or `weights` is looked up in the compile cache first, by what
    it would be built from (`load_compiled`): a hit builds nothing and returns the package's
    module, its `confirmed` the count of shapes the meta-device forward confirmed when the
    package was compiled (a miss always confirms them, to record it)."""
    from netc.backends.torch.memory import check_memory
    from netc.backends.torch.module import build_meta, resolve_device, resolve_dtype

    dev, dt = resolve_device("cpu" if compile and device in (None, "auto") else device), resolve_dtype(dtype)
    need = check_memory(network, dev, dt)
    entry = _recipe(network, dev, dt, init, optimize, compile, seed, weights)
    if entry is not None:
        import torch

        if (package := _find(network.name, *entry, torch.get_num_threads())) is not None:
            return Built(_compiled(package, network), dev, dt, need, package.note.get("confirmed"))
        confirm = True
    meta = build_meta(network) if confirm else None
    confirmed = None
    if confirm:
        from netc.backends.torch.module import confirm_shapes

        confirmed = confirm_shapes(meta, network)
    module = _allocate(network, dev, dt, init, meta, seed)
    if weights is not None:
        _load_weights(module, weights, network.name)
    if optimize or compile:
        from netc.backends.torch.compile import optimize as optimize_module

        if compile:  # compiling runs the module on an example batch of 2
            from netc.backends.torch.memory import check_activations

            check_activations(network, dev, 2, "use a smaller --input")
        key = entry[1] if entry is not None else None
        module = optimize_module(module, optimize, compile, network.input_shape, network.name, key,
                                 {"confirmed": confirmed})
    return Built(module, dev, dt, need, confirmed)


def load_compiled(network, device: str = "cpu", dtype: str | None = None, init: bool = True,
                  optimize: str | None = None, compile: bool | str = False, seed: int | None = None,
                  weights: str | os.PathLike | dict | None = None, threads: int | None = None):
    """The package `build` with these arguments would compile, loaded from the compile cache
    without building anything (a `netc.backends.torch.packages.Package`: its `path`, `backend`,
    `runner` with `threads` intra-op threads, `note`), or None: not in the cache, or no build it
    can find before building (one that compiles for the CPU with `seed` or `weights`). Torch is
    not imported for onnxruntime."""
    entry = _recipe(network, "cpu" if device in (None, "auto") else device, dtype, init, optimize, compile, seed,
                    weights)
    return None if entry is None else _find(network.name, *entry, threads)


def _recipe(network, device, dtype, init: bool, optimize, compile, seed, weights) -> tuple[str, str] | None:
    """(backend, key) of a build the compile cache can key before building (`recipe.py`), else None;
    what is not such a build (no seed or weights, another device, a usage error) takes `build`'s path."""
    if not compile or optimize != "inference" or (seed is None and weights is None) or str(device) != "cpu":
        return None
    from netc.backends.torch.packages import backend_of, options
    from netc.backends.torch.recipe import recipe_key

    backend = backend_of(compile)
    dtype_name = "float32" if dtype is None else str(dtype).removeprefix("torch.")
    return backend, recipe_key(network, backend, dtype_name, init, seed, weights, options(backend))


def _find(name: str, backend: str, key: str, threads: int | None = None):
    from netc.backends.torch.packages import cache_folder, entry_name, find

    folder, limit = cache_folder()
    return find(folder, entry_name(name, key, backend), backend, limit, threads)


def _compiled(package, network):
    from netc.backends.torch.compile import CompiledModule
    from netc.backends.torch.program import eval_outputs_type

    return CompiledModule(package, network.input_shape, eval_outputs_type(network))


def _allocate(network, dev, dt, init: bool, meta, seed: int | None):
    import torch

    from netc.backends.torch.module import build_module

    if seed is None:
        return build_module(network, dev, dt, init, meta)
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        return build_module(network, dev, dt, init, meta)


def _load_weights(module, weights, name: str) -> None:
    """`weights` into `module`, strictly: a key missing or left over, or a shape that differs, is `error[weights]`."""
    from netc.errors import clip, error, printable

    if isinstance(weights, dict):
        state, where = weights, "the state_dict"
    else:
        from netc.backends.torch.weights import read_state_dict

        state, where = read_state_dict(weights), f"'{printable(clip(str(weights), 200))}'"
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = printable(clip(" ".join(str(exc).split()), 300))
        raise error("weights", f"{where} does not fit {name}: {detail}", None,
                    "give a state_dict saved from this spec (netc build --save)") from None


def optimize(module, level: str | None = "inference", compile: bool | str = False, input_shape=None,
             name: str = "model"):
    """A built module optimised for `level` (`inference`: `netc.backends.torch.optimize`); with
    `compile=True` (the default backend) or `compile="inductor"|"onnxruntime"` also compiled for
    inputs of `input_shape` (C, H, W) — see `netc.backends.torch.compile` — into a
    `CompiledModule` (its `compile_seconds`, `package`)."""
    from netc.backends.torch.compile import optimize as optimize_module

    return optimize_module(module, level, compile, input_shape, name)
