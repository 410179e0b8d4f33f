"""One budget of work per compilation, checked as the work is spent.

The node limit counts what expansion produces; this counts what it does: expansion steps and
repeat iterations (ten billion iterations under `if: false` produce no node), evaluated
expressions and substituted values, the sizes of the values they produce, and the candidates a
did-you-mean hint compares. Each step is a few microseconds, so the default bounds a compile to
seconds. A value an expression produces is also bounded in size on its own: `[$l0, $l0]`
doubled forty times is 1 KB of YAML but 2^41 items once validated or printed.

The budget is a context variable opened by `work_budget()`: phases that run inside an open
budget share it, so a whole compile is one budget when its caller opens one.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar

from netc.errors import Loc, error

# a unit is about a microsecond of work: an expansion step or repeat iteration (~8 µs) costs
# STEP units, an evaluated expression or a substituted value one. The largest bundled spec
# (resnet1202, 4,209 nodes) costs 0.1M; 100,000 nodes about 2M; the limit stops a compile at
# about 3 s of CPU.
STEP = 8
MAX_WORK = 3_000_000
MAX_VALUE_ITEMS = 100_000  # items (nested included) in one value a variable, argument or attribute holds


class Budget:
    def __init__(self, limit: int):
        self.limit, self.spent = limit, 0


_current: ContextVar[Budget | None] = ContextVar("netc_work_budget", default=None)


@contextlib.contextmanager
def work_budget(limit: int = MAX_WORK):
    """Open a budget for the work done inside, unless one is already open (then share it)."""
    if _current.get() is not None:
        yield _current.get()
        return
    token = _current.set(Budget(limit))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def spend(n: int, loc: Loc | None = None) -> None:
    budget = _current.get()
    if budget is None:
        return
    budget.spent += n
    if budget.spent > budget.limit:
        raise error("limit", f"compiling this spec takes more than {budget.limit:,} units of work (about a microsecond each)", loc,
                    "repeat counts, nested repeats (even of skipped layers) and large values multiply the work; "
                    "the limit is a setting (--max-work)")


def check_size(value, loc: Loc | None = None, what: str = "value") -> None:
    """Refuse a list or mapping with more than MAX_VALUE_ITEMS items, counting shared parts once
    per use; costs at most MAX_VALUE_ITEMS steps (charged to the budget)."""
    if not isinstance(value, (list, dict)):
        return
    count, stack = 0, [value]
    while stack:
        v = stack.pop()
        items = v.values() if isinstance(v, dict) else v
        count += len(items)
        if count > MAX_VALUE_ITEMS:
            spend(count, loc)
            raise error("limit", f"this {what} has more than {MAX_VALUE_ITEMS:,} items", loc,
                        "lists built from lists of variables grow exponentially")
        stack.extend(x for x in items if isinstance(x, (list, dict)))
    spend(count, loc)
