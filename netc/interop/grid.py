"""The height and width of each traced map as functions of the network input's, so that an
interpolation to an inner map's size (DeepLab's ASPP pooling: `F.interpolate(y, size=x.shape[-2:])`)
is written as an expression of `$in_h`/`$in_w` that holds at every input size.

Convolutions and pools (floor mode) map a length n to (n + c) // s + 1. A composition of such
steps is again one floor division of the input's length, `(in + offset) // stride`, since
floor(floor(z / a) / b) = floor(z / (a * b)) for integers and positive a, b: so each map's grid
is one (offset, stride) pair per axis. An op that keeps its input's grid (activations, norms,
sums, a stride-1 "same" convolution) keeps the pair; one whose output size is fixed or not of this
form (adaptive pools, upsampling, a ceil-mode pool that may drop its last window) has none, and a
shape read of it stays a constant of the traced size (netc verify's second size then tells).
"""
from __future__ import annotations

import torch
from torch import fx, nn
from torch.nn import functional as F

GRID = "netc.grid"  # fx `Node.meta` key: the node's ((offset, stride) of H, (offset, stride) of W),
# or per axis an expression of `$in_h`/`$in_w` where a reshape set the size
VALUE = "netc.value"  # the key concrete.py keeps each node's example result under (it imports this module)
_INPUT = ((0, 1), (0, 1))
_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_RESIZED = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.ConvTranspose2d, nn.PixelShuffle,
            nn.PixelUnshuffle)
_RESHAPES = ("reshape", "view", torch.reshape)
_RESIZING = (F.interpolate, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.pixel_shuffle, F.pixel_unshuffle)


def expression(var: str, grid) -> str:
    """`(offset, stride)` of the input's `var` as a spec expression: `$in_h`, `($in_h + 7) // 8`
    (an axis that is an expression already is itself)."""
    if isinstance(grid, str):
        return grid
    offset, stride = grid
    if stride == 1:
        return f"${var}" + (f" + {offset}" if offset > 0 else f" - {-offset}" if offset else "")
    inner = f"${var}" + (f" + {offset}" if offset > 0 else f" - {-offset}" if offset else "")
    return f"({inner}) // {stride}" if offset else f"{inner} // {stride}"


def follow(node: fx.Node, value, root) -> tuple | None:
    """The grid of `node`'s map (`value`, computed on the example), from its inputs' grids; None
    where it is not a 4-D map or its size is no such function of the input's."""
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        return None
    if node.op == "placeholder":
        return _INPUT
    if node.op == "call_module":
        m = root.get_submodule(node.target)
        if isinstance(m, _WINDOWED):
            first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
            grid = first.meta.get(GRID) if first is not None else None
            return None if grid is None else _windowed(m, grid, value, first)
        if isinstance(m, _RESIZED):
            return None
    elif node.target in _RESIZING:
        return None
    if node.target in _RESHAPES:
        return _reshaped(node)
    for x in node.all_input_nodes:  # an op that keeps a map's size (`x * s` broadcast: x's), or none
        before = x.meta.get(VALUE)
        if x.meta.get(GRID) is not None and before.shape[-2:] == value.shape[-2:]:
            return x.meta[GRID]
    return None


def requested_shape(node: fx.Node) -> tuple:
    """The sizes (or dims) a reshape, view or permute call was given after its tensor, as varargs or
    one sequence (`x.view(B, C, H // 2, 2)`, `x.reshape((B, C, -1))`): read sizes keep their
    expressions there."""
    asked = node.args[1:]
    return tuple(asked[0]) if len(asked) == 1 and isinstance(asked[0], (tuple, list)) else tuple(asked)


def _reshaped(node: fx.Node) -> tuple | None:
    """The grid of a reshape to a height and width the forward read off maps (InputSizes, which
    carry their expression: MobileViT-v2's fold `x.reshape(B, C, n_h * p, n_w * p)`), else None."""
    asked = requested_shape(node)
    sizes = asked[-2:]
    if len(asked) != 4 or not all(isinstance(getattr(v, "expr", None), str) for v in sizes):
        return None
    return tuple(v.expr for v in sizes)


def _windowed(m, grid, value, first) -> tuple | None:
    """The grid after a convolution or pool `m` (each axis: (n + 2p - d(k - 1) - 1) // s + 1),
    where that formula gives the size it computed (a subclass may pad on its own: timm's Conv2dSame)."""
    k, s, d = (_pair(getattr(m, a, 1)) for a in ("kernel_size", "stride", "dilation"))
    p = {"valid": (0, 0), "same": None}.get(m.padding, m.padding) if isinstance(m.padding, str) else _pair(m.padding)
    ceil = getattr(m, "ceil_mode", False)
    n_in, n_out = first.meta[VALUE].shape[-2:], value.shape[-2:]
    if p is None:  # "same" padding (stride 1)
        return grid if n_in == n_out else None
    out = []
    for axis, (k_, s_, p_, d_) in enumerate(zip(k, s, p, d)):
        extent = d_ * (k_ - 1) + 1
        if ceil and (p_ or s_ > extent):  # torch drops a last window that starts in the padding
            return None
        c = 2 * p_ - extent + (s_ - 1 if ceil else 0)
        if (n_in[axis] + c) // s_ + 1 != n_out[axis]:
            return None
        out.append(_composed(grid[axis], c, s_))
    return tuple(out)


def _composed(axis, c: int, s: int):
    """An axis's grid after a window: ((n + o) // S + c) // s + 1 as one (offset, stride) pair, or
    as an expression where the axis's grid is one (a size a reshape was given)."""
    if isinstance(axis, tuple):
        offset, stride = axis
        return offset + stride * (c + s), stride * s
    shift = c + s  # (n + c) // s + 1 == (n + c + s) // s
    if s == 1 and shift == 0:  # a 1x1 convolution, a 3x3 with padding 1
        return axis
    inner = axis if " " not in axis else f"({axis})"
    inner = f"{inner} + {shift}" if shift > 0 else f"{inner} - {-shift}" if shift < 0 else inner
    return f"({inner}) // {s}" if s > 1 else inner


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)
