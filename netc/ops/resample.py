"""Resampling a map to a finer grid: upsample (nearest or bilinear), the decoder step of FCN,
U-Net, FPN and HRNet (torch's nn.Upsample / F.interpolate)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from netc.ops.base import SAVES_NOTHING, Attrs, ModuleSpec, Op, ShapeError, fmt_pair, need_map, pair, register

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
    Attrs = UpsampleAttrs

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
