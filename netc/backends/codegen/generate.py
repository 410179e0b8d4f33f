"""IR -> standalone PyTorch source (`generated/<name>.py`): readable, formatted, deterministic.

Design: classes are derived from the *IR*, and their constructor arguments are *fitted* to
the spec's expressions.

Why not translate a template body symbolically (its YAML, `$` dropped)? Because what the
interpreter builds depends on evaluation, not only on text: `if:` and positional naming
interact (an unnamed layer after a conditional one is `3` or `4`), op facets turn
attributes into constructor arguments with their own rules (`module()` omits defaults,
resolves `same` padding), and `from:` / `side` can cross template boundaries. A symbolic
translation would re-implement the expander and could drift from it. Instead:

1. Every named block of the IR becomes a module container (a scope). A container that
   is a plain chain of modules named 0..n-1 (or any names) becomes an inline
   `nn.Sequential`; runs of identical repeated blocks become `*[Block(...) for _ in
   range(n)]`. Every named template instance (`use:` with a name) becomes an instance of a
   class named after its template; any other non-chain block gets a class of its own.
2. Each instance is rendered once with *holes* for its constructor values (read from the
   op registry's `module()` facet, the same `ModuleSpec` the interpreter builds from).
   Instances of one template whose code agrees apart from the holes share one class.
   Each hole is then fitted to a Python expression over the class's arguments: candidates
   are the spec's own expressions for that attribute (`$planes * 4` -> `planes * 4`), the
   tracked channel count of the op's input (`in_channels`, `planes * 4`, `a + b + c` after
   a concat), or a literal. A candidate is kept only if it reproduces the value of every
   instance (evaluated with each instance's bound template arguments, recorded on its IR
   Block), so the code is exact by construction; a hole no candidate explains becomes an
   explicit constructor argument.
3. Instances of one template whose code differs only by modules applied in place under an
   `if:` (`x = self.downsample(x)`) share one class: the module is built under the spec's
   own condition (`if project:`, checked on every instance) and called under
   `if self.downsample is not None:`, as torchvision writes it. Fallback, by design: other
   structural differences (a repeat count that is an argument, an `if:` that renumbers the
   positional names after it) give one class per distinct structure (`Block`, `Block2`, …);
   a value no expression explains becomes an explicit argument (`arg0`). Blocks that are
   not named (transparent `use`/`seq`) are inlined into their parent, as the interpreter's
   state_dict keys require; expressions written inside such inlined templates are rewritten
   through their `args:` into the enclosing class's names (`$out` -> `pool`).

The top-level class ends its `__init__` with the spec's `init:` scheme written as torchvision
writes its init loop (`for m in self.modules(): if isinstance(m, nn.Conv2d): ...`), so a model
built from the file starts from the same distributions as `netc build` (not the same draws).

The top-level class computes the spec's `vars` in Python (`c2 = math.ceil(base * width / 3)`)
and its factory takes as keyword arguments the params the code expresses; params that decide
structure (`if:`, repeat counts), are unused, or feed a var Python cannot recompute
(`make_divisible`) are fixed at their compiled value and listed in the factory's docstring.

Module attributes reproduce the interpreter's names (and so its state_dict keys): names
that are not identifiers are registered with `add_module(repr)` and read with `getattr`,
except stateless modules (activations, pooling), which may be renamed and shared since they
own no state. Parameter-free joins are written inline: `a + b`, `torch.cat([...], 1)`,
`x * 0.17`. Every identifier comes from `netc.backends.codegen.names`; every value from the spec is
emitted with `repr` or as an expression re-printed from its parsed AST with its names
mapped, so nothing in a spec can inject code. Output is formatted by `ruff format`
(pinned) and is byte-identical for the same spec.

Forward conventions are the interpreter's (`netc.backends.torch.module`): eval returns the
main output; with training-only aux heads, training returns a NamedTuple in the spec's
`outputs` order. Under TorchScript the NamedTuple is always returned (aux entries None in
eval), as torchvision's GoogLeNet and Inception3 do.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from netc.backends.codegen.fitting import (HOLE, IN, NOTHING, OMIT, PY_FUNCS, Draft, Frag, Hole, call_frag,
                                   class_defaults, class_parameters, evaluate, hole, influences, join_frags, literal, names_in,
                                   norm, parse, pick, py_expr, same, spec_exprs, substitute, union_order)
from netc.backends.codegen.names import Names, is_identifier, sanitize
from netc.backends.codegen.scopes import INLINE_OPS, Box, local_name, scope_tree
from netc.errors import NetcError, error
from netc.ops import REGISTRY

RUNTIME = ("Add", "Concat", "Scale", "PadChannels", "SeparableConv2d")
# names every generated namespace must leave alone
RESERVED = {"self", "torch", "nn", "math", "Tensor", "Optional", "NamedTuple", "OrderedDict", "super",
            "range", "getattr", "min", "max", "abs", "int", "float", "round", "print", "len", "list",
            "tuple", "dict", "str", "bool", "type", "object", "None", "True", "False"} | set(RUNTIME) | set(dir(builtins))


# --- the container tree --------------------------------------------------------------------

@dataclass
class Line:
    """One forward statement: the item it calls, whether it maps a variable onto itself
    (`x = self.downsample(x)`: can be made optional), inside an aux head, names to declare."""

    key: tuple
    text: str
    passthrough: bool
    aux: bool
    declare: tuple = ()


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

    @property
    def env(self):
        return self.draft.env


@dataclass
class ClassDef:
    name: str
    template: str | None
    params: list[tuple[str, str, Any]] = field(default_factory=list)  # (spec name, python name, default)
    out_cexprs: list[str | None] = field(default_factory=list)
    code: str = ""
    doc: str = ""
    shape: str = ""  # `code` with the signature's defaults hidden (see `Generator.fingerprint`)


@dataclass
class Instance:
    cls: ClassDef
    args: dict[str, Any]  # spec-space param -> value in this instance
    cands: dict[str, list[str]]  # spec-space param -> candidate expressions in the parent's space


class Generator:
    def __init__(self, network, fixed=()):
        self.net = network
        self.g = network.graph
        self.data = self.g.nodes
        self.blocks = self.g.graph["blocks"]
        spec = network.spec
        self.templates = {}
        from netc.spec.load import collect_templates

        try:
            self.templates = collect_templates(spec, network.file)
        except NetcError:
            self.templates = dict(spec.templates)
        self.by_loc = {}
        for node in [*spec.layers, *(t.body for t in self.templates.values())]:
            self._index(node)
        self.globals = self._globals()
        self.tainted |= set(fixed)  # params the caller found inexact as factory arguments
        self.module_names = Names(RESERVED | {"Outputs", "EvalOutputs"})
        self.classes: list[ClassDef] = []
        self.runtime_used: set[str] = set()
        self.uses_math = False
        self.uses_ordered = False
        self.stop = None
        self.fixed: list = []
        self.uses_fnmatch = False
        self.init_note = ""

    # -- spec index ------------------------------------------------------------------------
    def _index(self, node):
        raw = getattr(node, "_raw", None)
        loc = getattr(raw, "loc", None)
        if loc is not None:
            self.by_loc.setdefault(loc, node)
        for key in ("seq", "concat"):
            for child in getattr(node, key, None) or []:
                self._index(child)
        if getattr(node, "side", None) is not None:
            self._index(node.side)
        res = getattr(node, "residual", None)
        if res is not None:
            for child in (res.body, res.shortcut, res.then):
                if child is not None:
                    self._index(child)

    def _globals(self) -> dict:
        """Params and the vars that can be written as Python (not make_divisible)."""
        env = dict(self.net.env)
        raw_vars = self.net.spec.vars
        self.var_text = {}
        self.tainted: set[str] = set()  # params feeding a var generated code cannot compute
        for key in list(raw_vars):
            v = raw_vars[key]
            if isinstance(v, str) and "$" in v:
                tree = parse(v)
                ok = tree is not None and all(
                    not isinstance(n, ast.Call) or getattr(n.func, "id", None) in PY_FUNCS for n in ast.walk(tree))
                if ok and all(n in self.var_text or n in self.net.spec.params for n in names_in(v)):
                    self.var_text[key] = ast.unparse(tree)
                    continue
                env.pop(key, None)
                reads = names_in(v)
                while reads:  # the params this var depends on, through other vars
                    n = reads.pop()
                    if n in self.net.spec.params:
                        self.tainted.add(n)
                    elif isinstance(raw_vars.get(n), str):
                        reads.extend(names_in(raw_vars[n]))
            elif isinstance(v, (bool, int, float, str)) or (isinstance(v, list) and all(
                    isinstance(x, (bool, int, float, str)) for x in v)):
                self.var_text[key] = repr(norm(v) if not isinstance(v, list) else list(v))
            else:
                env.pop(key, None)
        return {k: (norm(v) if isinstance(v, (list, tuple)) else v) for k, v in env.items()
                if isinstance(v, (bool, int, float, str, tuple))}

    # -- constructors ----------------------------------------------------------------------
    def shapes_in(self, nid):
        return [self.data[i]["shape"] for i in self.data[nid]["inputs"]]

    def callee_of(self, nid) -> str:
        """How generated code names the module class of an op: `nn.Conv2d`, `SeparableConv2d`."""
        d = self.data[nid]
        module, _, cls = REGISTRY[d["op"]].module(d["attrs"], self.shapes_in(nid)).cls.rpartition(".")
        return f"nn.{cls}" if module == "torch.nn" else cls

    def op_ctor(self, nid, cexprs: dict) -> Frag:
        """The op's constructor call from its `module()` facet, one hole per value.

        Which attributes (and whether the input channel count) feed each constructor value
        is found by probing the facet with one attribute changed at a time, so the spec's
        expression for exactly that attribute is the candidate (no per-op tables here).
        """
        d = self.data[nid]
        op, shapes = REGISTRY[d["op"]], self.shapes_in(nid)
        ms = op.module(d["attrs"], shapes)
        module, _, cls = ms.cls.rpartition(".")
        if module == "netc.backends.torch.runtime":
            self.runtime_used.add(cls)
            callee = cls
        elif module == "torch.nn":
            callee = f"nn.{cls}"
        else:
            raise error("codegen", f"op '{d['op']}' builds '{ms.cls}', which generated code cannot import",
                        d["loc"])
        defaults = class_defaults(ms.cls)
        node = self.by_loc.get(d["loc"])
        raw = node._raw.get(d["op"]) if node is not None and hasattr(node._raw, "get") else None
        raw = raw if isinstance(raw, dict) else {}
        sources = influences(op, d["attrs"], shapes, ms)
        inputs = d["inputs"]

        def cands_of(pos):
            cands = []
            for src in sources.get(pos, ()):
                if src is IN:
                    if inputs and inputs[0] in cexprs:
                        cands.append(cexprs[inputs[0]])
                else:
                    cands.extend(self.lift(spec_exprs({src: raw.get(src)}), d["via"]))
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

    def scale_hole(self, nid) -> Frag | None:
        """A residual's scale when the spec writes it as an expression (`scale: $scale`)."""
        d = self.data[nid]
        res = getattr(self.by_loc.get(d["loc"]), "residual", None)
        cands = self.lift(spec_exprs({"scale": res.scale}), d["via"]) if res is not None else []
        return hole(d["attrs"].factor, cands) if cands else None

    def box_ctor(self, box: Box, cexprs: dict, env: dict) -> Frag:
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
        via = self.data[min(box.nodes)]["via"]
        if box.block.loc in via:
            via = via[via.index(box.block.loc) + 1:]
        cands = self.lift(box.instance.cands.get(spec_name, []), via)
        return cands + [spec_name] if spec_name in env else cands

    def lift(self, cands: list[str], via) -> list[str]:
        """Expressions written inside unnamed (inlined) template uses, also rewritten into the
        enclosing class's names through those uses' arguments (`$out` -> `pool`)."""
        out, cur = list(cands), list(cands)
        for loc in via:
            if loc == self.stop or not cur:
                break
            use = self.by_loc.get(loc)
            template = self.templates.get(getattr(use, "use", None) or "")
            if template is None:
                break
            raw = use._raw.get("args") if hasattr(use._raw, "get") else None
            raw = raw if isinstance(raw, dict) else {}
            mapping = {}
            for a, decl in template.args.items():
                v = raw.get(a, decl)
                if isinstance(v, str) and ("$" in v or v in ("int", "float", "bool", "str", "list", "any")):
                    if "$" in v and parse(v) is not None:
                        mapping[a] = ast.unparse(parse(v))
                    continue
                if isinstance(v, (bool, int, float, str, list, tuple)):
                    mapping[a] = repr(norm(v))
            cur = [substitute(c, mapping) for c in cur if all(n in mapping for n in names_in(c)
                                                               if n in template.args)]
            out.extend(cur)
        return list(dict.fromkeys(out))

    def sequential(self, box: Box, cexprs: dict, env: dict) -> Frag:
        self.flow(box, cexprs, env)
        parts: list[tuple[str, Frag]] = []
        for kind, it in box.items:
            if kind == "op":
                parts.append((local_name(self.data, it, box), self.op_ctor(it, cexprs)))
            else:
                parts.append((it.local, self.box_ctor(it, cexprs, env)))
        if [name for name, _ in parts] == [str(i) for i in range(len(parts))]:
            runs: list[list] = []
            for _, f in parts:
                if runs and runs[-1][0].key() == f.key():
                    runs[-1][1] += 1
                else:
                    runs.append([f, 1])
            items = [f if n == 1 else Frag(f"*[{f.text} for _ in range({n})]", f.holes) for f, n in runs]
            return call_frag("nn.Sequential", items)
        self.uses_ordered = True
        pairs = [Frag(f"({name!r}, {f.text})", f.holes) for name, f in parts]
        inner = join_frags(pairs)
        return Frag(f"nn.Sequential(OrderedDict([{inner.text}]))", inner.holes)

    def flow(self, box: Box, cexprs: dict, env: dict) -> None:
        """Channel expressions (spec space, one instance) of every value a box produces."""
        for kind, it in box.items:
            if kind == "op":
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
        shape = self.data[nid]["shape"]
        return shape[0]

    def op_cexpr(self, nid, cexprs: dict, env: dict) -> str:
        d = self.data[nid]
        value = self.channels(nid)
        node = self.by_loc.get(d["loc"])
        raw = node._raw.get(d["op"]) if node is not None and hasattr(node._raw, "get") else None
        cands = self.lift(spec_exprs(raw), d["via"]) if isinstance(raw, dict) else []
        ins = [cexprs.get(i) for i in d["inputs"]]
        flat = None
        if ins and ins[0] is not None:
            cands.append(ins[0])
            shape_in = self.data[d["inputs"][0]]["shape"]
            if len(shape_in) == 3 and len(d["shape"]) == 1 and shape_in[1] * shape_in[2] > 1:
                flat = f"({ins[0]}) * {shape_in[1]} * {shape_in[2]}"  # C * H * W, as written by hand
                cands.append(flat)
        if len(ins) > 1 and all(c is not None for c in ins):
            cands.append(" + ".join(f"({c})" for c in ins))
        c = pick(cands, value, env)
        # arithmetic on constants alone is folded (768, not 384 + 96 + 288), but C * H * W is kept
        keep = c is not None and (names_in(c) or c == flat or ins and c == ins[0])
        return ast.unparse(parse(c)) if keep else literal(value)

    # -- classes ---------------------------------------------------------------------------
    @staticmethod
    def class_loc(box: Box):
        """The use node whose names a class's expressions are written in (None: the spec's top)."""
        b = box
        while b is not None and b.block is not None:
            if b.block.kind in ("use", "repeat") and b.block.template:
                return b.block.loc
            b = b.parent
        return None

    def env_of(self, box: Box) -> dict:
        """Spec-space variables visible inside a box: globals, template args, input channels."""
        env = dict(self.globals)
        b = box
        chain = []
        while b is not None and b.block is not None:
            chain.append(b)
            b = b.parent
        for b in reversed(chain):
            if b.block.kind == "use" and b.block.args:
                for k, v in b.block.args.items():
                    env[k] = norm(v)
        if box.inputs:
            shape = self.data[box.inputs[0]]["shape"]
            env[IN] = shape[0]
        return env

    def draft_class(self, box: Box) -> "Member":
        """__init__ entries and forward lines of one instance, with holes."""
        env = self.env_of(box)
        self.stop = self.class_loc(box)
        draft = Draft(env)
        cexprs = {}
        if box.inputs:
            cexprs[box.inputs[0]] = IN if box.parent is not None else literal(env.get(IN))
        self.flow(box, cexprs, env)
        attrs = Names(RESERVED | {"training"})
        attr_of: dict = {}
        init = []
        shared: dict[tuple, str] = {}
        # names that must be kept (they own state or are identifiers already) go first
        for kind, it in box.items:
            local = local_name(self.data, it, box) if kind == "op" else it.local
            stateful = kind == "box" or self.data[it]["params"] or self.data[it]["buffers"]
            if is_identifier(local) and local not in RESERVED and local != "training" and not local.startswith("_"):
                attrs.reserve(local)
        for kind, it in box.items:
            if kind == "op" and self.data[it]["op"] in INLINE_OPS:
                factor = self.scale_hole(it) if self.data[it]["op"] == "scale" else None
                if factor is not None:  # `self.scale = scale`, read by `out * self.scale`
                    name = attrs.take("scale")
                    attr_of[("op", local_name(self.data, it, box))] = f"self.{name}"
                    init.append((("op", local_name(self.data, it, box)), f"self.{name} = {draft.add(factor)}"))
                continue
            local = local_name(self.data, it, box) if kind == "op" else it.local
            frag = self.op_ctor(it, cexprs) if kind == "op" else self.box_ctor(it, cexprs, env)
            key = (kind, local)
            stateful = kind == "box" or self.data[it]["params"] or self.data[it]["buffers"]
            named = is_identifier(local) and local not in RESERVED and local != "training"
            if stateful or (named and not local.startswith("_")):
                if is_identifier(local) and local not in RESERVED and local != "training":
                    attr_of[key] = f"self.{local}"
                    init.append((key, f"self.{local} = {draft.add(frag)}"))
                else:
                    attr_of[key] = f"getattr(self, {local!r})"
                    init.append((key, f"self.add_module({local!r}, {draft.add(frag)})"))
                continue
            fkey = frag.key()
            if fkey in shared:
                attr_of[key] = shared[fkey]
                continue
            name = attrs.take(local if not local.isdigit() and not local.startswith("_") else
                              self.data[it]["op"], prefix=self.data[it]["op"])
            attr_of[key] = shared[fkey] = f"self.{name}"
            init.append((("shared", name), f"self.{name} = {draft.add(frag)}"))
        lines, tail = self.forward(box, attr_of)
        return Member(box, draft, cexprs, draft.holes, init, lines, tail, attr_of)

    def forward(self, box: Box, attr_of: dict) -> str:
        data = self.data
        names = Names(RESERVED)
        live: dict[int, str] = {}
        if box.parent is None:
            live[0] = names.take("x")
        else:
            for i, nid in enumerate(box.inputs):
                live[nid] = names.take("x" if i == 0 else f"x{i}")
        uses: dict[int, list[int]] = {}
        for idx, (kind, it) in enumerate(box.items):
            ins = data[it]["inputs"] if kind == "op" else it.inputs
            for v in ins:
                uses.setdefault(v, []).append(idx)
        end = len(box.items)
        results = self.result_values(box)
        for v in results:
            uses.setdefault(v, []).append(end)
        lines: list[Line] = []
        for idx, (kind, it) in enumerate(box.items):
            ins = data[it]["inputs"] if kind == "op" else it.inputs
            outs = [it] if kind == "op" else it.outputs
            args = [live[v] for v in ins]
            if kind == "op":
                op = data[it]["op"]
                if op == "add":
                    expr = " + ".join(args)
                elif op == "cat":
                    expr = f"torch.cat([{', '.join(args)}], 1)"
                elif op == "scale":
                    factor = attr_of.get(("op", local_name(self.data, it, box))) or repr(data[it]["attrs"].factor)
                    expr = f"{args[0]} * {factor}"
                else:
                    expr = f"{attr_of[('op', local_name(self.data, it, box))]}({', '.join(args)})"
                pref = "out"
            else:
                expr = f"{attr_of[('box', it.local)]}({', '.join(args)})"
                pref = it.local
            dead = [v for v in dict.fromkeys(ins) if max(uses[v]) == idx]
            reuse = live[ins[0]] if len(outs) == 1 and len(ins) == 1 and dead == ins else None
            for v in dead:
                if live[v] != reuse:
                    names.used.discard(live[v])
            outnames = []
            aux = (data[it]["aux"] if kind == "op" else it.aux) and not box.aux
            for _ in outs:
                if reuse is not None:
                    outnames.append(reuse)
                else:
                    outnames.append(names.take("out" if not pref or pref[0].isdigit() or pref.startswith("_")
                                               else pref))
            for v in dead:
                del live[v]
            declare = []
            for o, n in zip(outs, outnames):
                live[o] = n
                if aux and any(u > idx for u in uses.get(o, [])):
                    declare.append(n)
            key = ("op", local_name(self.data, it, box)) if kind == "op" else ("box", it.local)
            lines.append(Line(key, f"{', '.join(outnames)} = {expr}", reuse is not None and kind == "box" or (
                reuse is not None and data[it]["op"] not in INLINE_OPS), aux, tuple(declare)))
        return lines, self.returns(box, live, results)

    @staticmethod
    def render_forward(lines: list["Line"], tail: list[str], optional: dict) -> str:
        """Forward body: aux lines under `if self.training:`, optional modules under a None test."""
        body: list[str] = []
        in_aux = False
        for i, ln in enumerate(lines):
            if ln.aux and not in_aux:
                for later in lines[i:]:
                    if not later.aux:
                        break
                    body.extend(f"{n}: Optional[Tensor] = None" for n in later.declare)
                body.append("if self.training:")
            in_aux = ln.aux
            pad = "    " if ln.aux else ""
            if ln.key in optional:
                body.append(f"{pad}if {optional[ln.key]} is not None:")
                pad += "    "
            body.append(pad + ln.text)
        return "\n".join(body + tail)

    def result_values(self, box: Box) -> list[int]:
        if box.parent is not None:
            return box.outputs
        return [nid for _, nid, _ in self.outputs]

    def returns(self, box: Box, live: dict, results: list[int]) -> list[str]:
        if box.parent is not None:
            return [f"return {', '.join(live[v] for v in results)}"]
        outs = self.outputs
        if len(outs) == 1:
            return [f"return {live[outs[0][1]]}"]
        allv = ", ".join(live[nid] for _, nid, _ in outs)
        main = [live[nid] for _, nid, aux in outs if not aux]
        if not any(aux for _, _, aux in outs):
            return [f"return Outputs({allv})"]
        tail = main[0] if len(main) == 1 else f"EvalOutputs({', '.join(main)})"
        return ["if torch.jit.is_scripting() or self.training:", f"    return Outputs({allv})", f"return {tail}"]

    def finish_classes(self, root: Box) -> None:
        """Bottom-up: draft every class instance, group by structure, fit holes, emit."""
        levels: dict[int, list[Box]] = {}

        def walk(b: Box) -> int:  # by height, so instances of a template at any depth group;
            # an inline Sequential is part of its parent's class, so it adds no height
            height = max((walk(c) + (0 if c.chain else 1) for c in b.children), default=0)
            levels.setdefault(height, []).append(b)
            return height

        walk(root)
        for depth in sorted(levels):
            groups: dict[tuple, list] = {}
            for b in levels[depth]:
                if b.chain:
                    continue
                m = self.draft_class(b)
                template = b.block.template if b.block is not None and b.block.kind == "use" else None
                key = (template, "\n".join(t for _, t in m.init), self.render_forward(m.lines, m.tail, {}),
                       len(b.inputs), len(b.outputs))
                groups.setdefault(key, []).append(m)
            by_template: dict[str, list] = {}
            for key in groups:
                if key[0] is not None:
                    by_template.setdefault(key[0], []).append(key)
            for keys in by_template.values():
                if len(keys) > 1:
                    merged = self.merge([groups[k] for k in keys])
                    if merged is not None:
                        for k in keys:
                            del groups[k]
                        groups[merged[0]] = merged[1]
            for key, members in groups.items():
                self.make_class(key, members)

    def merge(self, groups: list[list[Member]]):
        """One class for instances of a template that differ only by optional modules applied in
        place (`x = self.downsample(x)`), each present exactly when the spec's `if:` holds.
        Returns (key, members) of the merged class, or None to keep one class per structure."""
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
                        cands.extend(self.condition_cands(m.box, k))
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
        fwd = self.render_forward([line_of[i] for i in order_lines], reps[0].tail, attr)
        b0 = reps[0].box
        key = (b0.block.template, "\n".join(init), fwd, len(b0.inputs), len(b0.outputs))
        return key, members

    def condition_cands(self, box: Box, key) -> list[str]:
        """The spec's `if:` of an optional module, in the class's names."""
        kind, local = key
        if kind == "op":
            nid = next(n for n in box.ops if local_name(self.data, n, box) == local)
            loc, via = self.data[nid]["loc"], self.data[nid]["via"]
        else:
            child = next(c for c in box.children if c.local == local)
            loc = child.block.loc
            via = self.data[min(child.nodes)]["via"]
            if loc in via:
                via = via[via.index(loc) + 1:]
        node = self.by_loc.get(loc)
        cond = getattr(node, "if_", None)
        if not isinstance(cond, str) or parse(cond) is None:
            return []
        self.stop = self.class_loc(box)
        return self.lift([ast.unparse(parse(cond))], via)

    def make_class(self, key, members) -> None:
        template, init, fwd, _, _ = key
        root = members[0].box.parent is None
        drafts = [m.draft for m in members]
        n = len(members[0].holes)
        texts: list[str] = []
        used: list[str] = []
        extra: list[tuple[str, list]] = []
        for j in range(n):
            have = [(m.env, m.holes[j]) for m in members if m.holes[j] is not None]
            values = [h.value for _, h in have]
            cands = list(dict.fromkeys(c for _, h in have for c in h.cands))
            chosen = next((c for c in cands if all(same(evaluate(c, env), h.value) for env, h in have)), None)
            h0 = have[0][1]
            if chosen is not None:
                for nm in names_in(chosen):
                    if nm not in used:
                        used.append(nm)
                texts.append(("expr", chosen, h0))
            elif all(same(v, values[0]) for v in values):
                texts.append(("lit", values[0], h0))
            else:
                # values differ and no expression of the spec explains them: a template argument
                # that does (checked on every instance), else an explicit constructor argument
                decl = self.templates[template].args if template in self.templates else {}
                arg = next((a for a in decl if all(same(env.get(a, NOTHING), h.value) for env, h in have)), None)
                vector = [m.holes[j].value if m.holes[j] is not None else None for m in members]
                if arg is not None:
                    used.append(arg) if arg not in used else None
                    texts.append(("expr", arg, h0))
                    continue
                pname = next((p for p, v in extra if v == vector), None)
                if pname is None:
                    pname = f"arg{len(extra)}"
                    extra.append((pname, vector))
                texts.append(("param", pname, h0))
        # class parameters
        decl = self.templates[template].args if template in self.templates else {}
        params: list[tuple[str, Any]] = []
        if IN in used:
            params.append((IN, NOTHING))
        for a, dv in decl.items():
            if a in used:
                required = isinstance(dv, str) and (dv in ("int", "float", "bool", "str", "list", "any") or "$" in dv)
                params.append((a, NOTHING if required or isinstance(dv, (dict, list)) else dv))
        for nm in used:
            if nm != IN and nm not in decl:
                params.append((nm, NOTHING))
        for pname, _ in extra:
            params.append((pname, NOTHING))
        var_lines = []
        if root:  # the spec's params (with their --set values) that the code honours
            need = set(used)
            for v in reversed(list(self.var_text)):  # a var reads only earlier ones
                if v in need:
                    need.update(names_in(self.var_text[v]))
            spec_params = self.net.spec.params
            exposed = [p for p in spec_params if p in need and p not in self.tainted]
            self.fixed = [(p, self.net.env[p]) for p in spec_params if p not in exposed]
            params = [(p, norm(v) if not isinstance(v, list) else list(v))
                      for p, v in ((p, self.net.env[p]) for p in exposed)]
            # a param that also feeds a var Python cannot write is fixed: a constant here
            var_lines = [(p, literal(norm(self.net.env[p]))) for p in spec_params if p in need and p in self.tainted]
            var_lines += [(v, self.var_text[v]) for v in self.var_text if v in need and v not in spec_params]
        params = [p for p in params if p[1] is NOTHING] + [p for p in params if p[1] is not NOTHING]
        pnames = Names(RESERVED | set(self.module_names.used))
        mapping = {}
        for p, _ in [*params, *var_lines]:
            mapping[p] = pnames.take("in_channels" if p == IN else p)
        var_lines = [f"{mapping[v]} = {py_expr(text, mapping)}" for v, text in var_lines]
        for nm in used:
            if nm not in mapping:  # a var that cannot be written: never chosen (see _globals)
                raise error("codegen", f"internal: unbound name '{nm}'")
        extra_map = {p: mapping[p] for p, _ in extra}

        def render(m):
            kind, val, h = texts[int(m.group(1))]
            if kind == "expr":
                s = py_expr(val, mapping)
                if any(t in val for t in ("ceil(", "floor(")):
                    self.uses_math = True
                omit = h.kwarg is not None and h.default is not NOTHING and all(
                    same(mb.holes[int(m.group(1))].value, norm(h.default)) for mb in members
                    if mb.holes[int(m.group(1))] is not None) and not names_in(val)
            elif kind == "lit":
                s = literal(val)
                omit = h.kwarg is not None and h.default is not NOTHING and same(val, norm(h.default))
            else:
                s = extra_map[val]
                omit = False
            if omit:
                return OMIT
            return f"{h.kwarg}={s}" if h.kwarg else s

        def fill(text):
            out = HOLE.sub(render, text)
            while OMIT in out:
                out = re.sub(f", {OMIT}|{OMIT}, |{OMIT}", "", out)
            return out

        b0 = members[0].box
        if root:
            name = self.module_names.take_class(self.net.name)
        elif template is not None:
            name = self.module_names.take_class(template)
        else:
            name = self.module_names.take_class(b0.local if not b0.local.isdigit() else b0.scope)
        cls = ClassDef(name, template)
        cls.params = [(p, mapping[p], d) for p, d in params]
        sig = ["self"] + [mapping[p] if d is NOTHING else f"{mapping[p]}={literal(d)}" for p, d in params]
        nin = len(b0.inputs) if not root else 1
        fsig = ["self"] + (["x"] if nin == 1 else [("x" if i == 0 else f"x{i}") for i in range(nin)])
        init_body = "\n".join(var_lines + ([fill(init)] if init else []))
        if root:
            loop = init_loop(self.net, self.callee_of)
            self.init_note = ("Weights start from PyTorch's defaults: the spec's init: scheme tells conv from "
                              "sepconv, which a module loop cannot.") if loop is None else ""
            if loop and loop[0]:
                init_body += "\n" + "\n".join(loop[0])
                self.uses_fnmatch = loop[1]
        self.uses_math = self.uses_math or "math." in init_body
        def class_code(signature):
            return self.env_tpl("class.py.j2").render(
                name=name, signature=", ".join(signature), init=init_body, forward_signature=", ".join(fsig),
                forward=fwd, doc=self.class_doc(template, b0))

        cls.code = class_code(sig)
        # the top class's defaults are the compiled param values: hidden to compare compiles
        cls.shape = class_code(["self"] + [mapping[p] if d is NOTHING else f"{mapping[p]}=_" for p, d in params]
                               ) if root else cls.code
        # output channel expressions in class space
        for j in range(len(b0.outputs) if not root else 0):
            vals = [self.channels(m.box.outputs[j]) for m in members]
            cands = list(dict.fromkeys(m.cexprs[m.box.outputs[j]] for m in members if m.box.outputs[j] in m.cexprs))
            chosen = None
            for c in cands:
                if all(same(evaluate(c, d.env), v) for d, v in zip(drafts, vals)):
                    chosen = c
                    break
            if chosen is not None and not all(nm in mapping for nm in names_in(chosen)):
                chosen = None
            cls.out_cexprs.append(chosen)
        self.classes.append(cls)
        for idx, m in enumerate(members):
            b = m.box
            args = {p: m.env.get(p) for p, _ in params if p not in extra_map}
            for pname, values in extra:
                args[pname] = values[idx]
            cands = {}
            if b.block is not None and b.block.kind == "use":
                use = self.by_loc.get(b.block.loc)
                raw = getattr(use, "_raw", None) or {}
                for src in (raw.get("args"), raw.get("first"), *((raw.get("at") or {}).values())):
                    if isinstance(src, dict):
                        for k, v in src.items():
                            if isinstance(v, str) and "$" in v and parse(v) is not None:
                                cands.setdefault(k, []).append(ast.unparse(parse(v)))
            b.instance = Instance(cls, args, cands)

    def class_doc(self, template, box) -> str:
        if template is None:
            return ""
        t = self.templates.get(template)
        return t.description if t is not None else ""

    @staticmethod
    @lru_cache(maxsize=None)
    def env_tpl(name):
        env = jinja2.Environment(loader=jinja2.PackageLoader("netc.backends.codegen", "templates"),
                                 keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                                 undefined=jinja2.StrictUndefined, autoescape=False)
        env.filters["doc"] = doc_text
        env.filters["indent_body"] = lambda s, n: textwrap.indent(s, " " * n) if s else " " * n + "pass"
        return env.get_template(name)

    # -- the file --------------------------------------------------------------------------
    def build(self) -> "Generator":
        from netc.backends.torch.module import output_order

        self.outputs = output_order(self.net)
        self.finish_classes(scope_tree(self.net))
        self.factory = self.module_names.take(self.net.name, prefix="build")
        return self

    @property
    def exposed(self) -> list[str]:
        """The spec params the factory takes as keyword arguments."""
        return [p for p, _, _ in self.classes[-1].params]

    def generate(self) -> str:
        return format_source(self.source())

    def fingerprint(self) -> str:
        """The source with every value of this compile's params hidden: equal for two compiles
        exactly when the code of one, called with the other's values, is the code of the other."""
        return self.source(hidden=True)

    def source(self, hidden: bool = False) -> str:
        from netc.backends.torch.module import outputs_type

        model = self.classes[-1]
        factory = self.factory
        fields = outputs_type(tuple(n for n, _, _ in self.outputs))._fields if len(self.outputs) > 1 else ()
        eval_fields = [f for f, (_, _, aux) in zip(fields, self.outputs) if not aux]
        runtime = [inspect.getsource(getattr(_runtime(), n)) for n in RUNTIME if n in self.runtime_used]
        params = [(py, "_" if hidden else literal(d)) for _, py, d in model.params]
        text = self.env_tpl("module.py.j2").render(
            spec_name=self.net.name, file=display_path(self.net.file), description=self.net.spec.description,
            params="_" if hidden else f"{self.net.params:,}", macs="_" if hidden else f"{self.net.macs:,}",
            input=" x ".join(str(d) for d in self.net.input_shape),
            uses_math=self.uses_math, uses_ordered=self.uses_ordered, uses_fnmatch=self.uses_fnmatch,
            init_note=self.init_note,
            tensor=bool(fields),
            typing=", ".join(t for t, on in (("NamedTuple", bool(fields)), ("Optional", any(
                aux for _, _, aux in self.outputs))) if on),
            runtime=runtime, classes=[c.shape if hidden else c.code for c in self.classes],
            fields=fields, aux=[aux for _, _, aux in self.outputs],
            eval_fields=eval_fields if len(eval_fields) > 1 and len(eval_fields) < len(fields) else [],
            model=model.name, factory=factory, factory_params=params,
            fixed=", ".join(p if hidden else f"{p}={norm(v)!r}" for p, v in self.fixed),
            outputs=[(f, aux) for f, (_, _, aux) in zip(fields, self.outputs)])
        return text


def init_loop(network, callee_of) -> tuple[list[str], bool] | None:
    """The spec's `init:` scheme (`netc.spec.init`: a preset, then rules; later rules win) as
    torchvision writes it: a loop over the modules at the end of the model's `__init__`.
    Returns (lines, whether they use fnmatch), or None where a rule tells `conv` from `sepconv` (the
    separable conv's inner convs are `nn.Conv2d` too, so the loop could not tell them apart)."""
    from netc.spec.init import PRESETS, as_init_spec

    scheme = as_init_spec(network.spec.init)
    classes: dict[str, set[str]] = {}
    for nid, d in network.nodes():
        classes.setdefault(d["op"], set()).add(callee_of(nid))
    lines, scoped, uses_fnmatch = [], False, False
    for rule in PRESETS[scheme.preset] + scheme.rules:
        conds = []
        if rule.op is not None:
            names = [rule.op] if isinstance(rule.op, str) else list(rule.op)
            if "sepconv" in classes and ("conv" in names) != ("sepconv" in names):
                return None
            cls = sorted({c for n in names for c in classes.get(n, ())} - {"SeparableConv2d"}
                         | ({"nn.Conv2d"} if "sepconv" in names and "sepconv" in classes else set()))
            if not cls:
                continue
            conds.append(f"isinstance(m, {cls[0]})" if len(cls) == 1 else f"isinstance(m, ({', '.join(cls)}))")
        if rule.scope is not None:
            scoped = True
            if any(c in rule.scope for c in "*?["):
                uses_fnmatch = True
                conds.append(f"(fnmatch.fnmatchcase(name, {rule.scope!r}) or "
                             f"fnmatch.fnmatchcase(name, {rule.scope + '.*'!r}))")
            else:
                conds.append(f"(name == {rule.scope!r} or name.startswith({rule.scope + '.'!r}))")
        body = []
        for kind in ("weight", "bias"):
            fill = getattr(rule, kind)
            if fill is None or fill == "default":
                continue
            call = _fill_call(fill, "m." + kind)
            # a bias may be off, BN may have no affine weight, a scope also matches containers
            if kind == "bias" or rule.scope is not None or "bn" in (rule.op or ()):
                body += [f"if getattr(m, {kind!r}, None) is not None:", f"    {call}"]
            else:
                body.append(call)
        if body:
            lines.append(f"if {' and '.join(conds) if conds else 'True'}:")
            lines += ["    " + b for b in body]
    if not lines:
        return [], False
    head = "for name, m in self.named_modules():" if scoped else "for m in self.modules():"
    return [head] + ["    " + ln for ln in lines], uses_fnmatch


def _fill_call(fill, target: str) -> str:
    if isinstance(fill, (int, float)):
        return f"nn.init.constant_({target}, {float(fill)!r})"
    if fill in ("zeros", "ones"):
        return f"nn.init.{fill}_({target})"
    kind = fill.kind
    args = getattr(fill, kind)
    if kind == "constant":
        return f"nn.init.constant_({target}, {float(args)!r})"
    kwargs = ", ".join(f"{k}={v!r}" for k, v in args.model_dump().items())
    return f"nn.init.{kind}_({target}, {kwargs})"


def _runtime():
    import netc.backends.torch.runtime

    return netc.backends.torch.runtime


def doc_text(s: str) -> str:
    """Free text made safe inside a triple-quoted docstring (escaped, never closes it)."""
    return repr(str(s))[1:-1].replace('"', '\\"')


def display_path(file: str) -> str:
    p = Path(file)
    root = Path(__file__).resolve().parents[3]
    try:
        return p.resolve().relative_to(root).as_posix()
    except ValueError:
        return p.name


def format_source(text: str) -> str:
    try:
        out = subprocess.run([sys.executable, "-m", "ruff", "format", "--isolated", "--line-length", "100", "-"],
                             input=text, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise error("codegen", f"cannot run ruff to format the generated code: {exc}") from None
    if out.returncode != 0:
        raise error("codegen", "ruff could not format the generated code (a bug in netc): "
                    + out.stderr.strip()[:500])
    return out.stdout


def generate(network) -> str:
    """The generated PyTorch source of a compiled `netc.api.Network`."""
    from netc.backends.codegen.exact import exact_generator

    return exact_generator(network).generate()


def output_name(network) -> str:
    """`<name>.py`, the name made a valid module name (so the file can be imported)."""
    return f"{sanitize(network.name, 'net')}.py"


def write(network, out_dir: str | Path = "generated") -> Path:
    """Generate and write `<out_dir>/<name>.py` atomically; nothing is written on error."""
    from netc.fsutil import write_atomic

    source = generate(network)
    return write_atomic(Path(out_dir) / output_name(network), source)
