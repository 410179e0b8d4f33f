"""Code for the `slice` op: the bounds a spec writes as expressions, kept on the module so that the
factory's arguments reach them, and its width (end - start) in the names of the class."""
from __future__ import annotations

import ast
from collections.abc import Callable

from netc.backends.codegen.fitting import Frag, call_frag, hole, parse, spec_exprs

BOUNDS = ("start", "end")


def bound_exprs(raw: dict, lift: Callable[[list[str]], list[str]]) -> dict[str, list[str]]:
    """The expressions each bound is written as (in the class's names), [] for a literal."""
    return {k: lift(spec_exprs({k: raw.get(k)})) for k in BOUNDS}


def kept_bounds(attrs, exprs: dict[str, list[str]]) -> Frag | None:
    """`(start, end)` for the module to keep (a tuple, not a `slice`: TorchScript types tuples of
    ints); None where both bounds are literals (the forward then writes them inline, as the spec
    does)."""
    if not any(exprs.values()):
        return None
    return call_frag("", [hole(getattr(attrs, k), exprs[k]) for k in BOUNDS])


def width(attrs, exprs: dict[str, list[str]], total: str) -> str:
    """end - start of a channel slice of `total` channels (`c - c // 2` for CSPNet's second half,
    not the `c // 2` its start shares with the first half's width at the default)."""
    start, end = attrs.start, attrs.end
    if not exprs["start"] and not exprs["end"] and (start < 0) == (end is None or end < 0):
        return repr((0 if end is None else end) - start)  # both from one end: a constant width
    if end is None and start < 0:  # the last -start entries
        tree = parse(exprs["start"][0])
        negated = isinstance(tree.body, ast.UnaryOp) and isinstance(tree.body.op, ast.USub)
        return ast.unparse(tree.body.operand) if negated else f"-({exprs['start'][0]})"

    def bound(key: str, value: int) -> str:
        text = exprs[key][0] if exprs[key] else repr(value)
        return f"({total}) + ({text})" if value < 0 else text  # negative: from the end

    return f"({total if end is None else bound('end', end)}) - ({bound('start', start)})"
