"""Sizes as expressions of the runtime input, for generated code: an op attribute the spec computes
from `$in_h`/`$in_w` (`upsample: {size: [$in_h, $in_w]}`, a template's `$in_h // 2`) evaluated a
second time with those two as `Sym`s, integers that also carry their Python source over the
height `{H}` and width `{W}` of the tensor that binds them (the network's input, or a template
instance's). Generated code writes that source on `t.shape[-2]`/`t.shape[-1]`, as torchvision's
segmentation heads do (`F.interpolate(x, size=input.shape[-2:])`).

Only `+ - * // %` and unary minus of integers follow the input: anything else that reads a `Sym`
(a function, a comparison, `if`, an index, true division, a float) gives a number valid at the
compiled size only, so the attribute is not symbolic and generated code keeps its size fixed.
"""
from __future__ import annotations

import ast
import operator
from collections import ChainMap
from typing import Any

from netc.expr import Evaluator, Unavailable, substitute
from netc.ir.sized import SIZED, bound  # noqa: F401  (the frontend's side of the record)

_OPS = {"add": ("+", operator.add), "sub": ("-", operator.sub), "mul": ("*", operator.mul),
        "floordiv": ("//", operator.floordiv), "mod": ("%", operator.mod)}


class Sym(int):
    """An integer computed from the input's height or width: its value at the compiled size, and
    `src`, its Python source over `{H}` and `{W}`."""

    src: str

    def __new__(cls, value: int, src: str):
        obj = super().__new__(cls, value)
        obj.src = src
        return obj

    def __neg__(self):
        return Sym(-int.__int__(self), f"(-{self.src})")

    def __pos__(self):
        return self


def _source(v) -> str:
    return v.src if isinstance(v, Sym) else repr(int.__int__(v))


def _arith(symbol: str, fn, reflected: bool):
    def method(self, other):
        if isinstance(other, bool) or not isinstance(other, int):
            return fn(int.__int__(self), other) if not reflected else fn(other, int.__int__(self))
        a, b = (other, self) if reflected else (self, other)
        value = fn(int.__int__(a), int.__int__(b))
        return Sym(value, f"({_source(a)} {symbol} {_source(b)})")
    return method


for _name, (_symbol, _fn) in _OPS.items():
    setattr(Sym, f"__{_name}__", _arith(_symbol, _fn, False))
    setattr(Sym, f"__r{_name}__", _arith(_symbol, _fn, True))

_FOLLOWING = (ast.Expression, ast.Name, ast.Constant, ast.List, ast.Tuple)


class SymbolicEvaluator(Evaluator):
    """The language's evaluator, noting where a `Sym` is read by anything but integer arithmetic."""

    def __init__(self, text, env, loc):
        super().__init__(text, env, loc)
        self.reads = 0
        self.fixed = False

    def visit_Name(self, node):
        value = super().visit_Name(node)
        self.reads += isinstance(value, Sym)
        return value

    def __call__(self, node):
        before = self.reads
        value = super().__call__(node)
        if self.reads != before and not isinstance(node, _FOLLOWING):
            arithmetic = isinstance(node, ast.BinOp) and type(node.op) in (
                ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod) or isinstance(node, ast.UnaryOp) and type(
                node.op) in (ast.USub, ast.UAdd)
            if not (arithmetic and isinstance(value, Sym)):
                self.fixed = True
        return value


class _Run:
    """One symbolic evaluation: its evaluators, so that any of them reading a Sym wrongly fixes it."""

    def __init__(self):
        self.evaluators: list[SymbolicEvaluator] = []

    def __call__(self, text, env, loc):
        ev = SymbolicEvaluator(text, env, loc)
        self.evaluators.append(ev)
        return ev

    @property
    def fixed(self) -> bool:
        return any(ev.fixed for ev in self.evaluators)


def symbolic_attrs(raw, env, loc) -> dict[str, str] | None:
    """The attributes of an op (`raw`, as written) that follow the input, as Python source over
    `{H}` and `{W}` (a list as a tuple); None when one reading the size cannot follow it."""
    sizes = {}
    for key, axis in (("in_h", "{H}"), ("in_w", "{W}")):
        try:
            sizes[key] = Sym(env[key], axis)
        except (KeyError, Unavailable):
            pass
    run = _Run()
    values = substitute(raw, ChainMap(sizes, env), loc, evaluator=run)
    if run.fixed:
        return None
    out = {k: _render(v) for k, v in (values.items() if isinstance(values, dict) else ()) if _holds_sym(v)}
    return out or None


def _holds_sym(value: Any) -> bool:
    return isinstance(value, Sym) or isinstance(value, list) and any(_holds_sym(v) for v in value)


def _render(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_render(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return _source(value) if isinstance(value, int) and not isinstance(value, bool) else repr(value)
