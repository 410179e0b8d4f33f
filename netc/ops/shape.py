"""Tensor plumbing without parameters: permute, reshape, chunk (one part of an equal split), slice
(a range of one axis: an unequal channel split) and channel shuffle (ShuffleNet). Axes are batchless: 0 is the channel (or feature) axis."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from netc.ops.base import (SAVES_NOTHING, Attrs, Autograd, ModuleSpec, NoAttrs, Op, ShapeError, Unmappable,
                           axis_index, broadcast, fmt_shape, numel, register)

PosInt = Annotated[int, Field(gt=0)]
VIEW = Autograd(alias=True, grad_alias=True)


class PermuteAttrs(Attrs):
    dims: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=8)]

    @model_validator(mode="after")
    def _permutation(self):
        if sorted(self.dims) != list(range(len(self.dims))):
            raise ValueError(f"dims {self.dims} are not a permutation of 0..{len(self.dims) - 1} "
                             "(batchless axes: [1, 2, 0] turns C×H×W into H×W×C)")
        return self


def batchless_dims(dims) -> dict:
    """The attributes of torch's permute of a batch (`dims`) as netc's batchless `permute`."""
    dims = [int(d) for d in dims]
    if not dims or dims[0] != 0:
        raise Unmappable(f"permute {dims} (it moves the batch axis)")
    return {"dims": [d - 1 for d in dims[1:]]}


@register
class Permute(Op):
    name = "permute"
    summary = "reorder the (batchless) axes: dims [1, 2, 0] turns C×H×W into H×W×C (torchvision's Permute([0, 2, 3, 1]))"
    reference = "reorder the axes: `[1, 2, 0]` turns C×H×W into H×W×C (torchvision's `Permute([0, 2, 3, 1])`)"
    Attrs = PermuteAttrs
    onnx = "Transpose"
    torch_modules = ("torchvision.ops.misc.Permute",)

    def from_module(self, m, torch_cls):
        return self.name, batchless_dims(m.dims)

    def axis_order(self, a):
        return tuple(a.dims)

    def infer(self, a, shapes):
        x = shapes[0]
        if len(a.dims) != len(x):
            raise ShapeError(f"permute dims {a.dims} reorder {len(a.dims)} axes, the input has {len(x)}",
                             "give one entry per batchless axis")
        return tuple(x[d] for d in a.dims)

    def autograd(self, a, shapes, out):
        return VIEW

    def label(self, a):
        return "permute " + ",".join(map(str, a.dims))

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Permute", ([0] + [d + 1 for d in a.dims],), {})


class ReshapeAttrs(Attrs):
    shape: Annotated[list[Annotated[int, Field(ge=-1)]], Field(min_length=1, max_length=8)]

    @model_validator(mode="after")
    def _one_free(self):
        if self.shape.count(-1) > 1 or 0 in self.shape:
            raise ValueError(f"shape {self.shape} may hold one -1 (inferred) and no 0")
        return self


@register
class Reshape(Op):
    name = "reshape"
    summary = "reshape to a (batchless) shape, one -1 inferred; the element count must agree"
    reference = "reshape each sample (one −1 allowed); the element count must agree"
    Attrs = ReshapeAttrs
    onnx = "Reshape"

    def rf_exact(self, a):
        return False  # positions may move between axes

    def infer(self, a, shapes):
        n, known = numel(shapes[0]), numel([d for d in a.shape if d != -1])
        if (n % known if -1 in a.shape else n != known):
            raise ShapeError(f"reshape to {fmt_shape(tuple(a.shape))} cannot hold the input's {n} elements",
                             "the product of the shape must equal the input's element count")
        return tuple(n // known if d == -1 else d for d in a.shape)

    def autograd(self, a, shapes, out):
        return VIEW

    def label(self, a):
        return "reshape " + fmt_shape(tuple(a.shape))

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Reshape", (tuple(a.shape),), {})


class ChunkAttrs(Attrs):
    parts: Annotated[int, Field(ge=2)]
    index: Annotated[int, Field(ge=0)]
    dim: int = 0

    @model_validator(mode="after")
    def _index(self):
        if self.index >= self.parts:
            raise ValueError(f"index {self.index} is not one of the {self.parts} parts (0..{self.parts - 1})")
        return self


@register
class Chunk(Op):
    name = "chunk"
    summary = "one part (index) of the input split into equal parts along dim (0 = channels): x.chunk(parts, dim + 1)[index]"
    reference = ("part `index` of `x.chunk(parts, dim + 1)`; the axis must divide evenly; name each part and take it "
                 "with `from:` (ShuffleNet's split)")
    Attrs = ChunkAttrs
    onnx = "Slice"

    def infer(self, a, shapes):
        x = shapes[0]
        axis = axis_index("chunk", a.dim, len(x), "dim")
        if x[axis] % a.parts:
            raise ShapeError(f"chunk cannot split the {x[axis]} entries of axis {axis} into {a.parts} equal parts",
                             "the split axis must be a multiple of parts (ShuffleNet splits an even channel count)")
        return x[:axis] + (x[axis] // a.parts,) + x[axis + 1:]

    def autograd(self, a, shapes, out):
        return Autograd(alias=True)  # a view; its backward builds a full-size gradient

    def label(self, a):
        return f"chunk {a.index + 1}/{a.parts}"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Chunk", (a.parts, a.index, axis_index("chunk", a.dim, len(shapes[0])) + 1), {})


class SliceAttrs(Attrs):
    start: int = 0
    end: int | None = None
    dim: int = 0


def slice_bounds(a: SliceAttrs, shape) -> tuple[int, int, int]:
    """(axis, start, end) of a slice on a batchless shape, non-negative, or a shape error: Python's
    negative indices count from the end, but an index past either end is a mistake, not clamped."""
    axis = axis_index("slice", a.dim, len(shape), "dim")
    n = shape[axis]
    for what, v in (("start", a.start), ("end", a.end)):
        if v is not None and not -n <= v <= n:
            raise ShapeError(f"slice {what} {v} is outside axis {axis} of {n} entries",
                             f"indices run from -{n} to {n} (negative counts from the end)")
    start = a.start % n if a.start < 0 else a.start
    end = n if a.end is None else a.end % n if a.end < 0 else a.end
    if end <= start:
        raise ShapeError(f"slice {a.start}:{'' if a.end is None else a.end} of axis {axis} ({n} entries) is empty",
                         "end must come after start")
    return axis, start, end


@register
class Slice(Op):
    name = "slice"
    summary = ("entries start..end (end exclusive; negative from the end; none: to the end) of one axis, "
               "dim 0 = channels: x[:, start:end] - an unequal channel split (CSPNet, DPN, Res2Net, GhostNet)")
    reference = ("entries `start:end` of one axis, `x[:, start:end]` for channels; negative indices count from the "
                 "end, out-of-range ones are errors; an unequal split (CSPNet's halves, DPN's dense part, Res2Net's "
                 "scales)")
    Attrs = SliceAttrs
    onnx = "Slice"

    def rf_exact(self, a):
        return a.dim in (0, -3)  # a channel range; a crop of H or W moves the positions

    def infer(self, a, shapes):
        x = shapes[0]
        axis, start, end = slice_bounds(a, x)
        return x[:axis] + (end - start,) + x[axis + 1:]

    def autograd(self, a, shapes, out):
        return Autograd(alias=True)  # a view; its backward builds a full-size gradient

    def label(self, a):
        return f"slice {a.start}:{'' if a.end is None else a.end}" + (f" of axis {a.dim}" if a.dim else "")

    def module(self, a, shapes):
        axis, start, end = slice_bounds(a, shapes[0])
        return ModuleSpec("netc.backends.torch.runtime.Slice", (start, end, axis + 1), {})


class ShuffleAttrs(Attrs):
    groups: PosInt


@register
class ChannelShuffle(Op):
    name = "channel_shuffle"
    summary = "interleave the channels of groups (ShuffleNet): C = groups × n, channel g·n + i moves to i·groups + g"
    reference = "`nn.ChannelShuffle(groups)` (ShuffleNet); groups must divide C"
    Attrs = ShuffleAttrs
    onnx = "Reshape + Transpose + Reshape"
    torch_modules = ("torch.nn.ChannelShuffle",)

    def infer(self, a, shapes):
        x = shapes[0]
        if len(x) < 2:
            raise ShapeError(f"channel_shuffle needs channels and a spatial grid, got a flat vector of {fmt_shape(x)}",
                             "channel_shuffle must come before 'flatten'")
        if x[0] % a.groups:
            raise ShapeError(f"channel_shuffle groups={a.groups} does not divide the {x[0]} channels",
                             "the channel count must be a multiple of groups")
        return x

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING  # a copy in a new order; its backward needs only the order

    def label(self, a):
        return f"shuffle {a.groups}"

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.ChannelShuffle", (a.groups,), {})


@register
class ExpandAs(Op):
    """The first input broadcast to the second's shape, a view (`x.expand_as(y)`: ECA's gate
    `y.expand_as(x)` before the product)."""

    name = "expand_as"
    summary = "the first input broadcast to the shape of the second (a view: x.expand_as(y))"
    reference = "the first input broadcast (numpy rules) to the second's shape, as a view (`x.expand_as(y)`)"
    Attrs = NoAttrs
    onnx = "Expand"
    min_inputs, max_inputs = 2, 2

    def infer(self, a, shapes):
        x, y = shapes
        if broadcast(self.name, shapes) != y:
            raise ShapeError(f"expand_as cannot broadcast {fmt_shape(x)} to {fmt_shape(y)}",
                             "each axis of the first must equal the second's (right-aligned) or be 1")
        return y

    def autograd(self, a, shapes, out):
        return Autograd(alias=True)  # a view; the backward sums the gradient back (new memory)

    def label(self, a):
        return "expand as"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.ExpandAs", (), {})
