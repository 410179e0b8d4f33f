"""Safe arithmetic on spec variables: `$planes * 4`, `2 if $i == 0 else 1`, `max(8, $c // 2)`.

A string holding `$name` is an expression. It is parsed with `ast` and evaluated by a small
interpreter over a whitelist of node types: numbers, strings, booleans, lists, arithmetic,
comparisons, `and`/`or`/`not`, conditional expressions and a few pure functions. There is no
attribute access, no subscripting, no calls to anything else, and powers and integer sizes
are bounded, so an expression cannot run code or exhaust memory.

One evaluator for the language: expansion (`netc.spec`) evaluates what a spec writes, and the code
generator checks the expressions it fits against values with the same `Evaluator`.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
from typing import Any, Mapping

from netc.errors import Loc, clip, did_you_mean, error, listing
from netc.spec.budget import check_size, spend

MAX_EXPR_LEN = 1000
MAX_INT = 2**63 - 1
_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}


def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


# round(x, n) of an integer x computes 10**-n for n < 0 (10**(10**8) for round($c, -10**8)). Every
# |x| <= MAX_INT < 10**19 rounds to 0 at n = -20 and beyond, so n is clamped there: the same
# result in constant work. Floats clamp their own digits (CPython's NDIGITS_MIN/MAX).
ROUND_DIGITS = 20


def _round(x, ndigits=None):
    if isinstance(x, int) and isinstance(ndigits, int) and ndigits < -ROUND_DIGITS:
        ndigits = -ROUND_DIGITS
    return round(x, ndigits)


FUNCTIONS = {
    "min": min, "max": max, "abs": abs, "int": int, "float": float, "round": _round,
    "ceil": math.ceil, "floor": math.floor, "make_divisible": _make_divisible,
}
# functions of one list (stage depths: `sum($depths[:2])`)
LIST_FUNCTIONS = {"sum": sum, "len": len}

# variables a template defines for its body; named in the error when used elsewhere
TEMPLATE_INPUT_VARS = ("in_c", "in_h", "in_w")


def variables(value: Any) -> set[str]:
    """Names of the $variables used anywhere in a YAML value."""
    return set(_VAR.findall(str(value)))


def is_expr(value: Any) -> bool:
    return isinstance(value, str) and _VAR.search(value) is not None


class Unavailable(Exception):
    """Raised by a variable that exists but has no value here (`$in_h` of a flat input); the
    evaluator reports it at the expression's location."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


class Evaluator:
    """`Evaluator(text, env, loc)(tree)`: the value of a parsed expression (names without the `$`)."""

    def __init__(self, text: str, env: Mapping[str, Any], loc: Loc | None):
        self.text, self.env, self.loc = text, env, loc

    def fail(self, message: str, hint: str | None = None):
        return error("expr", f"in expression '{self.text}': {message}", self.loc, hint)

    def check_number(self, v):
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and abs(v) > MAX_INT:
            raise self.fail("integer result is too large")
        if isinstance(v, float) and not math.isfinite(v):
            raise self.fail("result is not a finite number")
        return v

    def __call__(self, node):
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.fail(f"'{type(node).__name__}' is not allowed",
                            "expressions may use numbers, $variables, + - * / // % **, "
                            "comparisons, and/or/not, 'a if c else b' and " + ", ".join(sorted(FUNCTIONS)))
        return method(node)

    def visit_Expression(self, node):
        return self(node.body)

    def visit_Constant(self, node):
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise self.fail(f"constant {node.value!r} is not allowed")
        return self.check_number(node.value)

    def visit_Name(self, node):
        if node.id in self.env:
            try:
                return self.env[node.id]
            except Unavailable as exc:
                raise error("undefined-var", f"in expression '{self.text}': {exc.message}", self.loc,
                            exc.hint) from None
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        if node.id in TEMPLATE_INPUT_VARS:
            raise error("undefined-var", f"'${node.id}' is the shape of a template's input; it is only defined "
                                         "inside a template", self.loc,
                        "pass the value as a template argument, or write the number")
        raise error("undefined-var", f"undefined variable '${node.id}'", self.loc,
                    did_you_mean(node.id, self.env) or f"defined here: {listing(self.env)}")

    def visit_List(self, node):
        return [self(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_UnaryOp(self, node):
        v = self(node.operand)
        if isinstance(node.op, ast.Not):
            return not v
        if not isinstance(v, (int, float)):
            raise self.fail("unary minus needs a number")
        return self.check_number(-v if isinstance(node.op, ast.USub) else +v)

    def visit_BinOp(self, node):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(f"operator '{type(node.op).__name__}' is not allowed")
        a, b = self(node.left), self(node.right)
        if isinstance(node.op, ast.Add) and isinstance(a, str) and isinstance(b, str):
            if len(a) + len(b) > MAX_EXPR_LEN:
                raise self.fail("string result is too long")
            return a + b
        if not all(isinstance(x, (int, float)) for x in (a, b)):
            raise self.fail(f"arithmetic needs numbers, got {clip(a)} and {clip(b)}")
        if isinstance(node.op, ast.Pow):
            if abs(b) > 64 or (abs(a) > 1 and abs(b) * math.log2(abs(a)) > 63):
                raise self.fail("power is too large")
        try:
            return self.check_number(op(a, b))
        except ZeroDivisionError:
            raise self.fail("division by zero") from None
        except (OverflowError, ValueError) as exc:
            raise self.fail(str(exc)) from None

    def visit_BoolOp(self, node):
        if isinstance(node.op, ast.And):
            v = True
            for e in node.values:
                v = self(e)
                if not v:
                    return v
            return v
        v = False
        for e in node.values:
            v = self(e)
            if v:
                return v
        return v

    def visit_Compare(self, node):
        left = self(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            fn = _CMPOPS.get(type(op))
            if fn is None:
                raise self.fail(f"comparison '{type(op).__name__}' is not allowed")
            right = self(right_node)
            for v in (left, right):
                check_size(v, self.loc)  # comparing lists walks them: charge the walk to the budget
            try:
                if not fn(left, right):
                    return False
            except TypeError:
                raise self.fail(f"cannot compare {clip(left)} and {clip(right)}") from None
            left = right
        return True

    def visit_Subscript(self, node):
        seq = self(node.value)
        if not isinstance(seq, list):
            raise self.fail(f"only lists can be indexed, got {clip(seq)}")
        if isinstance(node.slice, ast.Slice):
            bounds = [None if b is None else self(b) for b in (node.slice.lower, node.slice.upper, node.slice.step)]
            if not all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in bounds):
                raise self.fail("slice bounds must be integers")
            if bounds[2] == 0:
                raise self.fail("slice step cannot be zero")
            out = seq[slice(*bounds)]
            spend(len(out), self.loc)
            return out
        index = self(node.slice)
        if not isinstance(index, int) or isinstance(index, bool):
            raise self.fail(f"a list index must be an integer, got {clip(index)}")
        if not -len(seq) <= index < len(seq):
            raise self.fail(f"index {index} is out of range for a list of {len(seq)}")
        return seq[index]

    def visit_IfExp(self, node):
        return self(node.body) if self(node.test) else self(node.orelse)

    def visit_Call(self, node):
        known = node.func.id in FUNCTIONS or node.func.id in LIST_FUNCTIONS if isinstance(node.func, ast.Name) else False
        if not known or node.keywords:
            name = node.func.id if isinstance(node.func, ast.Name) else "this"
            raise self.fail(f"calling '{name}' is not allowed",
                            "allowed functions: " + ", ".join(sorted({**FUNCTIONS, **LIST_FUNCTIONS})))
        args = [self(a) for a in node.args]
        if node.func.id in LIST_FUNCTIONS:
            return self.call_list(node.func.id, args)
        if not all(isinstance(a, (int, float)) for a in args):
            raise self.fail(f"{node.func.id}() needs numbers")
        try:
            return self.check_number(FUNCTIONS[node.func.id](*args))
        except ZeroDivisionError:
            raise self.fail(f"{node.func.id}() divides by zero") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(str(exc)) from None

    def call_list(self, name: str, args: list):
        if len(args) != 1 or not isinstance(args[0], list):
            raise self.fail(f"{name}() takes one list")
        items = args[0]
        spend(len(items), self.loc)
        if name == "sum" and not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items):
            raise self.fail("sum() needs a list of numbers")
        return self.check_number(LIST_FUNCTIONS[name](items))


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> ast.Expression:
    """The syntax tree of an expression (cached: a repeated template evaluates the same texts;
    the evaluator only reads the tree)."""
    return ast.parse(_VAR.sub(lambda m: m.group(1), text.strip()), mode="eval")


def evaluate(text: str, env: Mapping[str, Any], loc: Loc | None = None, evaluator=None) -> Any:
    """Evaluate one expression string against `env` (names without the `$`); `evaluator(text, env,
    loc)` makes the evaluator (`Evaluator`; netc.spec.symbolic's notes how sizes are read)."""
    spend(1, loc)
    if len(text) > MAX_EXPR_LEN:
        raise error("expr", f"expression longer than {MAX_EXPR_LEN} characters", loc)
    try:
        tree = _parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise error("expr", f"cannot parse expression '{text}'", loc,
                    "write arithmetic on $variables, e.g. '$planes * 4'") from None
    try:
        return (evaluator or Evaluator)(text, env, loc)(tree)
    except RecursionError:
        raise error("expr", f"expression '{text[:40]}' is nested too deeply", loc) from None


def substitute(value: Any, env: Mapping[str, Any], loc: Loc | None = None, evaluator=None) -> Any:
    """Evaluate every expression inside a YAML value (mappings and lists, recursively).

    Locations are kept: the result is a LocDict/LocList wherever the input was one. The result
    is bounded in size (netc.spec.budget.MAX_VALUE_ITEMS) and its work charged to the budget.
    """
    out = _substitute(value, env, loc, evaluator)
    check_size(out, loc)
    return out


def _substitute(value: Any, env: Mapping[str, Any], loc: Loc | None, evaluator) -> Any:
    from netc.spec.yamlload import LocDict, LocList, value_loc

    if is_expr(value):
        result = evaluate(value, env, loc, evaluator)
        check_size(result, loc)
        return result
    if isinstance(value, dict):
        spend(len(value), loc)
        out = LocDict(loc=getattr(value, "loc", None) or loc)
        if isinstance(value, LocDict):
            out.key_locs, out.value_locs = value.key_locs, value.value_locs
        for k, v in value.items():
            out[k] = _substitute(v, env, value_loc(value, k, loc), evaluator)
        return out
    if isinstance(value, list):
        spend(len(value), loc)
        out = LocList(loc=getattr(value, "loc", None) or loc)
        if isinstance(value, LocList):
            out.item_locs = value.item_locs
        for i, v in enumerate(value):
            out.append(_substitute(v, env, value_loc(value, i, loc), evaluator))
        return out
    return value
