"""Pooling: max/avg with windows (ceil_mode, count_include_pad), global and adaptive pooling."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field

from netc.ops.base import (SAVES_NOTHING, Attrs, Autograd, Hazard, ModuleSpec, Op, ShapeError, Unmappable, Window,
                           drop_defaults, fmt_pair, need_map, numel, pair, register, torch_pair)
from netc.ops.conv import (TF_SAME, NonNegPair, PosInt, PosPair, resolve_padding, same_window, sliding_shape,
                          window_out)


class _PoolAttrs(Attrs):
    k: PosPair
    s: Optional[PosPair] = None  # defaults to the kernel, as in PyTorch
    p: Union[NonNegPair, Literal["tf_same"]] = 0  # tf_same: TensorFlow's 'SAME' (timm's MaxPool2dSame)
    ceil_mode: bool = False


class MaxPoolAttrs(_PoolAttrs):
    d: PosPair = 1


class AvgPoolAttrs(_PoolAttrs):
    count_include_pad: bool = True


class _Pool(Op):
    kind = ""
    fill = "#d9ead3"

    def geometry(self, a):
        k = pair(a.k)
        s = pair(a.s) if a.s is not None else k
        d = pair(getattr(a, "d", 1))
        return k, s, resolve_padding(a.p, k, s, d) if a.p == TF_SAME else pair(a.p), d

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        k, s, p, d = self.geometry(a)
        if a.p == TF_SAME:
            return (c, -(-h // s[0]), -(-w // s[1]))
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

    def rf_window(self, a, grid, shapes=()):
        return same_window(self.geometry(a), a.p, shapes)

    def module_class(self, a, torch_cls: str) -> str:
        return f"netc.backends.torch.runtime.{torch_cls}Same" if a.p == TF_SAME else f"torch.nn.{torch_cls}"

    def label(self, a):
        k, s, _, _ = self.geometry(a)
        return f"{self.kind}pool {k[0]}x{k[1]}/{fmt_pair(s)}"

    def module_kwargs(self, a):
        k, s, p, d = self.geometry(a)
        kw = {"kernel_size": k, "stride": s}
        if p != (0, 0) and a.p != TF_SAME:
            kw["padding"] = p
        if a.ceil_mode:
            kw["ceil_mode"] = True
        return kw

    def onnx_hazard(self, a, in_shape, out_shape):
        if not a.ceil_mode or len(in_shape) != 3:
            return None
        k, s, p, d = self.geometry(a)
        floor = tuple(window_out(n, k[i], s[i], p[i], d[i]) for i, n in enumerate(in_shape[1:]))
        if floor == tuple(out_shape[1:]):
            return None  # ceil and floor agree here: nothing depends on the rounding
        # the plain ceil formula; PyTorch then drops a last window that would start in the right padding
        naive = tuple(-(-(n + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i]) + 1 for i, n in enumerate(in_shape[1:]))
        dropped = naive != tuple(out_shape[1:])
        detail = (" PyTorch also drops a last window that would start in the right padding, which "
                  "older ONNX runtimes keep." if dropped else "")
        return Hazard(f"ceil_mode rounds {in_shape[1]}×{in_shape[2]} up to {out_shape[1]}×{out_shape[2]} "
                      f"(floor: {floor[0]}×{floor[1]}); converters and runtimes that do not implement ceil_mode "
                      f"as PyTorch does give a different output size.{detail}",
                      "pad explicitly (p) with ceil_mode: false to get the same size everywhere, or check "
                      "the exported model on the target runtime")

    def from_module(self, m, torch_cls):
        if getattr(m, "return_indices", False):
            raise Unmappable("max pooling that returns indices")
        if getattr(m, "divisor_override", None):
            raise Unmappable("average pooling with divisor_override")
        a = {"k": torch_pair(m.kernel_size), "s": torch_pair(m.stride), "p": torch_pair(m.padding),
             "ceil_mode": bool(m.ceil_mode)}
        if self.kind == "max":
            a["d"] = torch_pair(m.dilation)
        else:
            a["count_include_pad"] = bool(m.count_include_pad)
        if a["s"] == a["k"]:
            del a["s"]
        return self.name, drop_defaults(a, {"p": 0, "ceil_mode": False, "d": 1, "count_include_pad": True})

    def readings(self, m, torch_cls):
        """timm's MaxPool2dSame / AvgPool2dSame: the pooling with TF 'same' padding."""
        name, attrs = self.from_module(m, torch_cls)
        if "p" in attrs:
            return []
        window = {n: attrs.pop(n) for n in ("k", "s") if n in attrs}
        return [(name, {**window, "p": TF_SAME, **attrs})]


@register
class MaxPool(_Pool):
    name = "maxpool"
    kind = "max"
    summary = "max pooling: kernel k, stride s (default k), padding p (tf_same: TensorFlow's 'SAME'), dilation d, ceil_mode"
    Attrs = MaxPoolAttrs
    onnx = "MaxPool"
    torch_modules = ("torch.nn.MaxPool2d",)

    def autograd(self, a, shapes, out):
        return Autograd(inputs=(0,), extra=((numel(out), "index"),))  # input and argmax indices

    def module(self, a, shapes):
        kw = self.module_kwargs(a)
        if pair(a.d) != (1, 1):
            kw["dilation"] = pair(a.d)
        return ModuleSpec(self.module_class(a, "MaxPool2d"), (), kw)


@register
class AvgPool(_Pool):
    name = "avgpool"
    kind = "avg"
    summary = ("average pooling: kernel k, stride s (default k), padding p (tf_same: TensorFlow's 'SAME'), ceil_mode, "
               "count_include_pad")
    Attrs = AvgPoolAttrs
    onnx = "AveragePool"
    torch_modules = ("torch.nn.AvgPool2d",)

    def module(self, a, shapes):
        kw = self.module_kwargs(a)
        if not a.count_include_pad:
            kw["count_include_pad"] = False
        return ModuleSpec(self.module_class(a, "AvgPool2d"), (), kw)


class BlurPoolAttrs(Attrs):
    k: Annotated[int, Field(gt=1, le=16)] = 3
    s: PosInt = 2
    pad_mode: Literal["reflect", "constant", "replicate", "circular"] = "reflect"


@register
class BlurPool(Op):
    """Anti-aliased downsampling (Zhang 2019; timm's BlurPool2d): pad by ((s - 1) + (k - 1)) // 2,
    then blur each channel with the k×k binomial filter at stride s. Nothing learned."""

    name = "blurpool"
    summary = "anti-aliased downsampling: pad (pad_mode), binomial k×k blur per channel at stride s"
    reference = ("blur-then-subsample (timm's `BlurPool2d`): padding `((s - 1) + (k - 1)) // 2` by `pad_mode`, then "
                 "each channel convolved with the binomial k×k filter at stride `s`; no parameters")
    Attrs = BlurPoolAttrs
    onnx = "Pad + Conv (depthwise, constant filter)"
    fill = "#d9ead3"

    def geometry(self, a):
        p = ((a.s - 1) + (a.k - 1)) // 2
        return (a.k, a.k), (a.s, a.s), (p, p), (1, 1)

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        k, s, p, d = self.geometry(a)
        if a.pad_mode == "reflect" and p[0] >= min(h, w):
            raise ShapeError(f"blurpool's reflect padding of {p[0]} reaches past the {h}×{w} map",
                             "feed a larger map, or pad_mode: constant")
        return (c, *sliding_shape(self.name, (h, w), k, s, p, d))

    def macs(self, a, shapes, out):
        return numel(out) * a.k * a.k  # a depthwise conv, as torch's flop counter counts it

    def autograd(self, a, shapes, out):
        # the padded map (the conv's input) and the k×k filter (expanded: one storage); reflection
        # and replication padding keep their input too (as the pad op's)
        c, h, w = shapes[0]
        p = self.geometry(a)[2][0]
        return Autograd(inputs=(0,) if a.pad_mode in ("reflect", "replicate") else (),
                        extra=((c * (h + 2 * p) * (w + 2 * p), "act"), (a.k * a.k, "stat")))

    def window(self, a):
        k, s, p, d = self.geometry(a)
        return Window(k, s, d, p)

    def rf_exact(self, a):
        return a.pad_mode == "constant"

    def label(self, a):
        return f"blurpool {a.k}x{a.k}/{a.s}"

    def module(self, a, shapes):
        kw = drop_defaults({"filt_size": a.k, "stride": a.s, "pad_mode": a.pad_mode},
                           {"filt_size": 3, "stride": 2, "pad_mode": "reflect"})
        return ModuleSpec("netc.backends.torch.runtime.BlurPool2d", (shapes[0][0],), kw)

    def probed(self, m):
        k, s, mode = getattr(m, "filt_size", 3), getattr(m, "stride", 2), getattr(m, "pad_mode", "reflect")
        if m.state_dict() or not all(isinstance(v, int) for v in (k, s)) or not isinstance(mode, str):
            return []
        c = getattr(m, "channels", None) or 3
        return [(drop_defaults({"k": k, "s": s, "pad_mode": mode}, {"k": 3, "s": 2, "pad_mode": "reflect"}),
                 [(c, 9, 10), (c, 10, 9)])]


class AdaptiveAttrs(Attrs):
    out: Union[PosInt, Annotated[list[PosInt], Field(min_length=2, max_length=2)]] = 1


class _Adaptive(Op):
    torch_cls = ""
    kind = ""
    fill = "#d9ead3"

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
        return Window(k, tuple(max(1, n // m) for n, m in zip(grid, o)), even=all(n % m == 0 for n, m in zip(grid, o)))

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

    def onnx_hazard(self, a, in_shape, out_shape):
        if len(in_shape) != 3:
            return None
        (_, h, w), (oh, ow) = in_shape, pair(getattr(a, "out", 1))
        if h % oh == 0 and w % ow == 0:
            return None  # exported as a plain pooling window: k = s = n / out
        what = f"output {oh}×{ow} does not divide its {h}×{w} input"
        if self.kind == "max":
            return Hazard(f"{what}: ONNX has no adaptive max pooling and its windows then overlap "
                          "unevenly, so there is no mapping", "use an input size (--input) or an 'out' "
                          f"that divides {h}×{w}, or a maxpool with an explicit window", fatal=True)
        return Hazard(f"{what}: exported as per-window slices and means (exact, but a larger graph); "
                      "the TorchScript exporter and many converters fail on this", "use an input size "
                      f"(--input) or an 'out' that divides {h}×{w} for a single AveragePool")

    def from_module(self, m, torch_cls):
        out = m.output_size
        out = torch_pair(out) if isinstance(out, (tuple, list)) else out
        if None in (out if isinstance(out, list) else [out]):
            raise Unmappable("adaptive pooling that keeps a dimension (None)")
        if self.kind == "avg" and out == 1:
            return "gap", {}
        return self.name, {"out": out}


@register
class AdaptiveAvgPool(_Adaptive):
    name = "adaptive_avgpool"
    kind = "avg"
    summary = "adaptive average pooling to an out×out (or [h, w]) grid"
    Attrs = AdaptiveAttrs
    torch_cls = "torch.nn.AdaptiveAvgPool2d"
    onnx = "AveragePool, or slices + ReduceMean"
    torch_modules = (torch_cls,)


@register
class AdaptiveMaxPool(_Adaptive):
    name = "adaptive_maxpool"
    kind = "max"
    summary = "adaptive max pooling to an out×out (or [h, w]) grid"
    Attrs = AdaptiveAttrs
    torch_cls = "torch.nn.AdaptiveMaxPool2d"
    onnx = "MaxPool"
    torch_modules = (torch_cls,)


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
    onnx = "ReduceMean"

    def infer(self, a, shapes):
        c, _, _ = need_map(self.name, shapes)
        return (c, 1, 1)

    def label(self, a):
        return "global avgpool"

    def module(self, a, shapes):
        return ModuleSpec(self.torch_cls, ((1, 1),), {})
