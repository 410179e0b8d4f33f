"""Spatial padding as an op of its own: zeros or a constant, or the border continued by reflection,
replication or wrapping around (style-transfer and image-to-image generators pad by reflection
before their convs, which then pad nothing)."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from netc.ops.base import (SAVES_INPUT, SAVES_NOTHING, Attrs, ModuleSpec, Op, ShapeError, Unmappable, Window,
                           drop_defaults, need_map, register)

Sides = Union[int, Annotated[list[int], Field(min_length=2, max_length=2)],
              Annotated[list[int], Field(min_length=4, max_length=4)]]
MODULES = {"reflect": "torch.nn.ReflectionPad2d", "replicate": "torch.nn.ReplicationPad2d",
           "circular": "torch.nn.CircularPad2d"}


class PadAttrs(Attrs):
    p: Sides
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant"
    value: float = 0.0

    @model_validator(mode="after")
    def _value_is_constant(self):
        if self.value != 0.0 and self.mode != "constant":
            raise ValueError("value goes with mode: constant")
        if self.mode != "constant" and min(sides(self.p)) < 0:
            raise ValueError("a negative width (a crop, as nn.ZeroPad2d's) goes with mode: constant")
        return self


def sides(p) -> tuple[int, int, int, int]:
    """(left, right, top, bottom), torch's order: `p` is one width, [h, w] as a conv's, or the four."""
    if isinstance(p, int):
        return (p, p, p, p)
    if len(p) == 2:
        return (p[1], p[1], p[0], p[0])
    return tuple(p)


def mapped_padding(pad, mode="constant", value=None, **_):
    """(op, attrs) of a padding module or F.pad over the last two axes with fixed widths (negative
    ones crop, in constant mode: NASNet's ZeroPad2d((-1, 1, -1, 1)) shifts the map by a pixel)."""
    widths = list(pad) if isinstance(pad, (tuple, list)) else [pad] * 4
    if len(widths) == 2:  # F.pad's (left, right): the last axis only
        widths += [0, 0]
    if len(widths) != 4 or not all(isinstance(v, int) and (v >= 0 or mode == "constant") for v in widths):
        raise Unmappable(f"padding {tuple(widths)} (netc pads the height and width by fixed widths, "
                         "negative ones in constant mode)")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise Unmappable(f"{mode} padding")
    left, right, top, bottom = widths
    p = left if len(set(widths)) == 1 else [top, left] if (left, top) == (right, bottom) else widths
    return "pad", drop_defaults({"p": p, "mode": mode, "value": float(value or 0.0)},
                                {"mode": "constant", "value": 0.0})


@register
class Pad(Op):
    name = "pad"
    summary = ("pad a map: p (one width, [h, w], or [left, right, top, bottom]); mode constant (value), "
               "reflect, replicate or circular")
    reference = ("spatial padding as an op, `p` one width, `[h, w]`, or `[left, right, top, bottom]` (`nn.ZeroPad2d`, "
                 "`ConstantPad2d`, `ReflectionPad2d`, `ReplicationPad2d`, `CircularPad2d`): style-transfer and pix2pix "
                 "generators pad by reflection before their convs")
    Attrs = PadAttrs
    onnx = "Pad"
    fill = "#fce5cd"
    torch_modules = ("torch.nn.ZeroPad2d", "torch.nn.ConstantPad2d", *MODULES.values())

    def from_module(self, m, torch_cls):
        mode = {v: k for k, v in MODULES.items()}.get(torch_cls, "constant")
        return mapped_padding(m.padding, mode, getattr(m, "value", None))

    def infer(self, a, shapes):
        c, h, w = need_map(self.name, shapes)
        left, right, top, bottom = sides(a.p)
        # reflection mirrors inside the map, without its edge; wrapping takes at most the whole map
        reach = {"reflect": (h - 1, w - 1), "circular": (h, w)}.get(a.mode)
        if reach is not None and (max(top, bottom) > reach[0] or max(left, right) > reach[1]):
            raise ShapeError(f"{a.mode} padding of {max(top, bottom)}×{max(left, right)} reaches past the {h}×{w} map",
                             f"{a.mode} padding takes at most {reach[0]}×{reach[1]} here")
        if min(h + top + bottom, w + left + right) <= 0:
            raise ShapeError(f"padding {left}, {right}, {top}, {bottom} crops the {h}×{w} map to nothing",
                             "negative widths crop: keep at least a pixel")
        return (c, h + top + bottom, w + left + right)

    def autograd(self, a, shapes, out):
        # torch's reflection and replication backward kernels take the input (for its shape);
        # constant and circular padding are composed of ops that need only the widths
        return SAVES_INPUT if a.mode in ("reflect", "replicate") else SAVES_NOTHING

    def window(self, a):
        left, _, top, _ = sides(a.p)
        return Window((1, 1), (1, 1), (1, 1), (top, left))  # moves every window's start

    def rf_exact(self, a):
        return a.mode == "constant"  # reflected, replicated and wrapped pixels come from elsewhere

    def label(self, a):
        return f"pad {a.mode} {','.join(map(str, sides(a.p)))}"

    def module(self, a, shapes):
        s = sides(a.p)
        p = s[0] if len(set(s)) == 1 else s
        if a.mode != "constant":
            return ModuleSpec(MODULES[a.mode], (p,))
        if a.value == 0.0:
            return ModuleSpec("torch.nn.ZeroPad2d", (p,))
        return ModuleSpec("torch.nn.ConstantPad2d", (p, a.value))
