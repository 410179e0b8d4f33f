"""Joining and shortcut ops: add (residual sum), mul (broadcast product: squeeze-and-excitation),
cat (channel concat), constant and learned scale (layer scale) and zero channel padding (ResNet
option-A shortcut)."""
from __future__ import annotations

import struct
from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from netc.ops.base import (SAVES_NOTHING, Attrs, Autograd, ModuleSpec, NoAttrs, Op, OwnedParam, ShapeError, Window,
                           axis_index, broadcast, drop_defaults, fmt_shape, need_map, numel, register)

# the backward of a sum or concatenation saves nothing and hands its gradient on unchanged
PASS_GRAD = Autograd(grad_alias=True)


class AddAttrs(Attrs):
    broadcast: bool = False  # let shapes broadcast (right-aligned, numpy rules) instead of being equal


@register
class Add(Op):
    name = "add"
    summary = "elementwise sum of two or more tensors of the same shape (residual merge); broadcast: true lets shapes broadcast"
    reference = ("sum of 2+ inputs of one shape (residual merge); `broadcast: true` lets shapes broadcast (numpy "
                 "rules, right-aligned)")
    Attrs = AddAttrs
    onnx = "Add"
    fill = "#f4cccc"
    diagram_sign = "+"
    min_inputs, max_inputs = 2, None

    def infer(self, a, shapes):
        if a.broadcast:
            return broadcast("add", shapes)
        first = shapes[0]
        if any(other != first for other in shapes[1:]):
            try:
                broadcast("add", shapes)
            except ShapeError:
                raise ShapeError("add inputs disagree in shape",
                                 "a residual needs the body and shortcut to give the same shape; use a projection "
                                 "shortcut (1x1 conv with the body's stride and channels)") from None
            raise ShapeError("add inputs disagree in shape", "write add: {broadcast: true} to let them broadcast")
        return first

    def other_flops(self, a, shapes, out):
        return numel(out) * (len(shapes) - 1)

    def autograd(self, a, shapes, out):
        # a broadcast input's gradient is a reduced sum: new memory, not a view of the output's
        return PASS_GRAD if all(s == out for s in shapes) else SAVES_NOTHING

    def label(self, a):
        return "+"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Add", (), {})


@register
class Mul(Op):
    name = "mul"
    summary = "elementwise product of two or more tensors, shapes broadcast (a C×1×1 gate times a C×H×W map)"
    reference = ("product of 2+ inputs, shapes broadcast: squeeze-and-excitation is `{mul: {}, from: [gate, x]}`, a "
                 "C×1×1 gate on a C×H×W map")
    Attrs = NoAttrs
    onnx = "Mul"
    fill = "#f4cccc"
    diagram_sign = "×"
    min_inputs, max_inputs = 2, None

    def infer(self, a, shapes):
        return broadcast("mul", shapes)

    def other_flops(self, a, shapes, out):
        return numel(out) * (len(shapes) - 1)

    def autograd(self, a, shapes, out):
        # each factor's gradient needs the others; a chain of n products keeps its partial products
        extra = tuple((numel(out), "act") for _ in range(len(shapes) - 2))
        return Autograd(inputs=tuple(range(len(shapes))), extra=extra)

    def label(self, a):
        return "×"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Mul", (), {})


class CatAttrs(Attrs):
    dim: int = 0  # the batchless axis joined: 0 = channels, -1 = the last (channels of an NHWC map)


@register
class Cat(Op):
    name = "cat"
    summary = "concatenate two or more tensors along channels, or along axis dim (the other axes must agree)"
    reference = ("concatenation along channels; `dim` picks another batchless axis (`dim: -1`, the channels of an "
                 "H×W×C map: `torch.cat(xs, dim=-1)`)")
    Attrs = CatAttrs
    onnx = "Concat"
    fill = "#b6d7a8"
    diagram_shape = "invtrapezium"
    min_inputs, max_inputs = 2, None

    def infer(self, a, shapes):
        rank = {len(s) for s in shapes}
        if rank != {len(shapes[0])}:
            raise ShapeError("cat inputs mix feature maps and flat vectors")
        axis = axis_index("cat", a.dim, len(shapes[0]), "dim")
        rest = {s[:axis] + s[axis + 1:] for s in shapes}
        if len(rest) > 1:
            if axis == 0:
                raise ShapeError("cat inputs disagree in height×width",
                                 "every branch must keep the same spatial size; check strides and padding")
            raise ShapeError(f"cat inputs disagree off axis {axis}: {', '.join(map(fmt_shape, shapes))}",
                             "every input must have the same size on each axis but the joined one")
        return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]

    def autograd(self, a, shapes, out):
        return PASS_GRAD  # the inputs' gradients are slices of the output's

    def label(self, a):
        return "concat" + (f" axis {a.dim}" if a.dim else "")

    def module(self, a, shapes):
        axis = axis_index("cat", a.dim, len(shapes[0]))
        return ModuleSpec("netc.backends.torch.runtime.Concat", (axis + 1,) if axis else (), {})


class _Binary(Op):
    """An elementwise op of two inputs, shapes broadcast (numpy rules, right-aligned)."""

    Attrs = NoAttrs
    fill = "#f4cccc"
    min_inputs, max_inputs = 2, 2
    elementwise = True
    saves = SAVES_NOTHING  # what the backward keeps

    def infer(self, a, shapes):
        return broadcast(self.name, shapes)

    def other_flops(self, a, shapes, out):
        return numel(out)

    def autograd(self, a, shapes, out):
        return self.saves

    def module(self, a, shapes):
        return ModuleSpec(f"netc.backends.torch.runtime.{self.name.capitalize()}", (), {})


@register
class Sub(_Binary):
    name = "sub"
    summary = "elementwise difference of two tensors, shapes broadcast: first minus second"
    reference = "the first input minus the second, shapes broadcast (`x - y`)"
    onnx = "Sub"
    diagram_sign = "−"  # the gradients are the output's and its negation: nothing saved


@register
class Div(_Binary):
    name = "div"
    summary = "elementwise quotient of two tensors, shapes broadcast: first divided by second"
    reference = "the first input divided by the second, shapes broadcast (`x / y`)"
    onnx = "Div"
    diagram_sign = "÷"
    saves = Autograd(inputs=(0, 1))  # both gradients need the divisor, the divisor's the dividend too


class PowAttrs(Attrs):
    exponent: float


class _Pointwise(Op):
    """An op of one input applied to each entry with constants (one FLOP an entry)."""

    fill = "#fce5cd"
    elementwise = True

    def other_flops(self, a, shapes, out):
        return numel(out)


@register
class Pow(_Pointwise):
    name = "pow"
    summary = "elementwise power by a constant exponent: x ** exponent"
    reference = "each entry raised to a constant `exponent` (`x ** 2`, `x.pow(0.5)`)"
    Attrs = PowAttrs
    onnx = "Pow"

    def label(self, a):
        return f"^{a.exponent:g}"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Pow", (a.exponent,), {})


class ScaleAttrs(Attrs):
    factor: float


@register
class Scale(_Pointwise):
    name = "scale"
    summary = "multiply by a constant factor (residual scaling in Inception-ResNet)"
    reference = "multiplication by a constant (Inception-ResNet)"
    Attrs = ScaleAttrs
    onnx = "Mul"

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING  # a constant factor: the backward needs no tensor

    def label(self, a):
        return f"×{a.factor:g}"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Scale", (a.factor,), {})


class LayerBiasAttrs(Attrs):
    init: float = 0.0
    shape: Optional[Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1, max_length=3)]] = None


class LayerScaleAttrs(LayerBiasAttrs):
    init: float = 1e-6
    # the parameter is a vector of the channels, viewed per channel where applied (timm's
    # `x.mul(self.gamma.reshape(1, -1, 1, 1))`), not a tensor of `shape`
    flat: bool = False

    @model_validator(mode="after")
    def _per_channel(self):
        if self.flat and self.shape is not None:
            raise ValueError("a flat layer scale is one scale per channel: leave 'shape' out")
        return self


CHANNEL_MUL = "netc.backends.torch.runtime.channel_mul"  # the OwnedParam function of a flat layer scale


@register
class LayerScale(Op):
    """A learnable per-channel scale (CaiT, ConvNeXt) kept on the enclosing block under this
    node's name, as torchvision's CNBlock keeps `layer_scale`: output = param * x."""

    name = "layer_scale"
    summary = "learnable scale owned by the enclosing block (init, shape; default C×1×1 on maps, C on vectors)"
    reference = ("a learnable scale `param * x`, kept on the *enclosing block* under the layer's name "
                 "(`features.1.0.layer_scale`, as torchvision's ConvNeXt), starting at `init` whatever the `init:` "
                 "scheme; `shape` defaults to C×1×1 on maps, C on vectors; `flat: true` keeps it as a vector of the "
                 "channels, viewed per channel where applied (timm's `gamma.reshape(1, -1, 1, 1)`)")
    Attrs = LayerScaleAttrs
    onnx = "Mul (by an initializer)"
    fill = "#fce5cd"

    def shape(self, a, shapes):
        x = shapes[0]
        return tuple(a.shape) if a.shape is not None else (x[0],) + (1,) * (len(x) - 1)

    def infer(self, a, shapes):
        x, p = shapes[0], self.shape(a, shapes)
        if len(p) > len(x) or any(n not in (1, m) for n, m in zip(reversed(p), reversed(x))):
            raise ShapeError(f"{self.name} shape {fmt_shape(p)} does not broadcast onto its input",
                             "each axis of the shape must equal the input's (right-aligned) or be 1; "
                             "leave shape out for one value per channel")
        return x

    def params(self, a, shapes):
        return numel(self.shape(a, shapes))

    def other_flops(self, a, shapes, out):
        return numel(out)

    def label(self, a):
        return f"layer scale {a.init:g}"

    def owned(self, a, shapes):
        if a.flat:
            return OwnedParam((shapes[0][0],), a.init, CHANNEL_MUL)
        return OwnedParam(self.shape(a, shapes), a.init, "operator.mul")


@register
class LayerBias(LayerScale):
    """A learnable bias kept on the enclosing block under this node's name, as a layer scale is:
    output = x + param (MetaFormer's StarReLU adds its `bias` of one element)."""

    name = "layer_bias"
    summary = "learnable bias owned by the enclosing block (init, shape; default C×1×1 on maps, C on vectors)"
    reference = ("a learnable bias `x + param`, kept on the *enclosing block* under the layer's name as `layer_scale` "
                 "is, starting at `init` (0) whatever the `init:` scheme; `shape` as layer_scale's (`[1]`: one "
                 "scalar, MetaFormer's StarReLU)")
    Attrs = LayerBiasAttrs
    onnx = "Add (an initializer)"

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING  # the gradients are the output's and its sum

    def label(self, a):
        return f"layer bias {a.init:g}"

    def owned(self, a, shapes):
        return OwnedParam(self.shape(a, shapes), a.init, "operator.add")


class AffineAttrs(Attrs):
    scale: float = 1.0
    bias: float = 0.0


@register
class Affine(Op):
    """A learned scalar scale and bias, `scale * x + bias` (hgnet's LearnableAffineBlock): two
    one-element parameters `scale` and `bias`, starting at the attributes' values."""

    name = "affine"
    summary = "learned scalar scale and bias: scale * x + bias (the attributes are their initial values)"
    reference = ("a learned scalar `scale * x + bias` (hgnet's `LearnableAffineBlock`), parameters `scale` and `bias` "
                 "of one element each, starting at the attributes' values")
    Attrs = AffineAttrs
    onnx = "Mul + Add"
    fill = "#fce5cd"
    elementwise = True

    def params(self, a, shapes):
        return 2

    def other_flops(self, a, shapes, out):
        return 2 * numel(out)

    def label(self, a):
        return f"×scale+bias ({a.scale:g}, {a.bias:g})"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Affine", (a.scale, a.bias), {})

    def probed(self, m):
        state = m.state_dict()
        if list(state) != ["scale", "bias"] or any(v.numel() != 1 for v in state.values()):
            return []
        return [({"scale": _single(float(state["scale"])), "bias": _single(float(state["bias"]))}, [(3, 5, 6), (4, 3)])]


def _single(v: float) -> float:
    """The shortest decimal that is `v` in single precision (0.2, not 0.20000000298023224)."""
    return next(g for g in (float(f"{v:.{n}g}") for n in range(1, 10)) if struct.unpack("f", struct.pack("f", g))[0] == v)


class ChannelScaleAttrs(Attrs):
    init: float = 1e-5
    over: Literal["channels", "last"] = "channels"
    param: Literal["gamma", "scale"] = "gamma"


@register
class ChannelScale(Op):
    """A learned scale per channel kept in a module of its own (timm's LayerScale2d and LayerScale,
    MetaFormer's Scale): `x * param`, the parameter named `param` (`gamma` or `scale`), viewed per
    channel of a C×H×W map (`over: channels`) or on the last axis (`over: last`)."""

    name = "channel_scale"
    summary = "learned per-channel scale in a module of its own (init; over channels or last; param gamma or scale)"
    reference = ("a learned scale per channel `x * param` kept in its own module (timm's `LayerScale2d`, `LayerScale`, "
                 "MetaFormer's `Scale`): `over: channels` of a C×H×W map or `last` axis, its parameter named `param` "
                 "(`gamma` or `scale`) starting at `init`")
    Attrs = ChannelScaleAttrs
    onnx = "Mul (by an initializer)"
    fill = "#fce5cd"
    elementwise = True

    def channels(self, a, shapes) -> int:
        return shapes[0][0] if a.over == "channels" else shapes[0][-1]

    def params(self, a, shapes):
        return self.channels(a, shapes)

    def other_flops(self, a, shapes, out):
        return numel(out)

    def label(self, a):
        return f"layer scale {a.init:g}"

    def module(self, a, shapes):
        kw = drop_defaults({"init": a.init, "over_channels": a.over == "channels", "param": a.param},
                           {"init": 1e-5, "over_channels": True, "param": "gamma"})
        return ModuleSpec("netc.backends.torch.runtime.ChannelScale", (self.channels(a, shapes),), kw)

    def probed(self, m):
        state = m.state_dict()
        if len(state) != 1 or next(iter(state)) not in ("gamma", "scale") or next(iter(state.values())).dim() != 1:
            return []
        (param, value), = state.items()
        init = _single(float(value[0])) if bool((value == value[0]).all()) else 1e-5
        return [(drop_defaults({"init": init, "over": over, "param": param},
                               {"init": 1e-5, "over": "channels", "param": "gamma"}), [shape])
                for over, shape in (("channels", (value.numel(), 5, 6)), ("last", (5, 6, value.numel())))]


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
    reference = "ResNet option-A shortcut: subsample, zero-pad channels"
    Attrs = PadChannelsAttrs
    onnx = "Slice + Pad"
    fill = "#fce5cd"

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
