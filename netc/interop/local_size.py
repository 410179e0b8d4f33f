"""A block's sizes as its own input's: an imported layer that reads a map's height or width
(ResNeSt's split attention reshapes to `($in_h + 3) // 4`) is written as an expression of the
network input's size, and inside a template `$in_h` is the instance's input's instead. Where the
block's input grid is `(in + o1) // s1` and the size read is `(in + o2) // s2` of the network
input, with s1 dividing s2 and o2 - o1, the size is `(m + c) // s` of the block's input m, where
c = (o2 - o1) / s1 and s = s2 / s1: floor((floor((in + o1) / s1) + c) / s) = floor((in + o2) / s2)
for integers and positive divisors. So the block templates, and each instance computes its own
sizes at every input size."""
from __future__ import annotations

import re

from netc.interop.grid import expression

AXES = ("in_h", "in_w")
_GRID = re.compile(r"\$(in_[hw])(?: ([+-]) (\d+))?")  # `$in_h`, `$in_h + 3`, `$in_h - 1`
_STRIDED = re.compile(r"\((.*)\) // (\d+)|(.*) // (\d+)")


class _NotLocal(Exception):
    """A size that is no function of the block's input of the form the grid gives."""


def localised(body, grid) -> object | None:
    """`body` with each size of the network input's (`$in_h`, `$in_w`) written as the block's
    input's, given the block's input grid (per axis `(offset, stride)`, or an expression); None
    where a size is no such function of the block's input (the block is then not templated)."""
    if grid is None:
        return None
    try:
        return _rewritten(body, dict(zip(AXES, grid)))
    except _NotLocal:
        return None


def _rewritten(value, grid: dict):
    if isinstance(value, dict):
        return {k: _rewritten(v, grid) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewritten(v, grid) for v in value]
    if isinstance(value, str) and "$in_" in value:
        return _local(value, grid)
    return value


def _local(text: str, grid: dict) -> str:
    """The size `text` (an expression of the network input's) as the block input's, or _NotLocal."""
    if "$in_c" in text:
        raise _NotLocal(text)
    for var, axis in grid.items():
        if text == expression(var, axis):
            return f"${var}"
    var, offset, stride = _parsed(text)
    axis = grid[var]
    if isinstance(axis, str):
        raise _NotLocal(text)  # the block's input is sized by a reshape: no (offset, stride)
    o1, s1 = axis
    if stride % s1 or (offset - o1) % s1:
        raise _NotLocal(text)
    return expression(var, ((offset - o1) // s1, stride // s1))


def _parsed(text: str) -> tuple[str, int, int]:
    """(axis, offset, stride) of a size written `(… + offset) // stride` (grid.expression's forms)."""
    strided = _STRIDED.fullmatch(text)
    inner, stride = (text, 1) if strided is None else (strided[1] or strided[3], int(strided[2] or strided[4]))
    match = _GRID.fullmatch(inner)
    if match is None or stride < 1:
        raise _NotLocal(text)
    offset = int(match[3] or 0) * (-1 if match[2] == "-" else 1)
    return match[1], offset, stride
