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
          optimize: str | None = None, confirm: bool = False, compile: bool | str = False) -> Built:
    """The one build pipeline (`Network.build`, `netc build`): with `confirm`, a forward on the
    meta device checks every op's shape against the IR first; then the parameter and buffer
    memory is checked against the device's free memory (`error[limit]`); then the module is
    allocated, initialised by the spec's `init:` scheme (`init=False`: PyTorch's defaults),
    cast to `dtype` and, with `optimize`, rewritten for inference (and with `compile`, compiled:
    `optimize()`)."""
    from netc.backends.torch.memory import check_memory
    from netc.backends.torch.module import build_meta, build_module, confirm_shapes, resolve_device, resolve_dtype

    dev, dt = resolve_device(device), resolve_dtype(dtype)
    meta = build_meta(network) if confirm else None
    confirmed = confirm_shapes(meta, network) if confirm else None
    need = check_memory(network, dev, dt)
    module = build_module(network, dev, dt, init, meta)
    if optimize or compile:
        from netc.backends.torch.compile import optimize as optimize_module

        if compile:  # compiling runs the module on an example batch of 2
            from netc.backends.torch.memory import check_activations

            check_activations(network, dev, 2, "use a smaller --input")

        module = optimize_module(module, optimize, compile, network.input_shape, network.name)
    return Built(module, dev, dt, need, confirmed)


def optimize(module, level: str | None = "inference", compile: bool | str = False, input_shape=None,
             name: str = "model"):
    """A built module optimised for `level` (`inference`: `netc.backends.torch.optimize`); with
    `compile=True` (the default backend) or `compile="inductor"|"onnxruntime"` also compiled for
    inputs of `input_shape` (C, H, W) — see `netc.backends.torch.compile` — into a
    `CompiledModule` (its `compile_seconds`, `package`)."""
    from netc.backends.torch.compile import optimize as optimize_module

    return optimize_module(module, level, compile, input_shape, name)
