"""Joining and shortcut ops: add (residual sum), cat (channel concat), constant scale and
zero channel padding (ResNet option-A shortcut)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from netc.ops.base import (SAVES_NOTHING, Attrs, Autograd, ModuleSpec, NoAttrs, Op, ShapeError, Window, need_map,
                           numel, register)

# the backward of a sum or concatenation saves nothing and hands its gradient on unchanged
PASS_GRAD = Autograd(grad_alias=True)


@register
class Add(Op):
    name = "add"
    summary = "elementwise sum of two or more tensors of the same shape (residual merge)"
    Attrs = NoAttrs
    min_inputs, max_inputs = 2, None

    def infer(self, a, shapes):
        first = shapes[0]
        for other in shapes[1:]:
            if other != first:
                raise ShapeError(
                    "add inputs disagree in shape",
                    "a residual needs the body and shortcut to give the same shape; "
                    "use a projection shortcut (1x1 conv with the body's stride and channels)")
        return first

    def other_flops(self, a, shapes, out):
        return numel(out) * (len(shapes) - 1)

    def autograd(self, a, shapes, out):
        return PASS_GRAD

    def label(self, a):
        return "+"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Add", (), {})


@register
class Cat(Op):
    name = "cat"
    summary = "concatenate two or more tensors along channels (height×width must agree)"
    Attrs = NoAttrs
    min_inputs, max_inputs = 2, None

    def infer(self, a, shapes):
        rank = {len(s) for s in shapes}
        if rank != {len(shapes[0])}:
            raise ShapeError("cat inputs mix feature maps and flat vectors")
        spatial = {s[1:] for s in shapes}
        if len(spatial) > 1:
            raise ShapeError("cat inputs disagree in height×width",
                             "every branch must keep the same spatial size; check strides and padding")
        return (sum(s[0] for s in shapes), *shapes[0][1:])

    def autograd(self, a, shapes, out):
        return PASS_GRAD  # the inputs' gradients are slices of the output's

    def label(self, a):
        return "concat"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Concat", (), {})


class ScaleAttrs(Attrs):
    factor: float


@register
class Scale(Op):
    name = "scale"
    summary = "multiply by a constant factor (residual scaling in Inception-ResNet)"
    Attrs = ScaleAttrs
    elementwise = True

    def other_flops(self, a, shapes, out):
        return numel(out)

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING  # a constant factor: the backward needs no tensor

    def label(self, a):
        return f"×{a.factor:g}"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Scale", (a.factor,), {})


class PadChannelsAttrs(Attrs):
    out: Annotated[int, Field(gt=0)]
    s: Annotated[int, Field(gt=0)] = 1
    # 'both' splits the zeros before and after the input channels (the common CIFAR
    # ResNet implementation); 'after' appends them all
    where: Literal["both", "after"] = "both"


@register
class PadChannels(Op):
    """Option-A shortcut of He et al. 2015: subsample by s, then pad channels with zeros."""

    name = "pad_channels"
    summary = "parameter-free shortcut: take every s-th pixel and zero-pad channels up to out"
    Attrs = PadChannelsAttrs

    def infer(self, a, shapes):
        c, h, w = need_map("pad_channels", shapes)
        if a.out < c:
            raise ShapeError(f"pad_channels out={a.out} is fewer than its {c} input channels")
        if a.where == "both" and (a.out - c) % 2:
            raise ShapeError(f"pad_channels cannot split {a.out - c} zero channels evenly on both sides",
                             "use where: after")
        return (a.out, -(-h // a.s), -(-w // a.s))

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING  # slicing and zero padding need only shapes

    def window(self, a):
        return Window((1, 1), (a.s, a.s))  # subsampling by s is a strided 1x1 window

    def label(self, a):
        return f"zero-pad to {a.out}" + (f", /{a.s}" if a.s > 1 else "")

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.PadChannels", (shapes[0][0], a.out, a.s, a.where), {})
