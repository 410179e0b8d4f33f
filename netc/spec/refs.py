"""`from:` references: the placeholders expansion leaves for them, replaced by the nodes they name.

Consumes the IR with its `_ref` placeholder nodes, the pending references (placeholder, name,
scope prefix, location, template chain) and the scope paths that names were published under;
produces the IR with every placeholder replaced by its target, or records an error for each
reference that names nothing or only its own input.
"""
from __future__ import annotations

from netc.errors import Collector, Loc, clip, did_you_mean, error
from netc.expr import evaluate, is_expr
from netc.ir.graph import Graph, Output, set_inputs
from netc.names import check_module_path
from netc.spec.name_pattern import fill, is_pattern
from netc.spec.yamlload import value_loc

Pending = tuple[int, str, str, Loc | None, tuple]  # placeholder, name, scope prefix, location, via
NOT_FOUND_HINT = ("'from' takes a name of this block or an enclosing one, or a dotted path into a block: a path "
                  "'netc check' prints (layer1.0.conv1)")


def written_refs(value: str | list, raw, loc: Loc | None, env, via=()) -> list[tuple[str, Loc | None]]:
    """The names a `from:` gives, each with its location: a name or dotted path as written, a
    pattern filled in (`sp{$i}`), or an expression's value (`$srcs[$i]`: a name or a list of names)."""
    items = ([(value, value_loc(raw, "from", loc))] if isinstance(value, str) else
             [(v, value_loc(raw["from"], k, loc)) for k, v in enumerate(value)])
    out = []
    for text, at in items:
        if is_pattern(text):
            names = [fill(text, env, at, via)]
        elif is_expr(text):
            got = evaluate(text, env, at)
            names = got if isinstance(got, list) else [got]
        else:
            out.append((text, at))
            continue
        for name in names:
            try:
                out.append((check_module_path(name), at))
            except ValueError as exc:
                raise error("ref", f"'from: {clip(text)}' gives {clip(name)}: {exc}", at,
                            "a computed reference gives names as 'name:' writes them, or dotted paths",
                            via=via) from None
    return out


def resolve_refs(g: Graph, pending: list[Pending], names: dict[str, int], errors: Collector, out: int,
                 disabled: dict[str, Loc | None] | None = None) -> int:
    """Replace each `from:` placeholder by the node it names; return `out` resolved likewise.
    A name whose innermost match is one a false `if:` removed (`disabled`) is an error, never the
    same name in an enclosing scope.

    A placeholder can itself be the result of a name (a block whose layers were all skipped
    by `if:` or `repeat: 0` yields its input), so references are followed to a real node.
    """
    target: dict[int, int] = {}
    for ph, ref, prefix, loc, via in pending:
        where = _innermost(ref, prefix, names, disabled or {})
        if where is not None and where[0] not in names:
            at = where[1]
            errors.add(error("ref", f"'from' refers to '{ref}', which its 'if:'{f' at {at}' if at else ''} removed",
                             loc, "give it an 'else:', or refer to it under the same condition", via=via))
            continue
        found = lookup(names, ref, prefix)
        if found is None:
            errors.add(error("ref", f"'from' refers to '{ref}', which is not defined", loc,
                             did_you_mean(ref, names) or NOT_FOUND_HINT,
                             via=via))
            continue
        target[ph] = found

    def final(nid: int) -> int | None:
        seen = set()
        while nid in target:
            if nid in seen:
                return None
            seen.add(nid)
            nid = target[nid]
        return None if g.node(nid).op == "_ref" else nid

    resolved = {ph: final(ph) for ph in target}
    for ph, ref, prefix, loc, via in pending:
        if ph in resolved and resolved[ph] is None:
            errors.add(error("ref", f"'from: {ref}' refers to its own input (the block named '{ref}' "
                                    "contains no layers)", loc, via=via))
    if errors:
        return out
    for ph in target:
        for consumer in list(g.successors(ph)):
            inputs = [resolved.get(i, i) for i in g.node(consumer).inputs]
            set_inputs(g, consumer, inputs)
    outputs = g.outputs
    outputs[:] = [Output(name, resolved.get(nid, nid), aux) for name, nid, aux in outputs]
    for _, data in g.node_items():
        if data.template_input in resolved:
            data.template_input = resolved[data.template_input]
    g.remove_nodes_from(target)
    return resolved.get(out, out)


def lookup(names: dict[str, int], ref: str, prefix: str) -> int | None:
    """The node `ref` names seen from scope `prefix`: the innermost enclosing scope that has it."""
    where = _innermost(ref, prefix, names)
    return None if where is None else where[1]


def _innermost(ref: str, prefix: str, *tables: dict):
    """(path, value) of `ref` in the innermost scope enclosing `prefix` where one of `tables`
    has it (the first table wins within a scope), or None."""
    parts = prefix.split(".") if prefix else []
    for n in range(len(parts), -1, -1):
        path = ".".join(parts[:n] + [ref])
        for table in tables:
            if path in table:
                return path, table[path]
    return None
