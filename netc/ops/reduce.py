"""Reductions over (batchless) axes: sum and mean, as selective-kernel and split-attention blocks
(SKNet, ResNeSt) sum their paths and average a map to a descriptor; and stack, which joins tensors
of one shape along a new axis (the paths those blocks attend over)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from netc.ops.base import SAVES_NOTHING, Attrs, Autograd, ModuleSpec, Op, ShapeError, axis_index, fmt_shape, numel, register


class ReduceAttrs(Attrs):
    dims: Annotated[list[int], Field(min_length=1, max_length=8)]
    keepdim: bool = False

    @model_validator(mode="after")
    def _distinct(self):
        if len(set(self.dims)) != len(self.dims):
            raise ValueError(f"dims {self.dims} name an axis twice")
        return self


def reduced_axes(op: str, a: ReduceAttrs, rank: int) -> tuple[int, ...]:
    """The reduced axes as 0..rank-1 (negative ones count from the end), or a shape error."""
    axes = tuple(sorted({axis_index(op, d, rank, "dim") for d in a.dims}))
    if len(axes) != len(a.dims):
        raise ShapeError(f"{op} dims {a.dims} name one axis twice in a {rank}-d input", "give each axis once")
    return axes


class _Reduce(Op):
    Attrs = ReduceAttrs

    def infer(self, a, shapes):
        x = shapes[0]
        axes = reduced_axes(self.name, a, len(x))
        if not a.keepdim and len(axes) == len(x):
            raise ShapeError(f"{self.name} over every axis of a {fmt_shape(x)} input leaves no axis per sample",
                             "keep one axis, or keepdim: true")
        return tuple(1 if i in axes else n for i, n in enumerate(x) if a.keepdim or i not in axes)

    def other_flops(self, a, shapes, out):
        return numel(shapes[0])

    def mixed_axes(self, a, shapes):
        return reduced_axes(self.name, a, len(shapes[0]))

    def rf_exact(self, a):
        return a.keepdim  # without keepdim the axes after a reduced one move

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING  # the backward expands the output's gradient: it needs only the shape

    def label(self, a):
        return f"{self.name} over {','.join(map(str, a.dims))}"

    def module(self, a, shapes):
        axes = reduced_axes(self.name, a, len(shapes[0]))
        return ModuleSpec("netc.backends.torch.runtime.Reduce", (self.name, tuple(d + 1 for d in axes), a.keepdim), {})


@register
class Sum(_Reduce):
    name = "sum"
    summary = "sum over (batchless) dims, keepdim to keep them as size 1: x.sum(dim + 1)"
    reference = "sum over the batchless `dims` (`keepdim` keeps them as 1): SKNet and ResNeSt sum their paths"
    onnx = "ReduceSum"


@register
class Mean(_Reduce):
    name = "mean"
    summary = "mean over (batchless) dims, keepdim to keep them as size 1: x.mean(dim + 1)"
    reference = "mean over the batchless `dims` (`keepdim` keeps them as 1); over H and W with keepdim it is `gap`"
    onnx = "ReduceMean"


class StackAttrs(Attrs):
    dim: int = 0


@register
class Stack(Op):
    name = "stack"
    summary = "join tensors of one shape along a new (batchless) axis dim: torch.stack(xs, dim + 1)"
    reference = "join 2+ inputs of one shape along a new batchless axis `dim` (SKNet's paths: dim 0)"
    Attrs = StackAttrs
    onnx = "Concat"
    min_inputs, max_inputs = 2, None

    def _axis(self, a, shapes) -> int:
        return axis_index(self.name, a.dim, len(shapes[0]) + 1, "dim")

    def infer(self, a, shapes):
        if len(set(shapes)) > 1:
            raise ShapeError(f"stack inputs differ in shape: {', '.join(fmt_shape(s) for s in shapes)}",
                             "stacked tensors must have one shape")
        axis = self._axis(a, shapes)
        return shapes[0][:axis] + (len(shapes),) + shapes[0][axis:]

    def rf_exact(self, a):
        return False  # the new axis moves those after it

    def autograd(self, a, shapes, out):
        return Autograd(grad_alias=True)  # the inputs' gradients are slices of the output's

    def label(self, a):
        return f"stack on {a.dim}"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Stack", (self._axis(a, shapes) + 1,), {})
