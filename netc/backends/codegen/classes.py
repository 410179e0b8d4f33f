"""Stage 4 of the code generator: classes from the drafted instances, bottom-up.

Consumes the scope tree (`scopes.py`), drafting each box that is not an inline chain
(`instances.py`); produces `ClassDef`s in dependency order, the network's class last. Instances
of one template whose code agrees apart from the holes share one class (`merge.py` also joins
those that differ by optional modules); each hole is fitted to an expression over the class's
arguments (`fitting.fit_holes`), which decides the class's parameters; each box is then given
its `Instance` (its class and argument values) so its parent's draft can call it. The network's


class takes the spec's params its code honours (`SpecIndex.tainted` are constants), computes the
spec's vars in Python, and ends its `__init__` with the spec's `init:` scheme.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from netc.backends.codegen.fitting import (HOLE, IN, NOTHING, OMIT, evaluate, fit_holes, literal, names_in, norm,
                                           parse, py_expr, same)
from netc.backends.codegen.forward import render_forward
from netc.backends.codegen.merge import LOCAL, merge
from netc.backends.codegen.names import RESERVED, Names
from netc.backends.codegen.scopes import Box
from netc.backends.codegen.source import env_tpl, init_loop
from netc.errors import error


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
    written: set[str] = field(default_factory=set)  # the params the use writes (args, first, at)


class ClassBuilder:
    """The classes of one network, in the order the file defines them."""

    def __init__(self, network, index, drafter):
        self.net = network
        self.index = index
        self.drafter = drafter
        self.module_names = Names(RESERVED | {"Outputs", "EvalOutputs"})
        self.classes: list[ClassDef] = []
        self.uses_math = False
        self.uses_fnmatch = False
        self.init_note = ""
        self.fixed: list = []  # (param, value) the network's class does not take

    def finish_classes(self, root: Box) -> None:
        """Bottom-up: draft every class instance, group by structure, fit holes, emit."""
        levels: dict[int, list[Box]] = {}

        def walk(b: Box) -> int:  # by height, so instances of a template at any depth group;
            # an inline Sequential or list is part of its parent's class, so it adds no height
            height = max((walk(c) + (0 if c.chain or c.listed else 1) for c in b.children), default=0)
            levels.setdefault(height, []).append(b)
            return height

        walk(root)
        for depth in sorted(levels):
            groups: dict[tuple, list] = {}
            for b in levels[depth]:
                if b.chain or b.listed:
                    continue
                m = self.drafter.draft(b)
                template = b.block.template if b.block is not None and b.block.kind == "use" else None
                key = (template, "\n".join(t for _, t in m.init), render_forward(m.lines, m.tail, {}),
                       len(b.inputs), len(b.outputs))
                groups.setdefault(key, []).append(m)
            by_template: dict[str, list] = {}
            for key in groups:
                if key[0] is not None:
                    by_template.setdefault(key[0], []).append(key)
            for keys in by_template.values():
                if len(keys) > 1:
                    merged = merge([groups[k] for k in keys], self.drafter.condition_cands)
                    if merged is not None:  # in the place of the first instance's class
                        groups = {merged[0] if k == keys[0] else k: merged[1] if k == keys[0] else v
                                  for k, v in groups.items() if k == keys[0] or k not in keys}
            for key, members in groups.items():
                self.make_class(key, members)


    def make_class(self, key, members) -> None:
        template, init, fwd, _, _ = key
        root = members[0].box.parent is None
        decl = self.index.templates[template].args if template in self.index.templates else {}
        texts, used, extra = fit_holes(members, decl)
        params, var_lines = self._root_params(used) if root else (_class_params(decl, used, extra), [])
        params = [p for p in params if p[1] is NOTHING] + [p for p in params if p[1] is not NOTHING]
        pnames = Names(RESERVED | set(self.module_names.used))
        mapping = {p: pnames.take("in_channels" if p == IN else p) for p, _ in [*params, *var_lines]}
        var_lines = [f"{mapping[v]} = {py_expr(text, mapping)}" for v, text in var_lines]
        if LOCAL in init:  # the list a merged nn.Sequential is built in
            init = init.replace(LOCAL, pnames.take("layers"))
        for nm in used:
            if nm not in mapping:  # a var that cannot be written: never chosen (see _globals)
                raise error("codegen", f"internal: unbound name '{nm}'")
        extra_map = {p: mapping[p] for p, _ in extra}
        fill = self._hole_filler(texts, mapping, extra_map, members)
        b0 = members[0].box
        cls = ClassDef(self._class_name(root, template, b0), template)
        cls.params = [(p, mapping[p], d) for p, d in params]
        init_body = "\n".join(var_lines + ([fill(init)] if init else []))
        if root:
            init_body += self._init_scheme()
        self.uses_math = self.uses_math or "math." in init_body
        nin = len(b0.inputs) if not root else 1
        fsig = ["self"] + (["x"] if nin == 1 else [("x" if i == 0 else f"x{i}") for i in range(nin)])

        def class_code(signature):
            return env_tpl("class.py.j2").render(
                name=cls.name, signature=", ".join(signature), init=init_body, forward_signature=", ".join(fsig),
                forward=fwd, doc=self.class_doc(template, b0))

        cls.code = class_code(["self"] + [mapping[p] if d is NOTHING else f"{mapping[p]}={literal(d)}"
                                          for p, d in params])
        # the top class's defaults are the compiled param values: hidden to compare compiles
        cls.shape = class_code(["self"] + [mapping[p] if d is NOTHING else f"{mapping[p]}=_" for p, d in params]
                               ) if root else cls.code
        if not root:
            cls.out_cexprs = self._out_cexprs(members, mapping)
        self.classes.append(cls)
        for idx, m in enumerate(members):
            args = {p: m.env.get(p) for p, _ in params if p not in extra_map}
            for pname, values in extra:
                args[pname] = values[idx]
            m.box.instance = Instance(cls, args, *self._use_candidates(m.box))

    def _root_params(self, used) -> tuple[list, list]:
        """The network class's parameters: the spec's params (with their --set values) that the code
        honours; and the var lines its __init__ computes (a param that also feeds a var Python cannot
        write is fixed: a constant there)."""
        need = set(used)
        for v in reversed(list(self.index.var_text)):  # a var reads only earlier ones
            if v in need:
                need.update(names_in(self.index.var_text[v]))
        spec_params, env = self.net.spec.params, self.net.env
        exposed = [p for p in spec_params if p in need and p not in self.index.tainted]
        self.fixed = [(p, env[p]) for p in spec_params if p not in exposed]
        params = [(p, norm(env[p]) if not isinstance(env[p], list) else list(env[p])) for p in exposed]
        var_lines = [(p, literal(norm(env[p]))) for p in spec_params if p in need and p in self.index.tainted]
        var_lines += [(v, self.index.var_text[v]) for v in self.index.var_text if v in need and v not in spec_params]
        return params, var_lines

    def _hole_filler(self, texts, mapping, extra_map, members):
        """Fills a draft's holes with their fitted text; a keyword argument equal to its default in
        every instance is left out."""
        def render(m):
            i = int(m.group(1))
            kind, val, h = texts[i]
            if kind == "expr":
                s = py_expr(val, mapping)
                if any(t in val for t in ("ceil(", "floor(")):
                    self.uses_math = True
                omit = h.kwarg is not None and h.default is not NOTHING and all(
                    same(mb.holes[i].value, norm(h.default)) for mb in members
                    if mb.holes[i] is not None) and not names_in(val)
            elif kind == "lit":
                s = literal(val)
                omit = h.kwarg is not None and h.default is not NOTHING and same(val, norm(h.default))
            else:
                s, omit = extra_map[val], False
            if omit:
                return OMIT
            return f"{h.kwarg}={s}" if h.kwarg else s

        def fill(text):
            out = HOLE.sub(render, text)
            while OMIT in out:
                out = re.sub(f", {OMIT}|{OMIT}, |{OMIT}", "", out)
            return out
        return fill

    def _class_name(self, root, template, box) -> str:
        if root:
            return self.module_names.take_class(self.net.name)
        if template is not None:
            return self.module_names.take_class(template)
        return self.module_names.take_class(box.local if not box.local.isdigit() else box.scope)

    def _init_scheme(self) -> str:
        """The lines that end the network class's __init__ with the spec's init: scheme."""
        loop = init_loop(self.net, self.drafter.callee_of)
        self.init_note = ("Weights start from PyTorch's defaults: the spec's init: scheme tells conv from "
                          "sepconv, which a module loop cannot.") if loop is None else ""
        if not (loop and loop[0]):
            return ""
        self.uses_fnmatch = loop[1]
        return "\n" + "\n".join(loop[0])

    def _out_cexprs(self, members, mapping) -> list[str | None]:
        """Each output's channel count as an expression in the class's parameters, where one holds
        for every instance."""
        out = []
        for j in range(len(members[0].box.outputs)):
            vals = [self.drafter.channels(m.box.outputs[j]) for m in members]
            cands = list(dict.fromkeys(m.cexprs[m.box.outputs[j]] for m in members if m.box.outputs[j] in m.cexprs))
            chosen = next((c for c in cands if all(same(evaluate(c, m.draft.env), v) for m, v in zip(members, vals))),
                          None)
            if chosen is not None and not all(nm in mapping for nm in names_in(chosen)):
                chosen = None
            out.append(chosen)
        return out

    def _use_candidates(self, box) -> tuple[dict[str, list[str]], set[str]]:
        """For a template use: the expressions its arguments were written with (candidates in the
        parent's space) and the params it writes."""
        cands, written = {}, set()
        if box.block is None or box.block.kind != "use":
            return cands, written
        use = self.index.by_loc.get(box.block.loc)
        for src in (self.index.written(use, "args"), self.index.written(use, "first"),
                    *self.index.written(use, "at").values()):
            if isinstance(src, dict):
                written.update(src)
                for k, v in src.items():
                    if isinstance(v, str) and "$" in v and parse(v) is not None:
                        cands.setdefault(k, []).append(ast.unparse(parse(v)))
        return cands, written

    def class_doc(self, template, box) -> str:
        if template is None:
            return ""
        t = self.index.templates.get(template)
        return t.description if t is not None else ""



def _class_params(decl, used, extra) -> list[tuple[str, Any]]:
    """A template class's parameters: the input channels, the template's arguments its code uses
    (with their defaults where they are constants), other names it reads, and the extra holes."""
    params: list[tuple[str, Any]] = [(IN, NOTHING)] if IN in used else []
    for a, dv in decl.items():
        if a in used:
            required = isinstance(dv, str) and (dv in ("int", "float", "bool", "str", "list", "any") or "$" in dv)
            params.append((a, NOTHING if required or isinstance(dv, (dict, list)) else dv))
    params += [(nm, NOTHING) for nm in used if nm != IN and nm not in decl]
    params += [(pname, NOTHING) for pname, _ in extra]
    return params
