"""Resampling a map to another grid: upsample (nearest or bilinear), the decoder step of FCN,
U-Net, FPN and HRNet (torch's nn.Upsample / F.interpolate), and the pixel shuffles that trade
channels for resolution (ESPCN's sub-pixel convolution) and back (space-to-depth stems)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from netc.ops.base import (SAVES_NOTHING, Attrs, ModuleSpec, Op, ShapeError, Unmappable, Window, drop_defaults,
                           fmt_pair, need_map, pair, register, torch_pair)

PosInt = Annotated[int, Field(gt=0)]
PairOf = Union[PosInt, Annotated[list[PosInt], Field(min_length=2, max_length=2)]]


class UpsampleAttrs(Attrs):
    scale: Optional[PairOf] = None
    size: Optional[PairOf] = None
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: bool = False

    @model_validator(mode="after")
    def _one_target(self):
        if (self.scale is None) == (self.size is None):
            raise ValueError("give either scale (an integer factor) or size (the output H×W), not both or neither")
        if self.align_corners and self.mode != "bilinear":
            raise ValueError("align_corners goes with mode: bilinear")
        return self


@register
class Upsample(Op):
    name = "upsample"
    summary = ("resample a map to a finer grid, by an integer scale or to a size [h, w], nearest or bilinear "
               "(align_corners): nn.Upsample")
    reference = ("`nn.Upsample`: a finer grid, by an integer factor (`scale`) or to a `size` (int or [h, w]); "
                 "`align_corners` for bilinear only (FCN, U-Net, FPN decoders); the table's jump and a feature map's "
                 "stride divide by the factor")
    Attrs = UpsampleAttrs
    onnx = "Resize"
    torch_modules = ("torch.nn.Upsample",)

    def from_module(self, m, torch_cls):
        return mapped_interpolation(m.size, m.scale_factor, m.mode, m.align_corners)

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        if a.size is not None:
            oh, ow = pair(a.size)
            if oh < h or ow < w:
                raise ShapeError(f"upsample to {oh}×{ow} would shrink the {h}×{w} input",
                                 "upsample enlarges the grid; use a pool to shrink it")
            return (c, oh, ow)
        sh, sw = pair(a.scale)
        return (c, h * sh, w * sw)

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING  # the backward of nearest and bilinear upsampling needs only the shapes

    def upsampling(self, a, shapes):
        _, h, w = shapes[0]
        if a.scale is not None:
            return pair(a.scale)
        oh, ow = pair(a.size)
        return (oh // h if oh % h == 0 else 1, ow // w if ow % w == 0 else 1)

    def label(self, a):
        how = f"x{fmt_pair(pair(a.scale))}" if a.scale is not None else f"to {fmt_pair(pair(a.size))}"
        return f"upsample {how} {a.mode}"

    def module(self, a, shapes):
        kw = {"scale_factor": _torch_pair(a.scale)} if a.scale is not None else {"size": _torch_pair(a.size)}
        kw["mode"] = a.mode
        if a.mode == "bilinear":
            kw["align_corners"] = a.align_corners
        return ModuleSpec("torch.nn.Upsample", (), kw)


def _torch_pair(v):
    h, w = pair(v)
    return h if h == w else (h, w)


class FactorAttrs(Attrs):
    factor: PosInt


def mapped_interpolation(size=None, scale_factor=None, mode="nearest", align_corners=None, antialias=False, **_):
    """(op, attrs) of nn.Upsample / F.interpolate with a fixed integer scale or size."""
    if mode not in ("nearest", "bilinear") or antialias:
        raise Unmappable(f"{'antialiased ' if antialias else ''}{mode} interpolation (netc upsamples nearest or "
                         "bilinear)")
    if size is not None:
        if not all(isinstance(v, int) for v in (size if isinstance(size, (tuple, list)) else [size])):
            raise Unmappable("interpolation to a size computed from a tensor")
        a = {"size": torch_pair(size)}
    else:
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else [scale_factor]
        if not all(isinstance(v, (int, float)) and float(v).is_integer() and v >= 1 for v in factors):
            raise Unmappable(f"interpolation by scale {scale_factor} (netc upsamples by integer factors)")
        a = {"scale": torch_pair(tuple(int(v) for v in factors) * (2 if len(factors) == 1 else 1))}
    a["mode"] = mode
    if mode == "bilinear" and align_corners:
        a["align_corners"] = True
    return "upsample", drop_defaults(a, {"mode": "nearest"})


@register
class PixelShuffle(Op):
    """C·r²×H×W -> C×rH×rW (`nn.PixelShuffle(r)`, Shi et al. 2016's sub-pixel convolution): each
    group of r² channels becomes an r×r block of pixels."""

    name = "pixel_shuffle"
    summary = "rearrange C*r^2 x H x W into C x rH x rW (factor r): ESPCN's sub-pixel upsampling"
    reference = "`nn.PixelShuffle` (C·r²×H×W → C×rH×rW, ESPCN's sub-pixel upsampling; the jump divides by r)"
    Attrs = FactorAttrs
    onnx = "DepthToSpace (CRD)"
    torch_modules = ("torch.nn.PixelShuffle",)
    torch_functions = ("torch.nn.functional.pixel_shuffle",)

    def from_module(self, m, torch_cls):
        return self.name, {"factor": m.upscale_factor}

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        r2 = a.factor * a.factor
        if c % r2:
            raise ShapeError(f"pixel_shuffle by {a.factor} needs channels divisible by {r2}, got {c}",
                             f"give the conv before it a multiple of {r2} output channels")
        return (c // r2, h * a.factor, w * a.factor)

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING  # its backward is the inverse rearrangement

    def upsampling(self, a, shapes):
        return (a.factor, a.factor)

    def label(self, a):
        return f"pixel_shuffle x{a.factor}"

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.PixelShuffle", (a.factor,))


@register
class PixelUnshuffle(Op):
    """C×H×W -> C·r²×H/r×W/r (`nn.PixelUnshuffle(r)`, space-to-depth): each r×r block of pixels
    becomes r² channels; for the receptive field, an r×r window at stride r."""

    name = "pixel_unshuffle"
    summary = "rearrange C x H x W into C*r^2 x H/r x W/r (factor r): space-to-depth"
    reference = "`nn.PixelUnshuffle` (space-to-depth; an r×r window at stride r)"
    Attrs = FactorAttrs
    onnx = "Reshape + Transpose + Reshape"
    torch_modules = ("torch.nn.PixelUnshuffle",)
    torch_functions = ("torch.nn.functional.pixel_unshuffle",)

    def from_module(self, m, torch_cls):
        return self.name, {"factor": m.downscale_factor}

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        if h % a.factor or w % a.factor:
            raise ShapeError(f"pixel_unshuffle by {a.factor} needs a height and width divisible by it, got {h}×{w}",
                             "pad or resize the map first")
        return (c * a.factor * a.factor, h // a.factor, w // a.factor)

    def autograd(self, a, shapes, out):
        return SAVES_NOTHING

    def window(self, a):
        return Window((a.factor, a.factor), (a.factor, a.factor))

    def label(self, a):
        return f"pixel_unshuffle /{a.factor}"

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.PixelUnshuffle", (a.factor,))
