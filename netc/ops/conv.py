"""Convolutions: conv (square, asymmetric, strided, dilated, grouped), depthwise-separable, and the
transposed conv of decoders."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field

from netc.ops.base import (Attrs, Autograd, ModuleSpec, Op, ShapeError, Unmappable, Window, drop_defaults, fmt_pair,
                           fmt_shape, need_map, numel, pair, register, torch_pair)

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosPair = Union[PosInt, Annotated[list[PosInt], Field(min_length=2, max_length=2)]]
NonNegPair = Union[NonNegInt, Annotated[list[NonNegInt], Field(min_length=2, max_length=2)]]
Padding = Union[NonNegPair, Literal["same", "valid"]]
TF_SAME = "tf_same"  # TensorFlow's 'SAME': ceil(n / s) outputs, the padding from the input's size, the odd pixel after


def tf_same(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of an axis of `n` entries for a window k, s, d."""
    total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


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
    """Symmetric padding per axis; 'same' is defined for stride 1 as in PyTorch; 'tf_same' depends
    on the input's size: this is its padding before an input that the stride divides."""
    if p == "valid":
        return (0, 0)
    if p == TF_SAME:
        return (tf_same(s[0], k[0], s[0], d[0])[0], tf_same(s[1], k[1], s[1], d[1])[0])
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


class WeightStd(Attrs):
    """Weight standardisation (timm's StdConv2d; with `gain`, ScaledStdConv2d of NF-Nets): each filter
    standardised to zero mean and unit variance (eps) before the conv; with `gain`, then scaled by a
    learned gain per filter (parameter `gain`) times gamma / sqrt(fan-in)."""
    eps: Annotated[float, Field(gt=0)] = 1e-6
    gain: bool = False
    gamma: float = 1.0


class _ConvAttrs(Attrs):
    out: PosInt
    k: PosPair
    s: PosPair = 1
    p: NonNegPair = 0
    d: PosPair = 1
    groups: PosInt = 1
    bias: bool = True


class ConvAttrs(_ConvAttrs):
    p: Union[NonNegPair, Literal["same", "valid", "tf_same"]] = 0
    ws: Optional[WeightStd] = None


def _check_groups(groups: int, c_in: int, c_out: int) -> None:
    for what, n in (("input", c_in), ("output", c_out)):
        if n % groups:
            raise ShapeError(f"groups={groups} does not divide the {n} {what} channels",
                             "groups must divide both input and output channels")


def _padding_for_torch(a):
    return a.p if isinstance(a.p, str) else pair(a.p)


CONV_DEFAULTS = {"s": 1, "p": 0, "output_padding": 0, "d": 1, "groups": 1, "bias": True}


def conv_attrs(m, p, **after_p) -> dict:
    """A torch conv's or transposed conv's attributes, in the order a spec writes them, defaults dropped."""
    if m.padding_mode != "zeros":
        raise Unmappable(f"padding_mode '{m.padding_mode}' (netc pads with zeros)")
    return drop_defaults({"out": m.out_channels, "k": torch_pair(m.kernel_size), "s": torch_pair(m.stride), "p": p,
                          **after_p, "d": torch_pair(m.dilation), "groups": m.groups, "bias": m.bias is not None},
                         CONV_DEFAULTS)


def _gamma(scale: float, fan_in: int) -> float:
    """The shortest gamma whose gamma / sqrt(fan-in) is `scale` (ScaledStdConv2d keeps only the scale)."""
    exact = scale * fan_in ** 0.5
    return next((g for g in (float(f"{exact:.{n}g}") for n in range(1, 18)) if g * fan_in ** -0.5 == scale), exact)


@register
class Conv(Op):
    name = "conv"
    summary = "2-D convolution: out channels, kernel k, stride s, padding p (int, [h, w], same, valid), dilation d, groups, bias"
    reference = ("2-D convolution (`nn.Conv2d`); `p: tf_same` pads as TensorFlow's 'SAME' for the input's size, the odd "
                 "pixel after (timm's `Conv2dSame`); `ws: {eps, gain, gamma}` standardises each filter first (timm's "
                 "`StdConv2d`; with `gain`, `ScaledStdConv2d`: a learned gain per filter times gamma / sqrt(fan-in))")
    Attrs = ConvAttrs
    onnx = "Conv"
    fill = "#cfe2f3"
    torch_modules = ("torch.nn.Conv2d",)

    def from_module(self, m, torch_cls):
        return self.name, conv_attrs(m, m.padding if isinstance(m.padding, str) else torch_pair(m.padding))

    def readings(self, m, torch_cls):
        """TF 'same' padding (timm's Conv2dSame), weight standardisation (StdConv2d, ScaledStdConv2d
        and their 'Same' forms): the constants they keep are read from `eps`, `gain`, `scale`."""
        zero = not isinstance(m.padding, str) and tuple(m.padding) == (0, 0)
        same = [TF_SAME] if zero else []
        ws = {"eps": float(getattr(m, "eps", 1e-6))}
        gain = dict(m.named_parameters(recurse=False)).get("gain")
        if gain is not None and gain.numel() == m.out_channels:
            fan_in = m.weight[0].numel()
            ws.update(gain=True, gamma=_gamma(float(getattr(m, "scale", fan_in ** -0.5)), fan_in))
        ws = drop_defaults(ws, {"eps": 1e-6, "gain": False, "gamma": 1.0})
        written = m.padding if isinstance(m.padding, str) else torch_pair(m.padding)
        return [(self.name, conv_attrs(m, p)) for p in same] + [
            (self.name, {**conv_attrs(m, p), "ws": ws}) for p in [written, *same]]

    def geometry(self, a):
        k, s, d = pair(a.k), pair(a.s), pair(a.d)
        return k, s, resolve_padding(a.p, k, s, d), d

    def infer(self, a, shapes):
        c, h, w = need_map("conv", shapes)
        _check_groups(a.groups, c, a.out)
        k, s, p, d = self.geometry(a)
        if a.p == "same":  # torch pads an even extent unevenly (one more after): the size stays
            return (a.out, h, w)
        if a.p == TF_SAME:
            return (a.out, -(-h // s[0]), -(-w // s[1]))
        return (a.out, *sliding_shape("conv", (h, w), k, s, p, d))

    def params(self, a, shapes):
        k = pair(a.k)
        gain = a.out if getattr(a, "ws", None) is not None and a.ws.gain else 0  # conv_transpose has no ws
        return a.out * (shapes[0][0] // a.groups) * k[0] * k[1] + (a.out if a.bias else 0) + gain

    def macs(self, a, shapes, out):
        k = pair(a.k)
        return numel(out) * (shapes[0][0] // a.groups) * k[0] * k[1]

    def window(self, a):
        k, s, p, d = self.geometry(a)
        return Window(k, s, d, p)

    def rf_window(self, a, grid, shapes=()):
        return same_window(self.geometry(a), a.p, shapes)

    def label(self, a):
        return ("ws " if a.ws is not None else "") + _label(self.name, a)

    def module(self, a, shapes):
        same = a.p == TF_SAME
        kw = {"kernel_size": pair(a.k), "stride": pair(a.s), **({} if same else {"padding": _padding_for_torch(a)})}
        if a.ws is not None:
            ws = drop_defaults({"eps": a.ws.eps, "gain": a.ws.gain, "gamma": a.ws.gamma, "same_pad": same},
                               {"eps": 1e-6, "gain": False, "gamma": 1.0, "same_pad": False})
            return ModuleSpec("netc.backends.torch.runtime.StdConv2d", (shapes[0][0], a.out), {**kw, **_unusual(a), **ws})
        cls = "netc.backends.torch.runtime.Conv2dSame" if same else "torch.nn.Conv2d"
        return ModuleSpec(cls, (shapes[0][0], a.out), {**kw, **_unusual(a)})


def same_window(geometry, p, shapes) -> Window:
    """The sliding window of a conv or pool; with TF 'same' padding, padded as for the input's size."""
    k, s, pad, d = geometry
    if p == TF_SAME and shapes and len(shapes[0]) == 3:
        pad = tuple(tf_same(shapes[0][1 + i], k[i], s[i], d[i])[0] for i in range(2))
    return Window(k, s, d, pad)


def _label(kind: str, a) -> str:
    """`conv 3x3/2, 64, g32, d2`: kernel, stride, out channels, groups and dilation where not 1."""
    k, s, d = pair(a.k), pair(a.s), pair(a.d)
    text = f"{kind} {k[0]}x{k[1]}"
    if s != (1, 1):
        text += f"/{fmt_pair(s)}"
    text += f", {a.out}"
    if a.groups > 1:
        text += f", g{a.groups}"
    if d != (1, 1):
        text += f", d{fmt_pair(d)}"
    return text


def _unusual(a) -> dict:
    """The torch keywords of a conv's dilation, groups and bias where they are not the default."""
    kw = {}
    if pair(a.d) != (1, 1):
        kw["dilation"] = pair(a.d)
    if a.groups != 1:
        kw["groups"] = a.groups
    if not a.bias:
        kw["bias"] = False
    return kw


class Conv1dAttrs(_ConvAttrs):  # a conv's, one axis
    k: PosInt
    s: PosInt = 1
    p: NonNegInt = 0
    d: PosInt = 1


@register
class Conv1d(Op):
    """A 1-D convolution along the last axis of a C×L input (`nn.Conv1d`): efficient channel
    attention (ECA) slides one over the channel descriptor viewed as 1×C."""

    name = "conv1d"
    summary = "1-D convolution along the last axis of a C×L input: out channels, kernel k, stride s, padding p, dilation d, groups, bias"
    reference = "1-D convolution (`nn.Conv1d`) over a C×L input; ECA's conv over the channel descriptor (1×C)"
    Attrs = Conv1dAttrs
    onnx = "Conv"
    fill = "#cfe2f3"
    torch_modules = ("torch.nn.Conv1d",)

    def from_module(self, m, torch_cls):
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise Unmappable(f"1-D conv padding {m.padding!r} ({m.padding_mode}): netc pads by fixed widths of zeros")
        return self.name, drop_defaults({"out": m.out_channels, "k": m.kernel_size[0], "s": m.stride[0],
                                         "p": m.padding[0], "d": m.dilation[0], "groups": m.groups,
                                         "bias": m.bias is not None}, CONV_DEFAULTS)

    def infer(self, a, shapes):
        if len(shapes[0]) != 2:
            raise ShapeError(f"conv1d needs a C×L input, got {fmt_shape(shapes[0])}", "view the input as C×L first")
        c, n = shapes[0]
        _check_groups(a.groups, c, a.out)
        out = window_out(n, a.k, a.s, a.p, a.d)
        if out <= 0:
            raise ShapeError(f"conv1d window {a.k} (dilation {a.d}) is longer than its padded input {n} + 2×{a.p}",
                             "use a smaller kernel, add padding, or feed a longer input")
        return (a.out, out)

    def params(self, a, shapes):
        return a.out * (shapes[0][0] // a.groups) * a.k + (a.out if a.bias else 0)

    def macs(self, a, shapes, out):
        return numel(out) * (shapes[0][0] // a.groups) * a.k

    def mixed_axes(self, a, shapes):
        return (0,)  # each output reads every input channel of its group; the last axis through a window

    def label(self, a):
        return f"conv1d {a.k}" + (f"/{a.s}" if a.s != 1 else "") + f", {a.out}"

    def module(self, a, shapes):
        kw = drop_defaults({"stride": a.s, "padding": a.p, "dilation": a.d, "groups": a.groups, "bias": a.bias},
                           {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True})
        return ModuleSpec("torch.nn.Conv1d", (shapes[0][0], a.out, a.k), kw)


class SepConvAttrs(Attrs):
    out: PosInt
    k: PosPair
    s: PosPair = 1
    p: Padding = 0  # not tf_same: timm's separable convs pad symmetrically
    d: PosPair = 1
    bias: bool = False


@register
class SepConv(Op):
    """Depthwise k×k conv (one filter per channel) followed by a pointwise 1×1 conv.

    Module names follow timm's legacy Xception `SeparableConv2d`: `conv1`, `pointwise`.
    """

    name = "sepconv"
    summary = "depthwise-separable conv: depthwise k×k (stride s, padding p, dilation d) then pointwise 1×1 to out channels"
    reference = "depthwise k×k then pointwise 1×1 (timm's Xception names)"
    Attrs = SepConvAttrs
    onnx = "Conv (depthwise) + Conv (pointwise)"
    fill = "#cfe2f3"

    def from_module(self, m, torch_cls):
        """timm's (and netc's) SeparableConv2d: `conv1` (depthwise) and `pointwise`."""
        return self.name, drop_defaults({"out": m.pointwise.out_channels, "k": torch_pair(m.conv1.kernel_size),
                                         "s": torch_pair(m.conv1.stride),
                                         "p": m.conv1.padding if isinstance(m.conv1.padding, str) else torch_pair(m.conv1.padding),
                                         "d": torch_pair(m.conv1.dilation), "bias": m.conv1.bias is not None},
                                        {"s": 1, "p": 0, "d": 1, "bias": False})

    def infer(self, a, shapes):
        c, h, w = need_map("sepconv", shapes)
        geometry = Conv.geometry(self, a)
        if a.p == "same":  # as conv's
            return (a.out, h, w)
        return (a.out, *sliding_shape("sepconv", (h, w), *geometry))

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
        k, s, p, d = Conv.geometry(self, a)
        return Window(k, s, d, p)

    def label(self, a):
        k, s = pair(a.k), pair(a.s)
        stride = f"/{fmt_pair(s)}" if s != (1, 1) else ""
        return f"sepconv {k[0]}x{k[1]}{stride}, {a.out}"

    def module(self, a, shapes):
        kw = {"kernel_size": pair(a.k), "stride": pair(a.s), "padding": _padding_for_torch(a),
              "dilation": pair(a.d), "bias": a.bias}
        return ModuleSpec("netc.backends.torch.runtime.SeparableConv2d", (shapes[0][0], a.out), kw)


class ConvTransposeAttrs(_ConvAttrs):  # p numbers only: torch's transposed conv has no 'same' or 'valid'
    output_padding: NonNegPair = 0


@register
class ConvTranspose(Op):
    """The transposed conv (`nn.ConvTranspose2d`, Caffe's Deconvolution): the gradient of a conv
    with respect to its input, the learned upsampling of FCN, U-Net and DCGAN decoders. Its weight
    is in × out/groups × k × k; each input pixel spreads into a k×k patch of the output at stride s.

    Receptive field: it is a stride-1 conv (kernel k, dilation d) over the input upsampled s-fold by
    inserting zeros, so the jump divides by s first (`upsampling`) and the window then has stride 1."""

    name = "conv_transpose"
    summary = ("transposed 2-D conv (learned upsampling): out channels, kernel k, stride s, padding p, "
               "output_padding, dilation d, groups, bias")
    reference = ("transposed 2-D convolution (`nn.ConvTranspose2d`, Caffe's Deconvolution), the learned upsampling of "
                 "FCN/U-Net/DCGAN decoders; MACs = input elements × out/groups × k_h·k_w (as "
                 "`torch.utils.flop_counter`); the table's jump divides by `s` before its window widens the receptive "
                 "field")
    Attrs = ConvTransposeAttrs
    onnx = "ConvTranspose"
    fill = "#cfe2f3"
    torch_modules = ("torch.nn.ConvTranspose2d",)

    def from_module(self, m, torch_cls):
        return self.name, conv_attrs(m, torch_pair(m.padding), output_padding=torch_pair(m.output_padding))

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        _check_groups(a.groups, c, a.out)
        k, s, p, op, d = pair(a.k), pair(a.s), pair(a.p), pair(a.output_padding), pair(a.d)
        if any(op[i] >= max(s[i], d[i]) for i in range(2)):
            raise ShapeError(f"output_padding {fmt_pair(op)} must be smaller than the stride {fmt_pair(s)} "
                             f"or the dilation {fmt_pair(d)}", "output_padding only picks among the sizes a stride allows")
        out = tuple((n - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i, n in enumerate((h, w)))
        if min(out) <= 0:
            raise ShapeError(f"padding {fmt_pair(p)} crops the {h}×{w} input's {(h - 1) * s[0] + d[0] * (k[0] - 1) + 1}"
                             f"×{(w - 1) * s[1] + d[1] * (k[1] - 1) + 1} output to nothing", "use a smaller padding")
        return (a.out, *out)

    params = Conv.params  # in × out/groups × k × k weights (stored in × out/groups here) and the bias

    def macs(self, a, shapes, out):
        # every input element meets out/groups x k x k weights (torch.utils.flop_counter counts alike)
        k = pair(a.k)
        return numel(shapes[0]) * (a.out // a.groups) * k[0] * k[1]

    def window(self, a):
        # a stride-1 conv over the zero-stuffed grid, padded d*(k-1) - p before its first pixel
        k, d, p = pair(a.k), pair(a.d), pair(a.p)
        return Window(k, (1, 1), d, tuple(d[i] * (k[i] - 1) - p[i] for i in range(2)))

    def upsampling(self, a, shapes):
        return pair(a.s)

    def label(self, a):
        return _label(self.name, a)

    def module(self, a, shapes):
        kw = {"kernel_size": pair(a.k), "stride": pair(a.s), "padding": pair(a.p)}
        if pair(a.output_padding) != (0, 0):
            kw["output_padding"] = pair(a.output_padding)
        return ModuleSpec("torch.nn.ConvTranspose2d", (shapes[0][0], a.out), {**kw, **_unusual(a)})
