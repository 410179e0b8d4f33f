"""Layout ops, reductions, softmax and stack of a traced forward -> netc ops, from what each call
computed on the example batch (`concrete.py`): `x.view(B, r, -1)`, `x.unsqueeze(1)`,
`x.transpose(1, 2)`, `x.sum(dim=1)`, `F.softmax(x, dim=1)`, `torch.stack(xs, dim=1)`.

A reshape is written as its output's shape per sample: the example's batch must survive it (a
reshape that merges samples has no batchless form). Torch's dims count the batch axis, netc's do
not; a dim on the batch axis is refused.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from netc.interop.concrete import BATCH, InputSize, value_of
from netc.interop.grid import requested_shape
from netc.interop.mapping import Unmappable
from netc.ops.shape import batchless_dims

RESHAPES = ("view", "reshape", "unsqueeze", "squeeze", "flatten", "unflatten")
TRANSPOSES = ("transpose", "swapaxes", "swapdims")
REDUCTIONS = ("sum", "mean")
FUNCTIONS = {torch.reshape: "reshape", torch.unsqueeze: "unsqueeze", torch.squeeze: "squeeze",
             torch.transpose: "transpose", torch.swapaxes: "transpose", torch.sum: "sum", torch.mean: "mean",
             torch.softmax: "softmax", F.softmax: "softmax", torch.stack: "stack"}


def _tensor(node, what: str) -> torch.Tensor:
    value = value_of(node)
    if not isinstance(value, torch.Tensor):
        raise Unmappable(f"{what} of a value the trace could not compute on an example input")
    return value


def batchless(dim: int, f: str) -> int:
    """A torch dim as netc's batchless axis (0 = channels; negative ones count from the end alike)."""
    if dim == 0:
        raise Unmappable(f"{f} along the batch axis")
    return dim - 1 if dim > 0 else dim


def _batchless_dim(dim, rank: int, f: str) -> int:
    """Torch's `dim` of a `rank`-d batch as a non-negative batchless axis."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not -rank <= dim < rank:
        raise Unmappable(f"{f} with dim {dim!r}")
    return batchless(dim % rank, f)


def layout_op(node, f: str, args, kw):
    """(op, attrs, inputs) of a layout call `f` (a tensor method's name, or FUNCTIONS' name for a
    torch function), or None when `f` is none of these."""
    if f in RESHAPES:
        return _reshape(node, f, args[0])
    if f in TRANSPOSES:
        return _transpose(f, args, kw)
    if f in REDUCTIONS:
        return _reduction(f, args, kw)
    if f == "softmax":
        x = _tensor(args[0], "softmax")
        dim = kw.get("dim", args[1] if len(args) > 1 else None)
        return "softmax", {"dim": _batchless_dim(dim, x.dim(), "softmax")}, [args[0]]
    if f == "stack":
        xs = list(kw.get("tensors", args[0]))
        dim = kw.get("dim", args[1] if len(args) > 1 else 0)
        return "stack", {"dim": _batchless_dim(dim, _tensor(xs[0], "stack").dim() + 1, "stack")}, xs
    return None


def _reshape(node, f: str, x):
    before, after = _tensor(x, f).shape, _tensor(node, f).shape
    if len(after) < 1 or after[0] != BATCH or before[0] != BATCH:
        raise Unmappable(f".{f}() to {tuple(after)} from {tuple(before)} (it merges or splits the batch axis)")
    if len(after) == 2:
        return "flatten", {}, [x]
    return "reshape", {"shape": _requested(node, f, after)}, [x]


def _requested(node, f: str, after) -> list:
    """The per-sample shape of a reshape: a height or width the forward read off a map (`H` of
    `B, C, H, W = x.shape`) and passed on unchanged is written as the expression of the network
    input's size it is (`($in_h + 3) // 4`), so the spec follows the input size; the rest are
    the example's numbers."""
    shape = list(after[1:])
    if f not in ("view", "reshape") or not hasattr(node, "args"):
        return shape
    asked = requested_shape(node)
    if len(asked) != len(after):
        return shape
    return [a.expr if isinstance(a, InputSize) else n for a, n in zip(asked[1:], shape)]


def _transpose(f: str, args, kw):
    x = args[0]
    rank = _tensor(x, f).dim()
    names = ("dim0", "dim1") if f == "transpose" else ("axis0", "axis1")
    d0, d1 = (kw.get(n, args[k + 1] if len(args) > k + 1 else None) for k, n in enumerate(names))
    order = list(range(rank))
    a, b = (_batchless_dim(d, rank, f) + 1 for d in (d0, d1))
    order[a], order[b] = order[b], order[a]
    return "permute", batchless_dims(order), [x]


def _reduction(f: str, args, kw):
    x = args[0]
    rank = _tensor(x, f).dim()
    dims = kw.get("dim", args[1] if len(args) > 1 else None)
    if dims is None:
        raise Unmappable(f"{f} of every entry (it reduces the batch axis too)")
    dims = list(dims) if isinstance(dims, (list, tuple)) else [dims]
    keepdim = kw.get("keepdim", args[2] if len(args) > 2 else False)
    attrs = {"dims": [_batchless_dim(d, rank, f) for d in dims], **({"keepdim": True} if keepdim else {})}
    return f, attrs, [x]
