"""A template instance's arguments: checked against the template's declaration and bound.

Consumes a `use:` node, its template and the context (plus a repeat's `first:`/`at:`
overrides); produces the mapping of argument name to value that the template body is expanded
with, or raises every mismatch found (unknown, missing or wrongly typed arguments) at once.
"""
from __future__ import annotations

from collections import ChainMap
from typing import Any

from netc.errors import Collector, clip, did_you_mean, error, listing
from netc.expr import is_expr, variables
from netc.spec.model import Node, Template
from netc.spec.scope import Ctx, evaluate, node_loc
from netc.spec.yamlload import key_loc, value_loc

TYPE_NAMES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list,),
              "any": (object,)}


def bind_args(node: Node, template: Template, ctx: Ctx, overrides: dict, globals_: dict[str, Any]) -> dict:
    raw, loc = node._raw, node_loc(node)
    given_raw = raw.get("args") or {}
    given = dict(evaluate(given_raw, ctx, value_loc(raw, "args", loc))) if given_raw else {}
    declared = template.args
    errors = Collector()
    used = variables(given_raw)  # overrides may also feed the args' expressions
    for key, value in overrides.items():
        if key in declared:
            given[key] = value
        elif key not in used:
            where = "first" if "first" in raw and key in (raw["first"] or {}) else "at"
            errors.add(error("template", f"'{where}' sets '{key}', which template '{node.use}' does not take "
                                         "and its args do not use",
                             key_loc(raw, where, loc), did_you_mean(key, declared) or
                             f"its arguments: {listing(declared)}", via=ctx.via))
    for key in given:
        if key not in declared:
            errors.add(error("template", f"template '{node.use}' has no argument '{key}'",
                             key_loc(given_raw, key, loc) if given_raw else loc,
                             did_you_mean(key, declared) or f"its arguments: {listing(declared)}",
                             via=ctx.via))
    bound: dict[str, Any] = {}
    traw = template._raw.get("args") if template._raw else None
    for key, decl in declared.items():
        required = isinstance(decl, str) and decl in TYPE_NAMES
        if key in given:
            value = given[key]
            types = TYPE_NAMES[decl] if required else _type_of(decl)
            # an expression default ($c * 2) has no type until evaluated: any value may replace it
            if not is_expr(decl) and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
                expected = decl if required else type(decl).__name__
                errors.add(error("template", f"argument '{key}' of template '{node.use}' expects {expected}, "
                                             f"got {clip(value)}",
                                 value_loc(given_raw, key, loc) if key in given_raw else loc, via=ctx.via))
            bound[key] = value
        elif required:
            errors.add(error("template", f"template '{node.use}' needs argument '{key}' ({decl})",
                             value_loc(raw, "args", loc) if "args" in raw else loc,
                             f"add args: {{{key}: …}}", via=ctx.via))
        else:
            bound[key] = evaluate(decl, ctx.but(env=ChainMap(bound, globals_)),
                                  value_loc(traw, key, loc) if traw else loc)
    errors.raise_if_any()
    return bound


def _type_of(default) -> tuple:
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (int, float)
    if default is None:
        return (object,)
    return (type(default),)
