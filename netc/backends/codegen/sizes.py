"""Sizes generated code computes from the input at run time: an op whose attribute the spec
computes from `$in_h`/`$in_w` (netc.spec.symbolic) is written on the runtime height and width of
the tensor that binds them, as torchvision's segmentation heads are
(`F.interpolate(x, size=input.shape[-2:])`): an `upsample` to a size, an adaptive pool to a grid.
The module stays registered (the same modules as the built network's); the forward passes the
runtime size. Where that cannot be written (another op, or a binding tensor the class's forward
does not see), the op keeps the size it was generated for and the factory refuses other sizes
(`netc.backends.torch.size_guard.codegen_guard`).
"""
from __future__ import annotations

from collections.abc import Callable

from netc.ir.sized import SIZED, bound

FOLLOWING = {"upsample": "size", "adaptive_avgpool": "out", "adaptive_maxpool": "out"}
_POOLS = {"adaptive_avgpool": "adaptive_avg_pool2d", "adaptive_maxpool": "adaptive_max_pool2d"}


def runtime_sized(data, nid, attr: str | None, visible) -> tuple[int, Callable[[list[str]], str]] | None:
    """(the binding value, the forward's expression given the names of the op's input and that
    value) of an op whose sizes follow the input; None for any other op."""
    d = data[nid]
    sized = d.meta.get(SIZED)
    key = FOLLOWING.get(d.op)
    if not sized or set(sized) != {key} or attr is None or len(data[d.inputs[0]].shape) != 3:
        return None
    source, binding = sized[key], bound(d)
    if binding not in visible:
        return None

    def expr(args: list[str]) -> str:
        x, t = args[0], args[-1]
        size = source.replace("{H}", f"{t}.shape[-2]").replace("{W}", f"{t}.shape[-1]")
        if d.op == "upsample":
            return f"nn.functional.interpolate({x}, size={size}, mode={attr}.mode, align_corners={attr}.align_corners)"
        return f"nn.functional.{_POOLS[d.op]}({x}, {size})"

    return binding, expr
