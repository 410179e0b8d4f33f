"""Stage 4a: instances of one template that differ only by optional modules share a class.

Consumes the drafted instances (`Member`s) of a template, grouped by structure; produces one
merged group where the groups differ only by modules applied in place under an `if:`
(`x = self.downsample(x)`): the module is built under the spec's own condition (`if project:`,
checked on every instance) and called under `if self.downsample is not None:`, as torchvision
writes it. Anything else keeps one class per structure.
"""
from __future__ import annotations

from netc.backends.codegen.fitting import HOLE, NOTHING, Hole, evaluate, norm, union_order
from netc.backends.codegen.forward import render_forward
from netc.backends.codegen.instances import Member


def merge(groups: list[list[Member]], condition_cands):
    """One class for instances of a template that differ only by optional modules applied in
    place (`x = self.downsample(x)`), each present exactly when the spec's `if:` holds.
    `condition_cands(box, key)` gives the spec's `if:` of an optional module in the class's
    names. Returns (key, members) of the merged class, or None to keep one class per structure."""
    reps = [g[0] for g in groups]
    keys = [[k for k, _ in r.init] for r in reps]
    common = set.intersection(*map(set, keys))
    optional = set.union(*map(set, keys)) - common
    bare = lambda t: HOLE.sub("\x00", t)  # noqa: E731
    if not optional or any(k[0] == "shared" for k in optional):
        return None
    stripped, texts, lines = set(), {}, {}
    for r in reps:
        for k in optional & {k for k, _ in r.init}:
            own = [ln for ln in r.lines if ln.key == k]
            if len(own) != 1 or not own[0].passthrough:
                return None
            texts.setdefault(k, set()).add(bare(dict(r.init)[k]))
            lines.setdefault(k, set()).add((own[0].text, own[0].aux))
        stripped.add((tuple(bare(t) for k, t in r.init if k not in optional),
                      tuple((ln.text, ln.aux) for ln in r.lines if ln.key not in optional), tuple(r.tail)))
    if len(stripped) != 1 or any(len(v) != 1 for v in (*texts.values(), *lines.values())):
        return None
    conds = {}
    for k in sorted(optional):
        cands = []
        for g in groups:
            for m in g:
                if k in dict(m.init):
                    cands.extend(condition_cands(m.box, k))
        cands = list(dict.fromkeys(cands))
        chosen = next((c for c in cands if all(
            evaluate(c, m.env) is not NOTHING and bool(evaluate(c, m.env)) == (k in dict(m.init))
            for g in groups for m in g)), None)
        if chosen is None:
            return None
        conds[k] = chosen
    order_init = union_order(keys)
    # forward lines: the common ones by their index among common lines (positional names of
    # stateless modules differ between variants), the optional ones by their module
    line_ids = []
    for r in reps:
        ids, i = [], 0
        for ln in r.lines:
            if ln.key in optional:
                ids.append(("o", ln.key))
            else:
                ids.append(("c", i))
                i += 1
        line_ids.append(ids)
    order_lines = union_order(line_ids)
    # merged init text, holes renumbered in order; per member, its holes in that order
    text_of = {}
    nholes = {}
    for r in reps:
        for k, t in r.init:
            text_of.setdefault(k, t)
            nholes[k] = len(HOLE.findall(t))
    init, counter = [], 0
    slots: dict = {}
    for k in order_init:
        t = text_of[k]
        if k in optional:
            a = next(r.attr_of[k] for r in reps if k in r.attr_of)
            init.append(f"{a} = None" if a.startswith("self.") else f"self.add_module({k[1]!r}, None)")
            init.append(f"if \x00{counter}\x00:")
            slots[("cond", k)] = counter
            counter += 1
        slots[k] = list(range(counter, counter + nholes[k]))
        t = HOLE.sub(lambda m, it=iter(slots[k]): f"\x00{next(it)}\x00", t)
        counter += nholes[k]
        init.append(("    " if k in optional else "") + t)
    members = []
    for g in groups:
        for m in g:
            own, i = {}, 0
            for k, t in m.init:
                n = len(HOLE.findall(t))
                own[k] = m.holes[i:i + n]
                i += n
            holes: list = [None] * counter
            for k in order_init:
                if k in own:
                    for slot, h in zip(slots[k], own[k]):
                        holes[slot] = h
                if k in optional:
                    holes[slots[("cond", k)]] = Hole(norm(evaluate(conds[k], m.env)), [conds[k]])
            members.append(Member(m.box, m.draft, m.cexprs, holes, m.init, m.lines, m.tail, m.attr_of))
    line_of = {}
    for r, ids in zip(reps, line_ids):
        for i, ln in zip(ids, r.lines):
            line_of.setdefault(i, ln)
    attr = {k: next(r.attr_of[k] for r in reps if k in r.attr_of) for k in optional}
    fwd = render_forward([line_of[i] for i in order_lines], reps[0].tail, attr)
    b0 = reps[0].box
    key = (b0.block.template, "\n".join(init), fwd, len(b0.inputs), len(b0.outputs))
    return key, members
