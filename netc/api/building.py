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
    meta device checks every op's shape against the IR first; then the parameter and buffer
    memory is checked against the device's free memory (`error[limit]`); then the module is
    allocated, initialised by the spec's `init:` scheme (`init=False`: PyTorch's defaults) from
    torch's random generator seeded with `seed` when given (the global generator is left as it
    was), loaded with `weights` (a state_dict, or a file of one read by
    `netc.backends.torch.weights`; every key must match), cast to `dtype` and, with `optimize`,
    rewritten for inference (and with `compile`, compiled: `optimize()`; the same weights and
    options find the compiled package in the cache)."""
    from netc.backends.torch.memory import check_memory
    from netc.backends.torch.module import build_meta, resolve_device, resolve_dtype

    dev, dt = resolve_device(device), resolve_dtype(dtype)
    meta = build_meta(network) if confirm else None
    confirmed = None
    if confirm:
        from netc.backends.torch.module import confirm_shapes

        confirmed = confirm_shapes(meta, network)
    need = check_memory(network, dev, dt)
    module = _allocate(network, dev, dt, init, meta, seed)
    if weights is not None:
        _load_weights(module, weights, network.name)
    if optimize or compile:
        from netc.backends.torch.compile import optimize as optimize_module

        if compile:  # compiling runs the module on an example batch of 2
            from netc.backends.torch.memory import check_activations

            check_activations(network, dev, 2, "use a smaller --input")

        module = optimize_module(module, optimize, compile, network.input_shape, network.name)
    return Built(module, dev, dt, need, confirmed)


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
