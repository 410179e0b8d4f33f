"""Elementwise activations and softmax."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from netc.ops.base import Attrs, Autograd, ModuleSpec, NoAttrs, Op, ShapeError, drop_defaults, numel, register


class Activation(Op):
    elementwise = True
    fill = "#fff2cc"
    torch_cls: str = ""
    saves: str = "input"  # what its derivative formula reads: 'input' or 'output'
    # (torch's derivatives.yaml: elu, celu and selu read the input, elu_ the result it overwrote)
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
                saves_inplace: str = "copy", onnx: str | None = None, also: tuple[str, ...] = (),
                methods: tuple[str, ...] = ()):
    """An activation module of torch, which `torch.nn.functional.<name>` (and `also`) computes too."""
    cls = type(name.capitalize(), (Activation,), {
        "name": name, "torch_cls": torch_cls, "summary": summary, "Attrs": attrs, "saves": saves,
        "saves_inplace": saves_inplace, "onnx": onnx, "torch_modules": (torch_cls,),
        "torch_functions": (f"torch.nn.functional.{name}", *also), "tensor_methods": methods})
    return register(cls)


_activation("relu", "torch.nn.ReLU", "rectified linear unit max(0, x)", InplaceAttrs, "output", "output",
            onnx="Relu", also=("torch.relu",), methods=("relu", "relu_"))
_activation("relu6", "torch.nn.ReLU6", "min(max(0, x), 6)", InplaceAttrs, onnx="Clip")
_activation("sigmoid", "torch.nn.Sigmoid", "logistic sigmoid", saves="output",
            onnx="Sigmoid", also=("torch.sigmoid",), methods=("sigmoid", "sigmoid_"))
_activation("tanh", "torch.nn.Tanh", "hyperbolic tangent", saves="output",
            onnx="Tanh", also=("torch.tanh",), methods=("tanh", "tanh_"))


class GeluAttrs(Attrs):
    approximate: Literal["none", "tanh"] = "none"


_activation("gelu", "torch.nn.GELU", "Gaussian error linear unit (approximate: tanh for the tanh formula)", GeluAttrs,
            onnx="Gelu")
_activation("silu", "torch.nn.SiLU", "x * sigmoid(x) (swish)", InplaceAttrs, onnx="Sigmoid + Mul")
_activation("hardswish", "torch.nn.Hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)", InplaceAttrs, onnx="HardSwish")
_activation("hardsigmoid", "torch.nn.Hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3's gate)", InplaceAttrs,
            onnx="HardSigmoid")


class LeakyAttrs(Attrs):
    negative_slope: float = 0.01
    inplace: bool = False


_activation("leaky_relu", "torch.nn.LeakyReLU", "leaky ReLU (negative_slope)", LeakyAttrs, saves_inplace="output",
            onnx="LeakyRelu")
_activation("mish", "torch.nn.Mish", "x * tanh(softplus(x)) (Misra 2019; CSPDarknet, YOLOv4)", InplaceAttrs,
            onnx="Mish")
_activation("selu", "torch.nn.SELU", "scaled ELU with the self-normalising constants (Klambauer et al. 2017)",
            InplaceAttrs, "input", "output", onnx="Selu")


class EluAttrs(Attrs):
    alpha: Annotated[float, Field(gt=0)] = 1.0
    inplace: bool = False


_activation("elu", "torch.nn.ELU", "exponential linear unit: alpha * (exp(x) - 1) below 0 (Clevert et al. 2015)",
            EluAttrs, "input", "output", onnx="Elu")
_activation("celu", "torch.nn.CELU", "continuously differentiable ELU: alpha * (exp(x / alpha) - 1) below 0",
            EluAttrs, "input", "output", onnx="Celu")


class SoftplusAttrs(Attrs):
    beta: Annotated[float, Field(gt=0)] = 1.0
    threshold: float = 20.0


_activation("softplus", "torch.nn.Softplus", "log(1 + exp(beta * x)) / beta, linear above threshold", SoftplusAttrs,
            onnx="Softplus")


class HardtanhAttrs(Attrs):
    min_val: float = -1.0
    max_val: float = 1.0
    inplace: bool = False

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_val >= self.max_val:
            raise ValueError(f"min_val ({self.min_val}) must be below max_val ({self.max_val})")
        return self


_activation("hardtanh", "torch.nn.Hardtanh", "x clamped to [min_val, max_val]", HardtanhAttrs, onnx="Clip")


class PReluAttrs(Attrs):
    per_channel: bool = False
    init: float = 0.25


@register
class PRelu(Activation):
    """Parametric ReLU (He et al. 2015): a learned slope below 0, one for all channels or one per
    channel (`nn.PReLU(num_parameters)`, whose slopes apply along the channel axis)."""

    name = "prelu"
    summary = "parametric ReLU: a learned negative slope (per_channel: one per channel), starting at init"
    reference = "PReLU: a learned negative slope, one for all channels or one per channel (`nn.PReLU(C)`)"
    Attrs = PReluAttrs
    onnx = "PRelu"
    torch_modules = ("torch.nn.PReLU",)

    def from_module(self, m, torch_cls):
        return self.name, drop_defaults({"per_channel": m.num_parameters > 1, "init": float(m.init)},
                                        {"per_channel": False, "init": 0.25})

    def params(self, a, shapes):
        return shapes[0][0] if a.per_channel else 1

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.PReLU", (shapes[0][0],) if a.per_channel else (),
                          {} if a.init == 0.25 else {"init": a.init})


class SoftmaxAttrs(Attrs):
    # channel axis of a feature map or the feature axis of a vector (batch excluded)
    dim: Annotated[int, Field(ge=0, le=7)] = 0


class _Softmax(Activation):
    Attrs = SoftmaxAttrs
    saves = "output"

    def mixed_axes(self, a, shapes):
        return (a.dim,)

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
    onnx = "Softmax"


@register
class LogSoftmax(_Softmax):
    name = "log_softmax"
    summary = "log-softmax over dim (0 = channels/features)"
    torch_cls = "torch.nn.LogSoftmax"
    onnx = "LogSoftmax"
