"""Normalisation: batch norm and local response normalisation (AlexNet, GoogLeNet v1)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from netc.ops.base import Attrs, Autograd, ModuleSpec, Op, ShapeError, fmt_shape, numel, register

PosFloat = Annotated[float, Field(gt=0)]


class BNAttrs(Attrs):
    eps: PosFloat = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = True


@register
class BatchNorm(Op):
    name = "bn"
    summary = "batch normalisation over channels (eps, momentum, affine)"
    Attrs = BNAttrs

    def params(self, a, shapes):
        return 2 * shapes[0][0] if a.affine else 0

    def buffers(self, a, shapes):
        return 2 * shapes[0][0] + 1  # running mean, running var, num_batches_tracked

    def other_flops(self, a, shapes, out):
        return 2 * numel(out)

    def autograd(self, a, shapes, out):
        # its input and the batch mean and inverse std per channel
        return Autograd(inputs=(0,), extra=((shapes[0][0], "stat"), (shapes[0][0], "stat")))

    def module(self, a, shapes):
        kw = {}
        if a.eps != 1e-5:
            kw["eps"] = a.eps
        if a.momentum != 0.1:
            kw["momentum"] = a.momentum
        if not a.affine:
            kw["affine"] = False
        cls = "torch.nn.BatchNorm2d" if len(shapes[0]) == 3 else "torch.nn.BatchNorm1d"
        return ModuleSpec(cls, (shapes[0][0],), kw)


class LRNAttrs(Attrs):
    size: Annotated[int, Field(gt=0)] = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


@register
class LRN(Op):
    name = "lrn"
    summary = "local response normalisation across channels (size, alpha, beta, k)"
    Attrs = LRNAttrs

    def infer(self, a, shapes):
        if len(shapes[0]) < 2:  # torch's LocalResponseNorm needs channels and at least one spatial axis
            raise ShapeError(f"lrn normalises across the channels of a feature map, got a flat vector of "
                             f"{fmt_shape(shapes[0])}", "lrn must come before 'flatten'")
        return shapes[0]

    def other_flops(self, a, shapes, out):
        return numel(out) * (a.size + 3)

    def autograd(self, a, shapes, out):
        # torch composes it of pow, pad, avg_pool3d, mul, add, div: the input, the squared input
        # padded across channels, and two more input-sized intermediates are saved
        c = shapes[0][0]
        return Autograd(inputs=(0,), extra=((numel(out) // c * (c + a.size - 1), "act"), (2 * numel(out), "act")))

    def label(self, a):
        return f"lrn {a.size}"

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.LocalResponseNorm", (a.size,), {"alpha": a.alpha, "beta": a.beta, "k": a.k})
