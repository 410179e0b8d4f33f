"""Elementwise activations and softmax."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from netc.ops.base import Attrs, Autograd, ModuleSpec, NoAttrs, Op, ShapeError, numel, register


class _Activation(Op):
    elementwise = True
    torch_cls: str = ""
    saves: str = "input"  # what its derivative formula reads: 'input' or 'output'
    # in place, a formula of the output reads the overwritten tensor ('output'); one that needs
    # the input has torch save a copy of it before overwriting ('copy': hardtanh_, silu_)
    saves_inplace: str = "copy"

    def autograd(self, a, shapes, out):
        if not getattr(a, "inplace", False):
            return Autograd(inputs=(0,)) if self.saves == "input" else Autograd(output=True)
        if self.saves_inplace == "output":
            return Autograd(output=True, alias=True)
        return Autograd(alias=True, extra=((numel(out), "act"),))

    def other_flops(self, a, shapes, out):
        return numel(out)

    def module(self, a, shapes):
        return ModuleSpec(self.torch_cls, (), dict(a.model_dump(exclude_defaults=True)))


class InplaceAttrs(Attrs):
    inplace: bool = False


def _activation(name: str, torch_cls: str, summary: str, attrs=NoAttrs, saves: str = "input",
                saves_inplace: str = "copy"):
    cls = type(name.capitalize(), (_Activation,), {
        "name": name, "torch_cls": torch_cls, "summary": summary, "Attrs": attrs, "saves": saves,
        "saves_inplace": saves_inplace})
    return register(cls)


_activation("relu", "torch.nn.ReLU", "rectified linear unit max(0, x)", InplaceAttrs, "output", "output")
_activation("relu6", "torch.nn.ReLU6", "min(max(0, x), 6)", InplaceAttrs)
_activation("sigmoid", "torch.nn.Sigmoid", "logistic sigmoid", saves="output")
_activation("tanh", "torch.nn.Tanh", "hyperbolic tangent", saves="output")
_activation("gelu", "torch.nn.GELU", "Gaussian error linear unit")
_activation("silu", "torch.nn.SiLU", "x * sigmoid(x) (swish)", InplaceAttrs)
_activation("hardswish", "torch.nn.Hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)", InplaceAttrs)
_activation("hardsigmoid", "torch.nn.Hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3's gate)", InplaceAttrs)


class LeakyAttrs(Attrs):
    negative_slope: float = 0.01
    inplace: bool = False


_activation("leaky_relu", "torch.nn.LeakyReLU", "leaky ReLU (negative_slope)", LeakyAttrs, saves_inplace="output")


class SoftmaxAttrs(Attrs):
    # channel axis of a feature map or the feature axis of a vector (batch excluded)
    dim: Annotated[int, Field(ge=0, le=2)] = 0


class _Softmax(_Activation):
    Attrs = SoftmaxAttrs
    saves = "output"

    def infer(self, a, shapes):
        if a.dim >= len(shapes[0]):
            raise ShapeError(f"{self.name} dim {a.dim} does not exist in a {len(shapes[0])}-d input",
                             "dim 0 is the channel (or feature) axis; the batch axis is not counted")
        return shapes[0]

    def module(self, a, shapes):
        return ModuleSpec(self.torch_cls, (), {"dim": a.dim + 1})


@register
class Softmax(_Softmax):
    name = "softmax"
    summary = "softmax over dim (0 = channels/features; the batch axis is not counted)"
    torch_cls = "torch.nn.Softmax"


@register
class LogSoftmax(_Softmax):
    name = "log_softmax"
    summary = "log-softmax over dim (0 = channels/features)"
    torch_cls = "torch.nn.LogSoftmax"
