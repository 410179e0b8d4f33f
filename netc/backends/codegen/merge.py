"""Stage 4a: instances of one template that differ only by what the spec chooses with `if:`/`else:` share a class.

Consumes the drafted instances (`Member`s) of a template, grouped by structure; produces one
merged group where the groups differ only in modules the spec writes under a condition: a module
present or not (`if: $project`), or one module or another in the same place (`if: $use_hs,
hardswish: {}, else: relu`). Each variant is built under the spec's own condition (`if project:`,
checked on every instance), and a module that may be absent is called under
`if self.downsample is not None:`, as torchvision writes it. Anything else keeps one class per structure.
"""
from __future__ import annotations

from netc.backends.codegen.fitting import HOLE, NOTHING, Hole, evaluate, norm, union_order
from netc.backends.codegen.forward import render_forward
from netc.backends.codegen.instances import Member

bare = lambda t: HOLE.sub("\x00", t)  # noqa: E731  (an init text without its values)


def merge(groups: list[list[Member]], condition_cands):
    """One class for instances of a template whose structures differ only by modules the spec
    writes under `if:` (and `else:`), each variant applied where its condition holds on every
    instance. `condition_cands(box, key)` gives the spec's condition of a module (negated for an
    `else:`) in the class's names. Returns (key, members) of the merged class, or None to keep
    one class per structure."""
    reps = [g[0] for g in groups]
    keys = [[k for k, _ in r.init] for r in reps]
    texts_of = [{k: bare(t) for k, t in r.init} for r in reps]
    common = set.intersection(*map(set, keys))
    varying = (set.union(*map(set, keys)) - common) | {k for k in common if len({t[k] for t in texts_of}) > 1}
    if not varying or any(k[0] == "shared" for k in varying):
        return None
    variants: dict = {}  # key -> its distinct init texts, in first-seen order
    stripped, lines = set(), {}
    for r, texts in zip(reps, texts_of):
        for k in varying & texts.keys():
            own = [ln for ln in r.lines if ln.key == k]
            if len(own) != 1:
                return None
            lines.setdefault(k, set()).add((own[0].text, own[0].aux, own[0].passthrough))
            variants.setdefault(k, [])
            if texts[k] not in variants[k]:
                variants[k].append(texts[k])
        stripped.add((tuple(t for k, t in texts.items() if k not in varying),
                      tuple((ln.text, ln.aux) for ln in r.lines if ln.key not in varying), tuple(r.tail)))
    if len(stripped) != 1 or any(len(v) != 1 for v in lines.values()):
        return None
    absent = {k for k in varying if any(k not in t for t in texts_of)}
    if any(not next(iter(lines[k]))[2] for k in absent):  # only a module applied in place may be left out
        return None
    members = [m for g in groups for m in g]
    variant_of = lambda m, k: next((variants[k].index(bare(t)) for kk, t in m.init if kk == k), None)  # noqa: E731
    conds: dict = {}
    for k in sorted(varying):
        for v in range(len(variants[k])):
            cands = list(dict.fromkeys(c for m in members if variant_of(m, k) == v for c in condition_cands(m.box, k)))
            chosen = next((c for c in cands if all(
                evaluate(c, m.env) is not NOTHING and bool(evaluate(c, m.env)) == (variant_of(m, k) == v)
                for m in members)), None)
            if chosen is None:
                return None
            conds[(k, v)] = chosen
    init, slots, counter = _init_text(reps, keys, varying, variants, absent, conds)
    merged = []
    for m in members:
        own, i = {}, 0
        for k, t in m.init:
            n = len(HOLE.findall(t))
            own[(k, variant_of(m, k) if k in varying else 0)] = m.holes[i:i + n]
            i += n
        holes: list = [None] * counter
        for slot_key, slot in slots.items():
            if slot_key[0] == "cond":
                c = conds[slot_key[1]]
                holes[slot] = Hole(norm(evaluate(c, m.env)), [c])
            elif slot_key in own:
                for s, h in zip(slot, own[slot_key]):
                    holes[s] = h
        merged.append(Member(m.box, m.draft, m.cexprs, holes, m.init, m.lines, m.tail, m.attr_of))
    b0 = reps[0].box
    key = (b0.block.template, "\n".join(init), _forward(reps, varying, absent), len(b0.inputs), len(b0.outputs))
    return key, merged


def _init_text(reps, keys, varying, variants, absent, conds):
    """The merged `__init__` lines, holes renumbered in order, and where each key's (and each
    variant's, each condition's) holes go: {(key, variant) | ("cond", (key, variant)): slots}."""
    text_of = {}
    for r in reps:
        for k, t in r.init:
            text_of.setdefault((k, variants[k].index(bare(t)) if k in varying else 0), t)
    attr = {k: next(r.attr_of[k] for r in reps if k in r.attr_of) for k in varying}
    init, slots, counter = [], {}, 0

    def place(slot_key, text, indent):
        nonlocal counter
        n = len(HOLE.findall(text))
        slots[slot_key] = list(range(counter, counter + n))
        it = iter(slots[slot_key])
        init.append(indent + HOLE.sub(lambda m: f"\x00{next(it)}\x00", text))
        counter += n

    def condition(k, v, word="if"):
        nonlocal counter
        slots[("cond", (k, v))] = counter
        init.append(f"{word} \x00{counter}\x00:")
        counter += 1

    for k in union_order(keys):
        if k not in varying:
            place((k, 0), text_of[(k, 0)], "")
            continue
        if k in absent:
            a = attr[k]
            init.append(f"{a} = None" if a.startswith("self.") else f"self.add_module({k[1]!r}, None)")
        order = list(range(len(variants[k])))
        if len(order) == 2 and k not in absent:  # one module or the other: `if c: … else: …`
            if conds[(k, 0)].startswith("not (") and not conds[(k, 1)].startswith("not ("):
                order.reverse()
            condition(k, order[0])
            place((k, order[0]), text_of[(k, order[0])], "    ")
            init.append("else:")
            place((k, order[1]), text_of[(k, order[1])], "    ")
            continue
        for n, v in enumerate(order):
            condition(k, v, "if" if n == 0 or k in absent else "elif")
            place((k, v), text_of[(k, v)], "    ")
    return init, slots, counter


def _forward(reps, varying, absent) -> str:
    """The merged class's forward: every instance's lines in one order, a module that may be
    absent called under a None test."""
    line_ids = []
    for r in reps:
        ids, i = [], 0
        for ln in r.lines:
            if ln.key in varying:
                ids.append(("o", ln.key))
            else:
                ids.append(("c", i))
                i += 1
        line_ids.append(ids)
    line_of = {}
    for r, ids in zip(reps, line_ids):
        for i, ln in zip(ids, r.lines):
            line_of.setdefault(i, ln)
    attr = {k: next(r.attr_of[k] for r in reps if k in r.attr_of) for k in absent}
    return render_forward([line_of[i] for i in union_order(line_ids)], reps[0].tail, attr)
