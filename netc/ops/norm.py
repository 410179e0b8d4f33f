"""Normalisation: batch norm, layer norm (ConvNeXt), group norm, instance norm (style transfer,
GAN generators) and local response normalisation (AlexNet, GoogLeNet v1)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from netc.ops.base import (Attrs, Autograd, ModuleSpec, Op, ShapeError, Unmappable, drop_defaults, fmt_shape, need_map,
                           numel, register)

PosFloat = Annotated[float, Field(gt=0)]


class BNAttrs(Attrs):
    eps: PosFloat = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = True
    # the statistics and affine as buffers, never updated (torchvision's FrozenBatchNorm2d):
    # no parameters, no num_batches_tracked, the same outputs in training
    frozen: bool = False

    @model_validator(mode="after")
    def _frozen_is_affine(self):
        if self.frozen and not self.affine:
            raise ValueError("frozen: true keeps weight and bias buffers: it goes with affine: true")
        return self


@register
class BatchNorm(Op):
    name = "bn"
    summary = "batch normalisation over channels (eps, momentum, affine)"
    Attrs = BNAttrs
    onnx = "BatchNormalization"
    fill = "#eeeeee"
    torch_modules = ("torch.nn.BatchNorm2d", "torch.nn.BatchNorm1d")  # 1d: of features (RepViT's head)

    def from_module(self, m, torch_cls):
        if not m.track_running_stats:
            raise Unmappable("batch norm without running statistics")
        return super().from_module(m, torch_cls)

    def params(self, a, shapes):
        return 2 * shapes[0][0] if a.affine and not a.frozen else 0

    def buffers(self, a, shapes):
        if a.frozen:
            return 4 * shapes[0][0]  # weight, bias, running mean, running var
        return 2 * shapes[0][0] + 1  # running mean, running var, num_batches_tracked

    def probed(self, m):
        """A frozen batch norm (torchvision's FrozenBatchNorm2d): its statistics and affine as buffers."""
        if list(m.state_dict()) != ["weight", "bias", "running_mean", "running_var"] or any(
                True for _ in m.parameters()):
            return []
        c, eps = m.state_dict()["weight"].numel(), float(getattr(m, "eps", 1e-5))
        return [(drop_defaults({"eps": eps, "frozen": True}, {"eps": 1e-5}), [(c, 5, 6)])]

    def other_flops(self, a, shapes, out):
        return 2 * numel(out)

    def autograd(self, a, shapes, out):
        if a.frozen:
            return Autograd()  # a fixed scale and shift: the backward needs neither input nor statistics
        # its input and the batch mean and inverse std per channel
        return Autograd(inputs=(0,), extra=((shapes[0][0], "stat"), (shapes[0][0], "stat")))

    def module(self, a, shapes):
        if a.frozen:
            return ModuleSpec("netc.backends.torch.runtime.FrozenBatchNorm2d", (shapes[0][0],),
                              {"eps": a.eps} if a.eps != 1e-5 else {})
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
    onnx = "LRN"
    fill = "#eeeeee"
    torch_modules = ("torch.nn.LocalResponseNorm",)

    def from_module(self, m, torch_cls):
        return self.name, {"size": m.size, "alpha": float(m.alpha), "beta": float(m.beta), "k": float(m.k)}

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


class _AffineAttrs(Attrs):
    """A layer or group norm's learned affine: weight and bias, or (bias: false) a weight only."""

    affine: bool = True
    bias: bool = True  # false: a weight only (MetaFormer's LayerNorm2dNoBias, GroupNorm1NoBias)

    @model_validator(mode="after")
    def _bias_is_affine(self):
        if not self.bias and not self.affine:
            raise ValueError("bias: false goes with affine: true (without affine there is no bias)")
        return self


def _no_bias(a) -> dict:
    return {} if a.bias else {"bias": False}


class LayerNormAttrs(_AffineAttrs):
    over: Literal["channels", "last"] = "channels"
    eps: PosFloat = 1e-5


def _norm_kwargs(a, affine: str) -> dict:
    """eps and the affine switch (torch's keyword `affine`), written only where not torch's default."""
    return {**({"eps": a.eps} if a.eps != 1e-5 else {}), **({affine: False} if not a.affine else {})}


def _norm_autograd(shapes, groups: int) -> Autograd:
    """Layer and group norm save their input and a mean and inverse std per normalised group."""
    return Autograd(inputs=(0,), extra=((groups, "act"), (groups, "act")))


@register
class LayerNorm(Op):
    name = "layernorm"
    summary = "layer normalisation over the channels of a C×H×W map (torchvision's LayerNorm2d) or over the last axis (over: last)"
    reference = ("`channels`: over the C of a C×H×W map (torchvision's `LayerNorm2d`); `last`: `nn.LayerNorm` "
                 "over the last axis")
    Attrs = LayerNormAttrs
    onnx = "LayerNormalization (opset 17)"
    fill = "#eeeeee"
    # LayerNorm2d: nn.LayerNorm over the channels of an N×C×H×W map (permute, norm, permute back)
    torch_modules = ("torch.nn.LayerNorm", "torchvision.models.convnext.LayerNorm2d", "timm.layers.norm.LayerNorm2d")

    def from_module(self, m, torch_cls):
        if len(m.normalized_shape) != 1:
            raise Unmappable(f"layer norm over {len(m.normalized_shape)} axes (netc normalises one: channels or last)")
        over = "last" if torch_cls == "torch.nn.LayerNorm" else "channels"
        return self.name, drop_defaults({"over": over, "eps": float(m.eps), "affine": bool(m.elementwise_affine),
                                         "bias": m.bias is not None or not m.elementwise_affine},
                                        {"over": "channels", "eps": 1e-5, "affine": True, "bias": True})

    def readings(self, m, torch_cls):
        """A subclass of nn.LayerNorm with its own forward: the layer norm over the channels of a map
        (MetaFormer's LayerNorm2dNoBias, a LayerNorm2d without the bias)."""
        return [(*self.from_module(m, "timm.layers.norm.LayerNorm2d"), [(m.normalized_shape[0], 5, 6)])]

    def mixed_axes(self, a, shapes):
        return (0,) if a.over == "channels" else (len(shapes[0]) - 1,)

    def infer(self, a, shapes):
        if a.over == "channels" and len(shapes[0]) != 3:
            raise ShapeError(f"layernorm over channels needs a C×H×W feature map, got a {len(shapes[0])}-d input",
                             "use over: last to normalise the last axis (nn.LayerNorm)")
        return shapes[0]

    def normalised(self, a, shapes) -> int:
        return shapes[0][0] if a.over == "channels" else shapes[0][-1]

    def params(self, a, shapes):
        return (1 + a.bias) * self.normalised(a, shapes) if a.affine else 0

    def other_flops(self, a, shapes, out):
        return 5 * numel(out)  # mean, variance, subtract, divide, affine

    def autograd(self, a, shapes, out):
        return _norm_autograd(shapes, numel(out) // self.normalised(a, shapes))

    def label(self, a):
        return "layernorm" if a.over == "last" else "layernorm 2d"

    def module(self, a, shapes):
        cls = "netc.backends.torch.runtime.LayerNorm2d" if a.over == "channels" else "torch.nn.LayerNorm"
        kw = {**_norm_kwargs(a, "elementwise_affine"), **_no_bias(a)}
        return ModuleSpec(cls, (self.normalised(a, shapes),), kw)


class GRNAttrs(Attrs):
    over: Literal["channels", "last"] = "last"
    eps: PosFloat = 1e-6


@register
class GlobalResponseNorm(Op):
    """ConvNeXt-V2's global response normalisation (timm's GlobalResponseNorm): each channel's L2
    norm over the two spatial axes, divided by its mean over the channels (+ eps), gates the input:
    x + bias + weight * x * that, with a weight and bias per channel (starting at zero)."""

    name = "grn"
    summary = "global response normalisation (ConvNeXt-V2) over the channels of H×W×C (over: last) or C×H×W"
    reference = ("ConvNeXt-V2's global response normalisation, `weight` and `bias` per channel (zeros at first): "
                 "`over: last` (default) for an H×W×C tensor, as timm's channels-last blocks, `channels` for C×H×W")
    Attrs = GRNAttrs
    onnx = "ReduceL2 + ReduceMean + Div + Mul + Add"
    fill = "#eeeeee"

    def channels(self, a, shapes) -> int:
        return shapes[0][0] if a.over == "channels" else shapes[0][-1]

    def infer(self, a, shapes):
        if len(shapes[0]) != 3:
            raise ShapeError(f"grn needs a 3-d input (C×H×W or H×W×C), got {fmt_shape(shapes[0])}",
                             "apply it to a feature map")
        return shapes[0]

    def mixed_axes(self, a, shapes):
        return (0, 1, 2)  # the norm reads all of H and W; the mean all channels

    def params(self, a, shapes):
        return 2 * self.channels(a, shapes)

    def other_flops(self, a, shapes, out):
        return 6 * numel(out)

    def autograd(self, a, shapes, out):
        # its input, x times the gate (for the weight's gradient), and per sample the norms, their
        # mean over the channels and the gate
        c = self.channels(a, shapes)
        return Autograd(inputs=(0,), extra=((numel(out), "act"), (c, "act"), (1, "act"), (c, "act")))

    def module(self, a, shapes):
        kw = {**({"eps": a.eps} if a.eps != 1e-6 else {}), **({"channels_last": False} if a.over == "channels" else {})}
        return ModuleSpec("netc.backends.torch.runtime.GlobalResponseNorm", (self.channels(a, shapes),), kw)

    def probed(self, m):
        state = m.state_dict()
        if list(state) != ["weight", "bias"] or state["weight"].dim() != 1 or state["weight"].shape != state["bias"].shape:
            return []
        c, eps = state["weight"].numel(), float(getattr(m, "eps", 1e-6))
        return [(drop_defaults({"over": over, "eps": eps}, {"over": "last", "eps": 1e-6}), [shape])
                for over, shape in (("last", (5, 6, c)), ("channels", (c, 5, 6)))]


class GroupNormAttrs(_AffineAttrs):
    groups: Annotated[int, Field(gt=0)]
    eps: PosFloat = 1e-5


@register
class GroupNorm(Op):
    name = "groupnorm"
    summary = "group normalisation: channels in groups, each normalised over its channels and positions"
    reference = "`nn.GroupNorm(groups, C)`; groups must divide C; `bias: false` keeps a weight only"
    Attrs = GroupNormAttrs
    onnx = "GroupNormalization (opset 18), or InstanceNormalization + Mul + Add"
    fill = "#eeeeee"
    torch_modules = ("torch.nn.GroupNorm",)

    def from_module(self, m, torch_cls):
        return self.name, drop_defaults({"groups": m.num_groups, "eps": float(m.eps), "affine": bool(m.affine),
                                         "bias": m.bias is not None or not m.affine},
                                        {"eps": 1e-5, "affine": True, "bias": True})

    def mixed_axes(self, a, shapes):
        return (1, 2)  # each output is normalised by statistics over every position

    def infer(self, a, shapes):
        c = shapes[0][0]
        if c % a.groups:
            raise ShapeError(f"groupnorm groups={a.groups} does not divide the {c} channels",
                             "the channel count must be a multiple of groups")
        return shapes[0]

    def params(self, a, shapes):
        return (1 + a.bias) * shapes[0][0] if a.affine else 0

    def other_flops(self, a, shapes, out):
        return 5 * numel(out)

    def autograd(self, a, shapes, out):
        return _norm_autograd(shapes, a.groups)

    def label(self, a):
        return f"groupnorm {a.groups}"

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.GroupNorm", (a.groups, shapes[0][0]), {**_norm_kwargs(a, "affine"), **_no_bias(a)})


class InstanceNormAttrs(Attrs):
    eps: PosFloat = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = False
    track_running_stats: bool = False


@register
class InstanceNorm(Op):
    """`nn.InstanceNorm2d` (Ulyanov et al. 2016): each channel of each image normalised over its
    own positions; torch's defaults (no affine, no running statistics) unless asked."""

    name = "instancenorm"
    summary = "instance normalisation: each channel of each image over its positions (affine, track_running_stats)"
    reference = ("`nn.InstanceNorm2d`: each channel of each image over its positions (style transfer, GAN generators); "
                 "torch's defaults")
    Attrs = InstanceNormAttrs
    onnx = "InstanceNormalization"
    fill = "#eeeeee"
    torch_modules = ("torch.nn.InstanceNorm2d",)

    def mixed_axes(self, a, shapes):
        return (1, 2)  # each output is normalised by statistics over every position

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        if h * w == 1:  # torch refuses it in training too
            raise ShapeError("instancenorm of a 1×1 map sets every value to 0",
                             "normalise before the map is pooled to one position")
        return shapes[0]

    def params(self, a, shapes):
        return 2 * shapes[0][0] if a.affine else 0

    def buffers(self, a, shapes):
        return 2 * shapes[0][0] + 1 if a.track_running_stats else 0

    def other_flops(self, a, shapes, out):
        return 5 * numel(out)

    def autograd(self, a, shapes, out):
        # torch runs it as a batch norm over N*C channels: besides the input and a mean and inverse
        # std per image and channel, it saves the weight and the running statistics repeated N times
        c = shapes[0][0]
        return Autograd(inputs=(0,), extra=((c, "act"),) * (2 + a.affine + 2 * a.track_running_stats))

    def module(self, a, shapes):
        kw = {**({"eps": a.eps} if a.eps != 1e-5 else {}), **({"momentum": a.momentum} if a.momentum != 0.1 else {}),
              **({"affine": True} if a.affine else {}),
              **({"track_running_stats": True} if a.track_running_stats else {})}
        return ModuleSpec("torch.nn.InstanceNorm2d", (shapes[0][0],), kw)
