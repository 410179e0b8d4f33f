"""Layers of a template's instances matched to one place in its body, where their names or their
references differ: a layer named by a number the instance sets (timm's DualPathBlock projects
through `c1x1_w_s1` in a stage's first block and `c1x1_w_s2`, by its stride, in the others), and
an optional layer that the instances lacking it read through (the same block's later layers
read the projection where it exists and the block's input where not): `else: identity`.
Every rewrite keeps each instance's own names and data flow, so the template gives each instance
exactly."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

DIGITS = re.compile(r"[0-9]+")


def numbered_names(xs: list[list], present: list[int], missing: list, new_arg: Callable, hint: tuple) -> list[list]:
    """The lists of layers `xs` (of instances `present`) with each layer that is the only one
    of its name's shape in every list that has it, named with one number that differs between
    the lists, renamed `"prefix{$<arg>}suffix"` (a new integer argument, from `new_arg(path,
    values)`, whose values start from `missing`: one per instance), and the references to it likewise."""
    names = [[layer.get("name") if isinstance(layer, dict) else None for layer in x] for x in xs]
    shapes = [Counter(_shape(m) for m in row if _numbered(m)) for row in names]
    patterns: dict[str, list[tuple[int, str]]] = {}
    for k, row in enumerate(names):
        for m in row:
            if _numbered(m) and shapes[k][_shape(m)] == 1:
                patterns.setdefault(_shape(m), []).append((k, m))
    renames: list[dict[str, str]] = [{} for _ in xs]
    for found in patterns.values():
        if any(shapes[k][_shape(found[0][1])] > 1 for k in range(len(xs))):
            continue
        place = _differing_run(list(dict.fromkeys(m for _, m in found)))
        if place is None:
            continue
        values = list(missing)
        for k, m in found:
            values[present[k]] = int(DIGITS.findall(m)[place])
        arg = new_arg(hint + (_words(found[0][1], place),), values)
        for k, m in found:
            renames[k][m] = _replace_run(m, place, "{$" + arg + "}")
    return [_renamed(x, r) if r else x for x, r in zip(xs, renames)]


def _numbered(name) -> bool:
    return isinstance(name, str) and not name.isdigit() and bool(DIGITS.search(name))


def _shape(name: str) -> str:
    return DIGITS.sub("#", name)


MAX_DIGITS = 18  # a longer run is no number a source counts with (and int() of 4,300 digits refuses)


def _differing_run(names: list[str]) -> int | None:
    """The one digit run in which `names` (at least two) differ, where each is a number written
    without a leading zero in at most MAX_DIGITS digits; else None."""
    if len(names) < 2:
        return None
    runs = [DIGITS.findall(m) for m in names]
    differing = {j for r in runs for j, d in enumerate(r) if d != runs[0][j]}
    if len(differing) != 1:
        return None
    place = differing.pop()
    numbers = [r[place] for r in runs]
    return place if all(len(d) <= MAX_DIGITS and (d == "0" or d[0] != "0") for d in numbers) else None


def _replace_run(name: str, place: int, text: str) -> str:
    spans = [m.span() for m in DIGITS.finditer(name)]
    start, end = spans[place]
    return name[:start] + text + name[end:]


def _words(name: str, place: int) -> str:
    """The name's text before its numbered run, as the path word of the new argument."""
    start = [m.start() for m in DIGITS.finditer(name)][place]
    return name[:start].rstrip("_") or "n"


def _renamed(value, renames: dict[str, str]):
    """`value` with the layers named in `renames` renamed, and `from:` references to them."""
    if isinstance(value, list):
        return [_renamed(v, renames) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key == "name" and isinstance(v, str):
            out[key] = renames.get(v, v)
        elif key == "from":
            out[key] = [renames.get(r, r) for r in v] if isinstance(v, list) else renames.get(v, v)
        else:
            out[key] = _renamed(v, renames)
    return out


def read_through(xs: list[list], places: list[dict], order: list) -> tuple[list[list], set[int]]:
    """Where a named optional layer (at position j of `order`) reads its predecessor, and the
    instances lacking it read that predecessor where those having it read the layer: in those
    instances, the references rewritten to the layer, which becomes an identity there (`else:
    identity`). A layer that reads its predecessor without naming it in some instances and by
    name in others names it in all. Returns (the lists, the positions j that need the identity)."""
    xs = _explicit_reads([list(x) for x in xs], places, order)
    identities = set()
    for j, key in enumerate(order):
        having = [k for k, p in enumerate(places) if j in p]
        if key[0] != "name" or len(having) == len(xs) or any(_names_input(xs[k][places[k][j]]) for k in having):
            continue
        before = _predecessor(j, order, places)
        for k, p in enumerate(places):
            if before is None or j in p:
                continue
            for later in range(j + 1, len(order)):
                if later not in p or any(later not in places[h] for h in having):
                    continue
                theirs = [_refs(xs[h][places[h][later]]) for h in having]
                mine = _refs(xs[k][p[later]])
                slots = [s for s, r in enumerate(mine) if r == before
                         and all(len(t) > s and t[s] == key[1] for t in theirs)]
                if slots:
                    xs[k][p[later]] = _with_refs(xs[k][p[later]], mine, slots, key[1])
                    identities.add(j)
    return xs, identities


def _explicit_reads(xs: list[list], places: list[dict], order: list) -> list[list]:
    """The lists with `from:` written out (the layer before, or `input`) on each layer that names
    what it reads in some instances and not in others."""
    for j in range(len(order)):
        having = [(k, p[j]) for k, p in enumerate(places) if j in p]
        named = [_names_input(xs[k][at]) for k, at in having]
        if all(named) or not any(named):
            continue
        for k, at in having:
            reads = _reads(xs[k], at)
            if not _names_input(xs[k][at]) and reads is not None:
                xs[k][at] = {**xs[k][at], "from": reads}
    return xs


def _reads(layers: list, at: int) -> str | None:
    """What the layer at `at` reads without a `from:`: `input` first, else the named layer before."""
    if at == 0:
        return "input"
    before = layers[at - 1]
    return before.get("name") if isinstance(before, dict) and isinstance(before.get("name"), str) else None


def _names_input(layer) -> bool:
    return isinstance(layer, dict) and "from" in layer


def _predecessor(j: int, order: list, places: list[dict]) -> str | None:
    """The name a layer at position j reads when it names nothing: the block's `input` first, else
    the layer before it, where every instance has that one and it is named."""
    if j == 0:
        return "input"
    kind, name = order[j - 1]
    return name if kind == "name" and all(j - 1 in p for p in places) else None


def _refs(layer) -> list:
    refs = layer.get("from", []) if isinstance(layer, dict) else []
    return refs if isinstance(refs, list) else [refs]


def _with_refs(layer: dict, refs: list, slots: list[int], name: str) -> dict:
    new = [name if s in slots else r for s, r in enumerate(refs)]
    return {**layer, "from": new if isinstance(layer["from"], list) else new[0]}
