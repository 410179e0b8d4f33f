"""Pooling: max/avg with windows (ceil_mode, count_include_pad), global and adaptive pooling."""
from __future__ import annotations

from typing import Annotated, Optional, Union

from pydantic import Field

from netc.ops.base import (SAVES_NOTHING, Attrs, Autograd, ModuleSpec, Op, ShapeError, Window, fmt_pair, need_map,
                           numel, pair, register)
from netc.ops.conv import NonNegPair, PosInt, PosPair, sliding_shape


class _PoolAttrs(Attrs):
    k: PosPair
    s: Optional[PosPair] = None  # defaults to the kernel, as in PyTorch
    p: NonNegPair = 0
    ceil_mode: bool = False


class MaxPoolAttrs(_PoolAttrs):
    d: PosPair = 1


class AvgPoolAttrs(_PoolAttrs):
    count_include_pad: bool = True


class _Pool(Op):
    kind = ""

    def geometry(self, a):
        k = pair(a.k)
        s = pair(a.s) if a.s is not None else k
        d = pair(getattr(a, "d", 1))
        return k, s, pair(a.p), d

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        k, s, p, d = self.geometry(a)
        for axis in range(2):
            if 2 * p[axis] > d[axis] * (k[axis] - 1) + 1:
                raise ShapeError(f"{self.name} padding {fmt_pair(p)} is more than half its {fmt_pair(k)} window",
                                 "PyTorch requires padding <= kernel // 2 for pooling")
        return (c, *sliding_shape(self.name, (h, w), k, s, p, d, a.ceil_mode))

    def other_flops(self, a, shapes, out):
        k = pair(a.k)
        return numel(out) * k[0] * k[1]

    def window(self, a):
        k, s, p, d = self.geometry(a)
        return Window(k, s, d, p)

    def label(self, a):
        k, s, _, _ = self.geometry(a)
        return f"{self.kind}pool {k[0]}x{k[1]}/{fmt_pair(s)}"

    def module_kwargs(self, a):
        k, s, p, d = self.geometry(a)
        kw = {"kernel_size": k, "stride": s}
        if p != (0, 0):
            kw["padding"] = p
        if a.ceil_mode:
            kw["ceil_mode"] = True
        return kw


@register
class MaxPool(_Pool):
    name = "maxpool"
    kind = "max"
    summary = "max pooling: kernel k, stride s (default k), padding p, dilation d, ceil_mode"
    Attrs = MaxPoolAttrs

    def autograd(self, a, shapes, out):
        return Autograd(inputs=(0,), extra=((numel(out), "index"),))  # input and argmax indices

    def module(self, a, shapes):
        kw = self.module_kwargs(a)
        if pair(a.d) != (1, 1):
            kw["dilation"] = pair(a.d)
        return ModuleSpec("torch.nn.MaxPool2d", (), kw)


@register
class AvgPool(_Pool):
    name = "avgpool"
    kind = "avg"
    summary = "average pooling: kernel k, stride s (default k), padding p, ceil_mode, count_include_pad"
    Attrs = AvgPoolAttrs

    def module(self, a, shapes):
        kw = self.module_kwargs(a)
        if not a.count_include_pad:
            kw["count_include_pad"] = False
        return ModuleSpec("torch.nn.AvgPool2d", (), kw)


class AdaptiveAttrs(Attrs):
    out: Union[PosInt, Annotated[list[PosInt], Field(min_length=2, max_length=2)]] = 1


class _Adaptive(Op):
    torch_cls = ""
    kind = ""

    def infer(self, a, shapes):
        c, _, _ = need_map(self.name, shapes)
        return (c, *pair(a.out))

    def other_flops(self, a, shapes, out):
        return numel(shapes[0])

    def rf_window(self, a, grid, shapes=()):
        # torch's adaptive windows are [floor(i*n/o), ceil((i+1)*n/o)): the widest one sets the
        # receptive field; the stride is n/o, rounded down when o does not divide n
        o = pair(getattr(a, "out", 1))
        k = tuple(max(-(-(i + 1) * n // m) - i * n // m for i in range(m)) for n, m in zip(grid, o))
        return Window(k, tuple(max(1, n // m) for n, m in zip(grid, o)))

    def autograd(self, a, shapes, out):
        if self.kind == "max":
            return Autograd(inputs=(0,), extra=((numel(out), "index"),))
        # to 1×1, torch averages with `mean`, whose backward needs only the shape
        return SAVES_NOTHING if out[1:] == (1, 1) else Autograd(inputs=(0,))

    def label(self, a):
        return f"adaptive {self.kind}pool {fmt_pair(pair(a.out))}"

    def module(self, a, shapes):
        out = a.out if isinstance(a.out, int) else pair(a.out)
        return ModuleSpec(self.torch_cls, (out,), {})


@register
class AdaptiveAvgPool(_Adaptive):
    name = "adaptive_avgpool"
    kind = "avg"
    summary = "adaptive average pooling to an out×out (or [h, w]) grid"
    Attrs = AdaptiveAttrs
    torch_cls = "torch.nn.AdaptiveAvgPool2d"


@register
class AdaptiveMaxPool(_Adaptive):
    name = "adaptive_maxpool"
    kind = "max"
    summary = "adaptive max pooling to an out×out (or [h, w]) grid"
    Attrs = AdaptiveAttrs
    torch_cls = "torch.nn.AdaptiveMaxPool2d"


class GlobalAttrs(Attrs):
    pass


@register
class GlobalAvgPool(_Adaptive):
    """Global average pooling, C×H×W -> C×1×1 (torchvision's AdaptiveAvgPool2d((1, 1)))."""

    name = "gap"
    kind = "avg"
    summary = "global average pooling to C×1×1"
    Attrs = GlobalAttrs
    torch_cls = "torch.nn.AdaptiveAvgPool2d"

    def infer(self, a, shapes):
        c, _, _ = need_map(self.name, shapes)
        return (c, 1, 1)

    def label(self, a):
        return "global avgpool"

    def module(self, a, shapes):
        return ModuleSpec(self.torch_cls, ((1, 1),), {})
