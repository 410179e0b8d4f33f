"""A `repeat:` node's iterations: how many, and the variables each one is expanded with.

Consumes a node with `repeat:` (and optional `first:`/`at:`) and its context; produces its
checked count, the iterations that `at:` addresses, and for each iteration its overrides and
its variables (its index and the overrides, layered over the enclosing ones). Placing the iterations
in scopes and expanding them is the expander's job.
"""
from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterator

from netc.errors import clip, error
from netc.spec.budget import STEP, spend
from netc.spec.model import Node
from netc.spec.scope import Ctx, evaluate, node_loc
from netc.spec.yamlload import key_loc, value_loc


def repeat_count(node: Node, ctx: Ctx, max_nodes: int) -> int:
    raw, loc = node._raw, node_loc(node)
    n = evaluate(node.repeat, ctx, value_loc(raw, "repeat", loc))
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise error("schema", f"repeat must be a non-negative integer, got {clip(n)}", value_loc(raw, "repeat", loc),
                    via=ctx.via)
    if n > max_nodes:
        raise error("limit", f"repeat: {n:,} exceeds the limit of {max_nodes:,} nodes",
                    value_loc(raw, "repeat", loc), "the limit is a setting (--max-nodes)", via=ctx.via)
    return n


def repeat_start(node: Node, ctx: Ctx) -> int:
    """The name of a named repeat's first iteration (`start:`, default 0)."""
    if node.start is None:
        return 0
    raw, loc = node._raw, node_loc(node)
    start = evaluate(node.start, ctx, value_loc(raw, "start", loc))
    if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= 2**31:
        raise error("schema", f"start must be a non-negative integer, got {clip(start)}", value_loc(raw, "start", loc),
                    via=ctx.via)
    return start


def at_keys(node: Node, ctx: Ctx, n: int) -> dict[int, object]:
    """The iterations `at:` addresses, each mapped to its key as the YAML writes it (for locations)."""
    raw, loc = node._raw, node_loc(node)
    at = dict(node.at or {})
    # the model's keys are ints; the YAML's may be written "1": map each back for its location
    keys = {int(k): k for k in raw["at"]} if node.at else {}
    for i in at:
        if not 0 <= i < n:
            span = f"gives 0…{n - 1}" if n else "is 0"
            raise error("schema", f"'at' names iteration {i}, but repeat {span}", key_loc(raw, "at", loc),
                        via=ctx.via)
    return {i: keys[i] for i in at}


def iterations(node: Node, ctx: Ctx, n: int, at: dict[int, object]) -> Iterator[tuple[int, dict, ChainMap]]:
    """Each iteration's index, overrides (from `first:` and `at:`) and variables: the index is `$i`
    or the name `index:` gives it, layered over the enclosing variables (an outer repeat's index too)."""
    raw, loc = node._raw, node_loc(node)
    var = node.index or "i"
    for i in range(n):
        spend(STEP, loc)
        overrides = {}
        if i == 0 and node.first:
            overrides.update(evaluate(raw["first"], ctx, value_loc(raw, "first", loc)))
        if i in at:
            key = at[i]
            overrides.update(evaluate(raw["at"][key], ctx, value_loc(raw["at"], key, loc)))
        # layered, not copied: a copy of every variable per iteration is quadratic
        yield i, overrides, ChainMap({var: i, **overrides}, ctx.env)
