"""Computed layer names: `name: "denselayer{$i + 1}"` (and references: `from: "sp{$i}"`).

A name holding `{…}` is a pattern: each braced part is an expression whose value (an integer
or a string) is written in its place when the node is expanded, and the result must then be a
valid layer name (netc.names). The schema checks the pattern's shape; expansion fills it in.
"""
from __future__ import annotations

import re

from netc.errors import Loc, clip, error
from netc.expr import evaluate
from netc.names import BadName, check_module_name

MAX_PATTERN_LEN = 200
_PART = re.compile(r"\{([^{}]*)\}")
_LITERAL = re.compile(r"[A-Za-z0-9_-]*")


def is_pattern(name: str | None) -> bool:
    return name is not None and "{" in name


def check_name_pattern(value: str | None) -> str | None:
    """A plain layer name, or a well-formed pattern (its literal parts legal in a name)."""
    if not is_pattern(value):
        return check_module_name(value)
    if len(value) > MAX_PATTERN_LEN:
        raise ValueError(f"name pattern {clip(repr(value))} is longer than {MAX_PATTERN_LEN} characters")
    literals = _PART.split(value)[::2]  # split alternates literal text and expressions
    exprs = _PART.findall(value)
    if any(not e.strip() for e in exprs):
        raise ValueError(f"name pattern {clip(repr(value))} has an empty '{{}}'")
    if not all(_LITERAL.fullmatch(part) for part in literals):
        raise ValueError(f"name pattern {clip(repr(value))}: outside '{{…}}' a name has only ASCII letters, digits, "
                         "'_' and '-' (braces must pair, and cannot nest)")
    return value


def fill(pattern: str, env, loc: Loc | None, via=()) -> str:
    """The text a pattern gives with the variables in `env` (not yet checked as a name)."""
    out = []
    for k, part in enumerate(_PART.split(pattern)):
        if k % 2 == 0:
            out.append(part)
            continue
        value = evaluate(part, env, loc)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise error("name", f"'{{{part}}}' in '{pattern}' gives {clip(value)}; a name part is an integer or "
                                "a string", loc, via=via)
        out.append(str(value))
        if sum(map(len, out)) > MAX_PATTERN_LEN:
            break
    return "".join(out)


def resolve_name(pattern: str, env, loc: Loc | None, via=()) -> str:
    """The name a pattern gives with the variables in `env`."""
    name = fill(pattern, env, loc, via)
    try:
        return check_module_name(name)
    except (BadName, ValueError) as exc:
        raise error("name", f"name '{pattern}' gives {clip(repr(name))}: {exc}", loc, via=via) from None
