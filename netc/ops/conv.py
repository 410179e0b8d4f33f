"""Convolutions: conv (square, asymmetric, strided, dilated, grouped) and depthwise-separable."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from netc.ops.base import (Attrs, Autograd, ModuleSpec, Op, ShapeError, Window, fmt_pair, need_map, numel,
                           pair, register)

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosPair = Union[PosInt, Annotated[list[PosInt], Field(min_length=2, max_length=2)]]
NonNegPair = Union[NonNegInt, Annotated[list[NonNegInt], Field(min_length=2, max_length=2)]]
Padding = Union[NonNegPair, Literal["same", "valid"]]


def window_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool = False) -> int:
    """Output length of a sliding window (PyTorch's formula, ceil_mode included)."""
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= n + p:  # the last window must start inside the input or left padding
        out -= 1
    return out


def resolve_padding(p, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]) -> tuple[int, int]:
    """Symmetric padding per axis; 'same' is defined for stride 1 as in PyTorch."""
    if p == "valid":
        return (0, 0)
    if p == "same":
        if s != (1, 1):
            raise ShapeError("padding 'same' needs stride 1 (as in PyTorch)",
                             "give the padding explicitly, e.g. p: (k - 1) // 2")
        return (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
    return pair(p)


def sliding_shape(op: str, hw: tuple[int, int], k, s, p, d, ceil_mode=False) -> tuple[int, int]:
    out = []
    for axis in range(2):
        n = hw[axis]
        o = window_out(n, k[axis], s[axis], p[axis], d[axis], ceil_mode)
        if o <= 0:
            extent = d[axis] * (k[axis] - 1) + 1
            raise ShapeError(
                f"{op} window {fmt_pair(k)} (extent {extent}) is larger than its padded input "
                f"{hw[0]}×{hw[1]} (padding {fmt_pair(p)})",
                "use a smaller kernel, add padding, or feed a larger input")
        out.append(o)
    return out[0], out[1]


class ConvAttrs(Attrs):
    out: PosInt
    k: PosPair
    s: PosPair = 1
    p: Padding = 0
    d: PosPair = 1
    groups: PosInt = 1
    bias: bool = True


def _padding_for_torch(a):
    return a.p if isinstance(a.p, str) else pair(a.p)


@register
class Conv(Op):
    name = "conv"
    summary = "2-D convolution: out channels, kernel k, stride s, padding p (int, [h, w], same, valid), dilation d, groups, bias"
    Attrs = ConvAttrs

    def geometry(self, a):
        k, s, d = pair(a.k), pair(a.s), pair(a.d)
        return k, s, resolve_padding(a.p, k, s, d), d

    def infer(self, a, shapes):
        c, h, w = need_map("conv", shapes)
        if c % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide the {c} input channels",
                             "groups must divide both input and output channels")
        if a.out % a.groups:
            raise ShapeError(f"groups={a.groups} does not divide the {a.out} output channels",
                             "groups must divide both input and output channels")
        k, s, p, d = self.geometry(a)
        return (a.out, *sliding_shape("conv", (h, w), k, s, p, d))

    def params(self, a, shapes):
        k = pair(a.k)
        return a.out * (shapes[0][0] // a.groups) * k[0] * k[1] + (a.out if a.bias else 0)

    def macs(self, a, shapes, out):
        k = pair(a.k)
        return numel(out) * (shapes[0][0] // a.groups) * k[0] * k[1]

    def window(self, a):
        k, s, _, d = self.geometry(a)
        return Window(k, s, d)

    def label(self, a):
        k, s, d = pair(a.k), pair(a.s), pair(a.d)
        text = f"conv {k[0]}x{k[1]}"
        if s != (1, 1):
            text += f"/{fmt_pair(s)}"
        text += f", {a.out}"
        if a.groups > 1:
            text += f", g{a.groups}"
        if d != (1, 1):
            text += f", d{fmt_pair(d)}"
        return text

    def module(self, a, shapes):
        kw = {"kernel_size": pair(a.k), "stride": pair(a.s), "padding": _padding_for_torch(a)}
        if pair(a.d) != (1, 1):
            kw["dilation"] = pair(a.d)
        if a.groups != 1:
            kw["groups"] = a.groups
        if not a.bias:
            kw["bias"] = False
        return ModuleSpec("torch.nn.Conv2d", (shapes[0][0], a.out), kw)


class SepConvAttrs(Attrs):
    out: PosInt
    k: PosPair
    s: PosPair = 1
    p: Padding = 0
    d: PosPair = 1
    bias: bool = False


@register
class SepConv(Op):
    """Depthwise k×k conv (one filter per channel) followed by a pointwise 1×1 conv.

    Module names follow timm's legacy Xception `SeparableConv2d`: `conv1`, `pointwise`.
    """

    name = "sepconv"
    summary = "depthwise-separable conv: depthwise k×k (stride s, padding p, dilation d) then pointwise 1×1 to out channels"
    Attrs = SepConvAttrs

    def infer(self, a, shapes):
        c, h, w = need_map("sepconv", shapes)
        return (a.out, *sliding_shape("sepconv", (h, w), *Conv.geometry(self, a)))

    def params(self, a, shapes):
        c, k = shapes[0][0], pair(a.k)
        bias = (c + a.out) if a.bias else 0
        return c * k[0] * k[1] + c * a.out + bias

    def macs(self, a, shapes, out):
        c, k = shapes[0][0], pair(a.k)
        return out[1] * out[2] * c * (k[0] * k[1] + a.out)

    def autograd(self, a, shapes, out):
        # each of its two convs saves its input: the block's input and the depthwise output
        return Autograd(inputs=(0,), extra=((shapes[0][0] * out[1] * out[2], "act"),))

    def window(self, a):
        k, s, _, d = Conv.geometry(self, a)
        return Window(k, s, d)

    def label(self, a):
        k, s = pair(a.k), pair(a.s)
        stride = f"/{fmt_pair(s)}" if s != (1, 1) else ""
        return f"sepconv {k[0]}x{k[1]}{stride}, {a.out}"

    def module(self, a, shapes):
        kw = {"kernel_size": pair(a.k), "stride": pair(a.s), "padding": _padding_for_torch(a),
              "dilation": pair(a.d), "bias": a.bias}
        return ModuleSpec("netc.backends.torch.runtime.SeparableConv2d", (shapes[0][0], a.out), kw)
