"""Stage 2 of the code generator: one class instance drafted from its box, with holes.

Consumes a box of the scope tree (`scopes.py`) and the `SpecIndex`; produces a `Member`: the
box's `__init__` entries, each a constructor call read from the op registry's `module()` facet
(the `ModuleSpec` the interpreter builds from) with a *hole* per value whose candidates are the
spec's expressions for the attributes that feed it (`fitting.influences`) and the tracked
channel expression of the op's input; its forward lines (`forward.py`); the channel expression
(spec names) of every value it computes. A child box that is a class is called with the
arguments fitted for its class (`box.instance`, set by `classes.py`, which drafts bottom-up);
a chain is an inline `nn.Sequential`, runs of identical items `*[... for _ in range(n)]`.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

from netc.backends.codegen.channels import channel_sources
from netc.backends.codegen.fitting import (IN, NOTHING, Draft, Frag, call_frag, class_defaults, class_parameters,
                                           evaluate, hole, influences, join_frags, literal, names_in, norm, parse,
                                           pick, same, spec_exprs, substitute)
from netc.backends.codegen import slices
from netc.backends.codegen.forward import result_values, returns, steps, write
from netc.backends.codegen.loops import children
from netc.backends.codegen.names import RESERVED, RUNTIME_NEEDS, Names, is_attribute
from netc.backends.codegen.scopes import INLINE_OPS, Box, item_key, item_path, local_name, positional
from netc.errors import error
from netc.ir.blocks import run_order
from netc.ir.node import Node
from netc.ops import REGISTRY


@dataclass
class Member:
    """One class instance as drafted: holes in `holes` order (None where a merged class has
    an optional module this instance lacks)."""

    box: "Box"
    draft: "Draft"
    cexprs: dict
    holes: list
    init: list  # [(key, text)]
    lines: list
    tail: list
    attr_of: dict
    steps: list = field(default_factory=list)  # the forward before naming (`forward.Step`)
    values: tuple = ((), ())  # the node ids of its inputs and results
    seqs: dict = field(default_factory=dict)  # key of an inline nn.Sequential -> (named, [(ident, name, Frag)])
    where: dict = field(default_factory=dict)  # key (or (key, ident) of a Sequential's child) -> (loc, via)

    @property
    def env(self):
        return self.draft.env


@dataclass
class _Entries:
    """The __init__ entries of one instance as they are drafted."""

    box: Box
    draft: Draft
    attrs: Names = field(default_factory=lambda: Names(RESERVED | {"training"}))
    attr_of: dict = field(default_factory=dict)  # item key -> how the forward reads it (`self.conv1`)
    init: list = field(default_factory=list)  # [(key, text)]
    shared: dict = field(default_factory=dict)  # constructor call -> the attribute of its one instance
    where: dict = field(default_factory=dict)
    seqs: dict = field(default_factory=dict)


class Drafter:
    """Drafts the class instances of one network; records what the file will need to import."""

    def __init__(self, network, index, outputs):
        self.net = network
        self.index = index
        self.data = network.graph.node_table()
        self.outputs = outputs  # (name, node, aux) of the network's outputs, in order
        self.pos = run_order(network, outputs)  # the interpreter's execution order of the ops
        self.runtime_used: set[str] = set()
        self.unfollowed: set[int] = set()  # ops sized by the input whose forward keeps the generated size
        # the axis of each value that holds its channels, when a permute moved them from 0 (H×W×C)
        self.axis: dict[int, int] = {}
        self.uses_ordered = False
        self.stop = None  # the use whose names the class being drafted is written in
        self.parts: dict = {}  # id of an inline Sequential's box -> (named, [((loc, via), name, Frag)])

    def shapes_in(self, nid):
        return [self.data[i].shape for i in self.data[nid].inputs]

    def callee_of(self, nid) -> str:
        """How generated code names the module class of an op: `nn.Conv2d`, `SeparableConv2d`."""
        d = self.data[nid]
        if d.owned is not None:
            return "nn.Parameter"
        module, _, cls = REGISTRY[d.op].module(d.attrs, self.shapes_in(nid)).cls.rpartition(".")
        return f"nn.{cls}" if module == "torch.nn" else cls

    def lifted(self, d: Node, exprs: list[str], cexprs: dict) -> list[str]:
        """An op's spec expressions in the names of the class being drafted (`SpecIndex.lift`), with
        `$in_c` of an inlined template instance written as its input's channel expression."""
        cands = self.index.lift(exprs, d.via, self.stop)
        tin = cexprs.get(d.template_input)
        if tin is None or tin == IN:
            return cands
        return [substitute(c, {IN: tin}) if IN in names_in(c) else c for c in cands]

    def op_ctor(self, nid, cexprs: dict) -> Frag:
        """The op's constructor call from its `module()` facet, one hole per value.

        Which attributes (and whether the input channel count) feed each constructor value
        is found by probing the facet with one attribute changed at a time, so the spec's
        expression for exactly that attribute is the candidate (no per-op tables here).
        """
        d = self.data[nid]
        if d.owned is not None:
            return self.param_ctor(nid, cexprs)
        op, shapes = REGISTRY[d.op], self.shapes_in(nid)
        ms = op.module(d.attrs, shapes)
        module, _, cls = ms.cls.rpartition(".")
        if module == "netc.backends.torch.runtime":
            self.runtime_used |= {cls, *RUNTIME_NEEDS.get(cls, ())}
            callee = cls
        elif module == "torch.nn":
            callee = f"nn.{cls}"
        else:
            raise error("codegen", f"op '{d.op}' builds '{ms.cls}', which generated code cannot import",
                        d.loc)
        defaults = class_defaults(ms.cls)
        node = self.index.by_loc.get(d.loc)
        raw = self.index.written(node, d.op)
        sources = influences(op, d.attrs, shapes, ms, self.axis.get(d.inputs[0], 0) if d.inputs else 0)
        inputs = d.inputs

        def cands_of(pos):
            cands = []
            for src in sources.get(pos, ()):
                if src is IN:
                    if inputs and inputs[0] in cexprs:
                        cands.append(cexprs[inputs[0]])
                else:
                    cands.extend(self.lifted(d, spec_exprs({src: raw.get(src)}), cexprs))
            return cands

        kwargs = dict(ms.kwargs)
        # a keyword left out at its default here, whose attribute the spec writes as an
        # expression, is written too (`groups=groups`): other parameter values need it
        absent = {pos: defaults[pos] for pos in sources if isinstance(pos, str) and pos not in kwargs
                  and pos in defaults and cands_of(pos)}
        if absent:
            order = list(class_parameters(ms.cls))
            kwargs = dict(sorted({**kwargs, **absent}.items(),
                                 key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
        args = []
        for pos, v in [*((i, v) for i, v in enumerate(ms.args)), *kwargs.items()]:
            cands = cands_of(pos)
            if isinstance(pos, int):
                args.append(hole(v, cands))
            else:
                args.append(hole(v, cands, kwarg=pos, default=defaults.get(pos, NOTHING)))
        return call_frag(callee, args)

    def param_ctor(self, nid, cexprs: dict) -> Frag:
        """The parameter an op owns on its module (`OwnedParam`, layer scale), at its init value:
        `nn.Parameter(torch.full((dim, 1, 1), layer_scale))`, channels and init fitted as holes."""
        d = self.data[nid]
        owned, src = d.owned, d.inputs[0]
        node = self.index.by_loc.get(d.loc)
        raw = self.index.written(node, d.op)
        shape = [Frag(repr(n)) for n in owned.shape]
        if raw.get("shape") is None and src in cexprs:  # the default: the input's channels first
            shape[0] = hole(owned.shape[0], [cexprs[src]])
        dims = join_frags(shape + ([Frag("")] if len(shape) == 1 else []))
        init = hole(owned.init, self.index.lift(spec_exprs({"init": raw.get("init")}), d.via, self.stop))
        full = call_frag("torch.full", [Frag(f"({dims.text})", dims.holes), init])
        return call_frag("nn.Parameter", [full])

    def scale_hole(self, nid) -> Frag | None:
        """A residual's scale when the spec writes it as an expression (`scale: $scale`)."""
        d = self.data[nid]
        res = getattr(self.index.by_loc.get(d.loc), "residual", None)
        cands = self.index.lift(spec_exprs({"scale": res.scale}), d.via, self.stop) if res is not None else []
        return hole(d.attrs.factor, cands) if cands else None

    def slice_holes(self, nid) -> Frag | None:
        d = self.data[nid]
        return slices.kept_bounds(d.attrs, slices.bound_exprs(
            self.raw_attrs(d), lambda exprs: self.index.lift(exprs, d.via, self.stop)))

    def raw_attrs(self, d: Node) -> dict:
        """The op's attributes as the spec writes them (expressions included)."""
        node = self.index.by_loc.get(d.loc)
        return self.index.written(node, d.op)

    def box_ctor(self, box: Box, cexprs: dict, env: dict) -> Frag:
        if box.listed:
            return self.list_ctor(box, cexprs, env)
        if box.instance is None:  # an inline nn.Sequential
            return self.sequential(box, cexprs, env)
        inst = box.instance
        args = []
        for spec_name, py, default in inst.cls.params:
            value = inst.args[spec_name]
            cands = self.call_cands(box, spec_name, cexprs, env)
            if default is NOTHING:
                args.append(hole(value, cands))
            else:
                f = hole(value, cands, kwarg=py, default=default)
                args.append(f)
        return call_frag(inst.cls.name, args)

    def call_cands(self, box: Box, spec_name: str, cexprs: dict, env: dict) -> list[str]:
        """Candidate expressions (the parent's names) for one argument of a class instance."""
        if spec_name == IN:
            return [cexprs[box.inputs[0]]] if box.inputs and box.inputs[0] in cexprs else []
        via = self.data[min(box.nodes)].via
        if box.block.loc in via:
            via = via[via.index(box.block.loc) + 1:]
        inst = box.instance
        decl = getattr(self.index.templates.get(inst.cls.template or ""), "args", {}).get(spec_name, NOTHING)
        if spec_name not in inst.written and decl is not NOTHING and not (self.index.is_type_name(decl) or (
                isinstance(decl, str) and "$" in decl)) and isinstance(decl, (bool, int, float, str, list)):
            # the use leaves it at the template's default: that is what the spec says it is (a name of
            # the parent's that merely has the same value here is not)
            return [literal(norm(decl) if not isinstance(decl, list) else decl)]
        cands = self.index.lift(inst.cands.get(spec_name, []), via, self.stop)
        return cands + [spec_name] if spec_name in env and spec_name not in inst.written else cands

    def sequential(self, box: Box, cexprs: dict, env: dict) -> Frag:
        self.flow(box, cexprs, env)
        parts: list[tuple[str, Frag]] = []
        for kind, it in box.items:
            if kind == "op":
                parts.append((local_name(self.data, it, box), self.op_ctor(it, cexprs)))
            else:
                parts.append((it.local, self.box_ctor(it, cexprs, env)))
        positional = [name for name, _ in parts] == [str(i) for i in range(len(parts))]
        self.parts[id(box)] = (not positional, [(self.where_of(kind, it), name, frag)
                                                for (kind, it), (name, frag) in zip(box.items, parts)])
        if positional:
            return call_frag("nn.Sequential", [children(parts, env, named=False)])
        self.uses_ordered = True
        pairs = children(parts, env, named=True)
        return Frag(f"nn.Sequential(OrderedDict({pairs.text}))", pairs.holes)

    def list_ctor(self, box: Box, cexprs: dict, env: dict) -> Frag:
        """An `nn.ModuleList` of a list's children (`nn.ModuleDict` where they have names), runs of
        alike children as one comprehension."""
        parts = [(name, self.op_ctor(it, cexprs) if kind == "op" else self.box_ctor(it, cexprs, env))
                 for kind, it, name in box.members]
        if not positional(box):
            pairs = children(parts, env, named=True)
            return Frag(f"nn.ModuleDict({pairs.text})", pairs.holes)
        inner = children(parts, env, named=False)
        loop = len(parts) > 1 and inner.text.startswith("*[") and inner.text.endswith("]") and \
            inner.text.count("*[") == 1
        return Frag(f"nn.ModuleList({inner.text[1:] if loop else f'[{inner.text}]'})", inner.holes)

    def flow(self, box: Box, cexprs: dict, env: dict) -> None:
        """Channel expressions (spec space, one instance) of every value a box produces."""
        for kind, it in box.items:
            if kind == "op":
                self.axis[it] = self.channel_axis(it)
                cexprs[it] = self.op_cexpr(it, cexprs, env)
            elif it.instance is None:
                self.flow(it, cexprs, env)
            else:
                inst = it.instance
                chosen = {}
                for spec_name, _, _ in inst.cls.params:
                    cands = self.call_cands(it, spec_name, cexprs, env)
                    c = pick(cands, norm(inst.args[spec_name]), env)
                    chosen[spec_name] = c if c is not None else literal(inst.args[spec_name])
                for out, ce in zip(it.outputs, inst.cls.out_cexprs):
                    value = self.channels(out)
                    text = substitute(ce, chosen) if ce is not None else None
                    ok = text is not None and names_in(text) and same(evaluate(text, env), value)
                    cexprs[out] = text if ok else literal(value)

    def channels(self, nid):
        return self.data[nid].shape[self.axis.get(nid, 0)]

    def channel_axis(self, nid) -> int:
        """The axis of an op's output that holds the channels: 0, or where a permute put them."""
        d = self.data[nid]
        src = d.inputs[0]
        axis = self.axis.get(src, 0)
        if d.op == "permute":
            return d.attrs.dims.index(axis)
        return axis if len(self.data[src].shape) == len(d.shape) else 0

    def op_cexpr(self, nid, cexprs: dict, env: dict) -> str:
        d = self.data[nid]
        value = self.channels(nid)
        raw = self.raw_attrs(d)
        # only what the channel count depends on: a pad's `p: $pad` equal to it is no expression of it
        sources = channel_sources(REGISTRY[d.op], d.attrs, self.shapes_in(nid),
                                  self.axis.get(d.inputs[0], 0) if d.inputs else 0, self.axis.get(nid, 0))
        feeds = sources is None or IN in sources
        own = {k: v for k, v in raw.items() if sources is None or k in sources} if raw else {}
        cands = self.lifted(d, spec_exprs(own), cexprs) if own else []
        ins = [cexprs.get(i) for i in d.inputs]
        if d.op == "slice" and ins[0] is not None and self.axis.get(d.inputs[0], 0) == d.attrs.dim % 3:
            exprs = slices.bound_exprs(raw, lambda e: self.lifted(d, e, cexprs))
            cands.insert(0, slices.width(d.attrs, exprs, ins[0]))
        flat = None
        if ins and ins[0] is not None and feeds:
            cands.append(ins[0])
            shape_in = self.data[d.inputs[0]].shape
            if d.op == "chunk":  # a part of the channels (ShuffleNet's `oup // 2`)
                cands.append(f"({ins[0]}) // {d.attrs.parts}")
            if len(shape_in) == 3 and len(d.shape) == 1 and shape_in[1] * shape_in[2] > 1 and \
                    self.axis.get(d.inputs[0], 0) == 0:
                flat = f"({ins[0]}) * {shape_in[1]} * {shape_in[2]}"  # C * H * W, as written by hand
                cands.append(flat)
        if len(ins) > 1 and all(c is not None for c in ins):
            cands.append(" + ".join(f"({c})" for c in ins))
        c = pick(cands, value, env)
        # arithmetic on constants alone is folded (768, not 384 + 96 + 288), but C * H * W is kept
        keep = c is not None and (names_in(c) or c == flat or ins and c == ins[0] and feeds)
        return ast.unparse(parse(c)) if keep else literal(value)

    def draft(self, box: Box) -> Member:
        """__init__ entries and forward lines of one instance, with holes."""
        env = self.index.env_of(box)
        self.stop = self.index.class_loc(box)
        draft = Draft(env)
        cexprs = {}
        if box.inputs:
            cexprs[box.inputs[0]] = IN if box.parent is not None else literal(env.get(IN))
        self.flow(box, cexprs, env)
        e = _Entries(box, draft)
        # names that must be kept (they own state or are identifiers already) go first
        for kind, it in box.items:
            e.where[item_key(self.data, kind, it, box)] = self.where_of(kind, it)
        for local in [item_key(self.data, kind, it, box)[1] for kind, it in box.items] + [
                c.local for c in box.children if c.listed]:
            if is_attribute(local) and not local.startswith("_"):
                e.attrs.reserve(local)
        # registered in the spec's order (the interpreter's state_dict order), which a `from:` naming
        # a later layer makes differ from the forward's; a list where its first-written item is
        for kind, it in sorted(box.items, key=lambda item: self.rank(item, box)):
            key = item_key(self.data, kind, it, box)
            lists = item_path(key, box)
            if lists:  # an item of a list: the list is registered with its first item
                top = ("box", lists[0][0].local)
                if top not in e.attr_of and lists[0][0].members:
                    e.where[top] = self.where_of("box", lists[0][0])
                    self.module_entry("box", lists[0][0], e, cexprs, env)
                if kind == "box" or self.data[it].op not in INLINE_OPS:
                    e.attr_of[key] = e.attr_of[top] + "".join(
                        f"[{name}]" if positional(lst) else f"[{name!r}]" for lst, name in lists)
            elif kind == "op" and self.data[it].op in INLINE_OPS:
                self.inline_entry(it, e)
            else:
                self.module_entry(kind, it, e, cexprs, env)
        st = steps(self.data, box, e.attr_of, self.pos, self.unfollowed)
        inputs, results = [0] if box.parent is None else box.inputs, result_values(box, self.outputs)
        lines, live = write(st, inputs, results)
        tail = returns(box, live, results, self.outputs)
        return Member(box, draft, cexprs, draft.holes, e.init, lines, tail, e.attr_of, st, (inputs, results),
                      e.seqs, e.where)

    def rank(self, item, box: Box) -> int:
        """Where an item of `box` is registered: its first node, or its list's first node."""
        kind, it = item
        key = item_key(self.data, kind, it, box)
        lists = item_path(key, box)
        return min(lists[0][0].nodes) if lists else it if kind == "op" else min(it.nodes)

    def inline_entry(self, nid, e: "_Entries") -> None:
        """An op the forward writes inline: an attribute only for the value it keeps
        (`self.scale = scale`, read by `out * self.scale`; x[:, self.part])."""
        op = self.data[nid].op
        kept = {"scale": self.scale_hole, "slice": self.slice_holes}.get(op, lambda _: None)(nid)
        if kept is None:
            return
        local = local_name(self.data, nid, e.box)
        own = op == "slice" and is_attribute(local) and not local.startswith("_")  # reserved in draft()
        name = local if own else e.attrs.take(op)
        e.attr_of[("op", local)] = f"self.{name}"
        e.init.append((("op", local), f"self.{name} = {e.draft.add(kept)}"))

    def module_entry(self, kind: str, it, e: "_Entries", cexprs, env) -> None:
        """A module the __init__ builds: under its own name where it owns state or is named, else one
        shared stateless instance per distinct constructor call."""
        local = local_name(self.data, it, e.box) if kind == "op" else it.local
        frag = self.op_ctor(it, cexprs) if kind == "op" else self.box_ctor(it, cexprs, env)
        key = (kind, local)
        if kind == "box" and it.instance is None and not it.listed:
            e.seqs[key] = self.parts[id(it)]
        stateful = kind == "box" or self.data[it].params or self.data[it].buffers
        named = is_attribute(local)
        if stateful or (named and not local.startswith("_")):
            if named:
                e.attr_of[key] = f"self.{local}"
                e.init.append((key, f"self.{local} = {e.draft.add(frag)}"))
            else:
                e.attr_of[key] = f"getattr(self, {local!r})"
                register = "register_parameter" if kind == "op" and self.data[it].owned else "add_module"
                e.init.append((key, f"self.{register}({local!r}, {e.draft.add(frag)})"))
            return
        fkey = frag.key()
        if fkey in e.shared:
            e.attr_of[key] = e.shared[fkey]
            return
        name = e.attrs.take(local if not local.isdigit() and not local.startswith("_") else
                            self.data[it].op, prefix=self.data[it].op)
        e.attr_of[key] = e.shared[fkey] = f"self.{name}"
        e.where[("shared", name)] = e.where[key]
        e.init.append((("shared", name), f"self.{name} = {e.draft.add(frag)}"))

    def where_of(self, kind: str, it) -> tuple:
        """The spec node an item comes from and the uses it came through (inside its own use)."""
        if kind == "op":
            return self.data[it].loc, self.data[it].via
        via = self.data[min(it.nodes)].via
        if it.block.loc in via:
            via = via[via.index(it.block.loc) + 1:]
        return it.block.loc, via

    def condition_cands(self, box: Box, where: tuple) -> list[str] | None:
        """The spec's `if:` of an item written under one, in the class's names: its own and those of
        the unnamed nodes it is written in (`not (…)` of an if-node's for its `else:`); None where
        no `if:` decides it, or it comes from a repeat (whose count decides too)."""
        loc, via = where
        node, conds = self.index.by_loc.get(loc), []
        if getattr(node, "repeat", None) is not None:
            return None
        while node is not None:
            cond, negate = getattr(node, "if_", None), False
            if cond is None and loc in self.index.else_of:  # an `else:` holds where its if-node's fails
                cond, negate = self.index.else_of[loc].if_, True
            if cond is not None:
                text = ast.unparse(parse(repr(cond) if isinstance(cond, bool) else cond)) \
                    if isinstance(cond, bool) or (isinstance(cond, str) and parse(cond) is not None) else None
                if text is None:
                    return []
                conds.append(f"not ({text})" if negate else f"({text})")
            node = self.index.parent_of.get(loc)
            loc = self.index.loc_of(node)
            if getattr(node, "name", None) is not None or getattr(node, "repeat", None) is not None:
                break  # a named node is the box the item's class or Sequential is written in
        if not conds:
            return None
        self.stop = self.index.class_loc(box)
        return self.index.lift([ast.unparse(parse(" and ".join(conds)))], via, self.stop)
