"""Stage 4a: instances of one template that differ only by what the spec chooses with `if:`/`else:` share a class.

Consumes the drafted instances (`Member`s) of a template, grouped by structure; produces one
merged group where the groups differ only in items the spec writes under a condition, as
torchvision writes such blocks:

- a module present or not (`if: $project`): `self.downsample = None` / `if project: self.downsample
  = …`, called under `if self.downsample is not None:`; one module or another in the same place
  (`if: $use_hs, hardswish: {}, else: relu`): `if use_hs: … else: …`;
- children of an inline `nn.Sequential` present or not (MobileNetV3's expand conv under
  `if: $exp != $in_c`, an SE under `if: $se`): the Sequential is built from a list with
  conditional appends (`layers = []`, `if se: layers.append(…)`, `nn.Sequential(*layers)`), so
  positional names shift exactly as the interpreter's do;
- a parameter-free join present or not (a residual `add` under `if: $s == 1 and $in_c == $out`):
  `self.use_res_connect = s == 1 and in_channels == out`, and `if self.use_res_connect:` around it.

An optional item writes its result back into its input's variable (`x = self.relu(x)`,
`block = block + x`), so the forward is one text for every instance: the instances' forwards are
joined on their items, each value known by the item that computes it (an optional item's result
by its input). Each condition is the spec's own (`act == "relu"`), kept only if it holds exactly
on the instances that have the item; where the spec's condition cannot be written in Python
(`make_divisible(…) != in_c`) it becomes a boolean constructor argument. Anything else (a repeat
count, an item that is not under an `if:`) keeps one class per structure.
"""
from __future__ import annotations

from collections import Counter

from netc.backends.codegen.fitting import HOLE, NOTHING, Hole, evaluate, norm, union_order
from netc.backends.codegen.forward import Step, render_forward, write
from netc.backends.codegen.instances import Member

bare = lambda t: HOLE.sub("\x00", t)  # noqa: E731  (an init text without its values)
LOCAL = "\x02"  # the list a merged nn.Sequential is built in; the class names it (`layers`)


class _Fail(Exception):
    """The instances cannot share a class."""


def merge(groups: list[list[Member]], condition_cands):
    """One class for instances of a template whose structures differ only by items the spec
    writes under `if:` (and `else:`), each applied where its condition holds on every instance.
    `condition_cands(box, (loc, via))` gives the spec's condition of an item in the class's names
    (negated for an `else:`), None where the item is under no `if:`. Returns (key, members) of the
    merged class, or None to keep one class per structure."""
    try:
        return _Merge(groups, condition_cands).run()
    except (_Fail, KeyError, StopIteration):  # a value or item one instance lacks: not one structure
        return None


class _Text:
    """`__init__` lines with holes renumbered in order; where each slot's holes go."""

    def __init__(self):
        self.lines: list[str] = []
        self.slots: dict = {}
        self.count = 0

    def add(self, slot, text: str, indent: str = "") -> None:
        n = len(HOLE.findall(text))
        self.slots[slot] = list(range(self.count, self.count + n))
        it = iter(self.slots[slot])
        self.lines.append(indent + HOLE.sub(lambda m: f"\x00{next(it)}\x00", text))
        self.count += n

    def test(self, slot, head: str, indent: str = "") -> None:
        """`if <hole>:` (`head` "if"/"elif"), or `self.flag = <hole>` (`head` ends with " =")."""
        self.slots[slot] = [self.count]
        self.lines.append(f"{indent}{head} \x00{self.count}\x00" + ("" if head.endswith("=") else ":"))
        self.count += 1


class _Merge:
    def __init__(self, groups, condition_cands):
        self.reps = [g[0] for g in groups]
        self.members = [m for g in groups for m in g]
        self.condition_cands = condition_cands
        self.tests: dict = {}  # slot -> (the spec's condition or None: an argument, whether a member passes)

    def run(self):
        reps = self.reps
        self.step_keys = {id(m): self.renamed(m) for m in self.members}
        keys = [[k for k, _ in r.init] for r in reps]
        texts = [{k: bare(t) for k, t in r.init} for r in reps]
        order = union_order(keys)
        _ordered(order, keys)
        common = set.intersection(*map(set, keys))
        varying = [k for k in order if k not in common or len({t[k] for t in texts}) > 1]
        seqs = [k for k in varying if k in common and all(k in r.seqs for r in reps)]
        modules = [k for k in varying if k not in seqs]
        lines, tail, optional, flags = self.forward()
        if not varying and not flags:
            raise _Fail
        variants = {k: list(dict.fromkeys(t[k] for t in texts if k in t)) for k in modules}
        guards = {}
        for k in modules:
            if k[0] == "shared" and not any(k in self.step_keys[id(r)].values() for r in reps):
                raise _Fail  # a stateless module several items share
            if k not in common:
                if k not in optional or not optional[k].module:
                    raise _Fail  # only a module applied in place may be left out
                guards[k] = f"{self.attr(k)} is not None"
        text = _Text()
        flag_of = {}
        for k in flags:  # `self.use_res_connect = …` first, as torchvision writes it
            cond = self.test(("flag", k), lambda m, k=k: k in self.step_keys[id(m)].values(),
                             lambda m, k=k: m.where[next(sk for sk, v in self.step_keys[id(m)].items() if v == k)])
            name = flag_of.get(cond) if cond is not None else None
            if name is None:
                name = self.flag_name(optional[k])
                text.test(("flag", k), f"self.{name} =")
                flag_of[cond] = name
            else:
                del self.tests[("flag", k)]
            guards[k] = f"self.{name}"
        for k in order:
            if k in seqs:
                self.sequential(text, k)
            elif k in variants:
                self.module(text, k, variants[k], k not in common)
            else:
                text.add(("entry", k, texts[0][k]), next(t for kk, t in reps[0].init if kk == k))
        forward = render_forward(lines, tail, guards)
        b0 = reps[0].box
        key = (b0.block.template, "\n".join(text.lines), forward, len(b0.inputs), len(b0.outputs))
        return key, [self.member(m, text) for m in self.members]

    # --- the forward ------------------------------------------------------------------------

    def renamed(self, m: Member) -> dict:
        """Step key -> the key it is merged by. A positional name shifts when an earlier item is
        absent, so what owns no state goes by its spec node: a stateless module only this step
        calls by its `__init__` entry (`self.relu`), any other stateless or inline step by its
        spec location (and occurrence)."""
        shared = {f"self.{k[1]}": k for k, _ in m.init if k[0] == "shared"}
        calls = Counter(m.attr_of.get(s.key) for s in m.steps)
        seen: Counter = Counter()
        out = {}
        for s in m.steps:
            a = m.attr_of.get(s.key)
            if a in shared and calls[a] == 1:
                out[s.key] = shared[a]
            elif s.key[0] == "op" and (a in shared or not s.module):
                loc = m.where[s.key][0]
                seen[loc] += 1
                out[s.key] = ("loc", loc, seen[loc])
            else:
                out[s.key] = s.key
        return out

    def forward(self):
        """The joined forward: lines, return, the optional steps by key, the optional steps that
        need a flag (parameter-free, so no module can be tested for None)."""
        keysets = [[self.step_keys[id(r)][s.key] for s in r.steps] for r in self.reps]
        optional_keys = set().union(*map(set, keysets)) - set.intersection(*map(set, keysets))
        merged: dict = {}
        results = set()
        for r, ks in zip(self.reps, keysets):
            inputs, res = r.values
            value = {v: ("in", i) for i, v in enumerate(inputs)}
            for idx, (s, k) in enumerate(zip(r.steps, ks)):
                ins = [value[v] for v in s.ins]
                if k in optional_keys:  # its result replaces its input, which nothing reads after it
                    later = [v for s2 in r.steps[idx + 1:] for v in s2.ins] + list(res)
                    if len(s.outs) != 1 or not s.ins or s.aux or s.ins[0] in later:
                        raise _Fail
                    outs = [ins[0]]
                else:
                    outs = [(k, j) for j in range(len(s.outs))]
                value.update(zip(s.outs, outs))
                sig = (tuple(ins), s.expr([f"\x03{i}" for i in range(len(ins))]), s.pref, s.aux, s.module)
                if merged.setdefault(k, (sig, Step(k, ins, outs, s.expr, s.pref, s.aux, s.module, s.op)))[0] != sig:
                    raise _Fail
            results.add(tuple(value[v] for v in res))
        if len(results) != 1:
            raise _Fail
        (result,) = results
        order = union_order(keysets)
        _ordered(order, keysets)
        steps = [merged[k][1] for k in order]
        lines, live = write(steps, [("in", i) for i in range(len(self.reps[0].values[0]))], list(result),
                            inplace=optional_keys)
        init_keys = {k for r in self.reps for k, _ in r.init}
        optional = {k: merged[k][1] for k in optional_keys}
        flags = [k for k in order if k in optional_keys and k not in init_keys]
        return lines, [f"return {', '.join(live[v] for v in result)}"], optional, flags

    def flag_name(self, step: Step) -> str:
        """`use_res_connect` for a residual join (an add reading the block's input), else `use_<op>`."""
        taken = {a.partition(".")[2] for r in self.reps for a in r.attr_of.values()}
        base = "use_res_connect" if step.op == "add" and ("in", 0) in step.ins else f"use_{step.op or 'op'}"
        name, n = base, 1
        while name in taken or any(f"self.{name} =" in ln for r in self.reps for _, ln in r.init):
            name, n = f"{base}_{n}", n + 1
        return name

    # --- conditions -------------------------------------------------------------------------

    def test(self, slot, has, where) -> str | None:
        """The spec's condition (class names) that holds exactly on the members `has` accepts,
        recorded for `slot`; None where Python cannot compute it (`make_divisible`): an argument
        then tells. A condition that computes but disagrees means something else decides."""
        cands, conditional = [], False
        for m in self.members:
            if has(m):
                c = self.condition_cands(m.box, where(m))
                conditional = conditional or c is not None
                cands.extend(c or ())
        ok = lambda c: all((v := evaluate(c, m.env)) is not NOTHING and bool(v) == has(m)  # noqa: E731
                           for m in self.members)
        chosen = next((c for c in dict.fromkeys(cands) if ok(c)), None)
        if chosen is None and (not conditional or any(evaluate(c, m.env) is not NOTHING for c in cands
                                                      for m in self.members)):
            raise _Fail  # not an item only the spec's `if:` makes optional
        self.tests[slot] = (chosen, has)
        return chosen

    # --- __init__ entries -------------------------------------------------------------------

    def attr(self, k) -> str:
        return next(r.attr_of[k] for r in self.reps if k in r.attr_of) if k[0] != "shared" else f"self.{k[1]}"

    def module(self, text: _Text, k, variants: list[str], absent: bool) -> None:
        """A module under conditions: `self.x = None` where it may be absent, each variant under
        its own condition (`if c: … else: …` for one of two)."""
        entry = lambda m: next((bare(t) for kk, t in m.init if kk == k), None)  # noqa: E731
        conds = {v: self.test(("cond", k, v), lambda m, v=v: entry(m) == variants[v],
                              lambda m: m.where[k])
                 for v in range(len(variants))}
        source = {bare(t): t for r in self.reps for kk, t in r.init if kk == k}
        if absent:
            a = self.attr(k)
            text.lines.append(f"{a} = None" if a.startswith("self.") else f"self.add_module({k[1]!r}, None)")
        order = list(range(len(variants)))
        if len(order) == 2 and not absent:  # one module or the other: `if c: … else: …`
            if (conds[0] or "").startswith("not ") and not (conds[1] or "").startswith("not "):
                order.reverse()
            text.test(("cond", k, order[0]), "if")
            text.add(("entry", k, variants[order[0]]), source[variants[order[0]]], "    ")
            text.lines.append("else:")
            text.add(("entry", k, variants[order[1]]), source[variants[order[1]]], "    ")
            return
        for n, v in enumerate(order):
            text.test(("cond", k, v), "if" if n == 0 or absent else "elif")
            text.add(("entry", k, variants[v]), source[variants[v]], "    ")

    def sequential(self, text: _Text, k) -> None:
        """An inline nn.Sequential whose children may be absent, built from a list."""
        named = {r.seqs[k][0] for r in self.reps}
        if len(named) != 1:
            raise _Fail
        named = named.pop()
        idents = [[w[0] for w, _, _ in r.seqs[k][1]] for r in self.reps]
        if any(len(set(i)) != len(i) for i in idents):
            raise _Fail  # children from one spec node (a repeat): not told apart
        order = union_order(idents)
        if len({loc.file for loc in order}) == 1:  # one spec body: in the order it is written
            order.sort(key=lambda loc: (loc.line, loc.col))
        _ordered(order, idents)
        child = {}
        for r in self.reps:
            for (loc, _), name, frag in r.seqs[k][1]:
                t = f"({name!r}, {frag.text})" if named else frag.text
                if child.setdefault(loc, (bare(t), t))[0] != bare(t):
                    raise _Fail
        everywhere = set.intersection(*map(set, idents))
        a = self.attr(k)
        text.lines.append(f"{LOCAL} = []")
        block = None  # the open `if` (or `else`) block: (condition, members it holds on, is an else)
        for loc in order:
            if loc in everywhere:
                block = None
                text.add(("child", k, loc), f"{LOCAL}.append({child[loc][1]})")
                continue
            has = lambda m, loc=loc: loc in [w[0] for w, _, _ in m.seqs[k][1]]  # noqa: E731
            chosen = self.test(("when", k, loc), has, lambda m, loc=loc: next(
                w for w, _, _ in m.seqs[k][1] if w[0] == loc))
            vector = tuple(has(m) for m in self.members)
            if block is not None and block[:2] == (chosen, vector):  # under the same `if`
                del self.tests[("when", k, loc)]
            elif block is not None and not block[2] and vector == tuple(not v for v in block[1]):
                del self.tests[("when", k, loc)]  # exactly where the open `if` fails: its `else:`
                text.lines.append("else:")
                block = (chosen, vector, True)
            else:
                text.test(("when", k, loc), "if")
                block = (chosen, vector, False)
            text.add(("child", k, loc), f"{LOCAL}.append({child[loc][1]})", "    ")
        seq = f"nn.Sequential(OrderedDict({LOCAL}))" if named else f"nn.Sequential(*{LOCAL})"
        text.lines.append(f"{a} = {seq}" if a.startswith("self.") else f"self.add_module({k[1]!r}, {seq})")

    # --- each member's holes ----------------------------------------------------------------

    def member(self, m: Member, text: _Text) -> Member:
        own, i = {}, 0
        for k, t in m.init:
            n = len(HOLE.findall(t))
            own[("entry", k, bare(t))] = m.holes[i:i + n]
            i += n
        for k, (named, parts) in m.seqs.items():
            for (loc, _), _, frag in parts:
                own[("child", k, loc)] = frag.holes
        holes: list = [None] * text.count
        for slot, ids in text.slots.items():
            if slot in self.tests:  # a condition: the spec's, or this member's choice as an argument
                cond, has = self.tests[slot]
                value = norm(evaluate(cond, m.env)) if cond is not None else has(m)
                holes[ids[0]] = Hole(value, [cond] if cond is not None else [])
            elif slot in own:
                for s, h in zip(ids, own[slot]):
                    holes[s] = h
        return Member(m.box, m.draft, m.cexprs, holes, m.init, m.lines, m.tail, m.attr_of)


def _ordered(order: list, seqs: list[list]) -> None:
    """Every sequence keeps its order in the joined one (else they are not one structure)."""
    for seq in seqs:
        if [k for k in order if k in set(seq)] != seq:
            raise _Fail
