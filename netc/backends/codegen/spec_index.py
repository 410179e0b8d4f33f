"""Stage 0 of the code generator: the spec as the later stages ask about it.

Consumes a compiled `Network` and its `source` (the spec as written, `netc.spec.source`); produces a
`SpecIndex`: the spec node at each source location, the templates (imports included), the globals generated code can compute
(params, and the vars Python can write) and the params it cannot (`tainted`: they feed a var
such as `make_divisible`, or the caller found them inexact), the variables visible inside a box
(`env_of`), and expressions rewritten through unnamed template uses into a class's names (`lift`).
"""
from __future__ import annotations

import ast

from netc.backends.codegen.fitting import IN, PY_FUNCS, names_in, norm, parse, substitute
from netc.backends.codegen.scopes import Box


class SpecIndex:
    """The spec side of one compiled network, as the code generator asks about it."""

    def __init__(self, network, fixed=()):
        self.net = network
        self.g = network.graph
        self.data = self.g.node_table()
        self.blocks = self.g.blocks
        source = network.source
        self.written, self.is_type_name, self.loc_of = source.written, source.is_type_name, source.loc_of
        self.templates, self.by_loc = source.templates, source.by_loc
        self.else_of, self.parent_of = source.else_of, source.parent_of
        self.globals = self._globals()
        self.tainted |= set(fixed)  # params the caller found inexact as factory arguments

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


    def lift(self, cands: list[str], via, stop=None) -> list[str]:
        """Expressions written inside unnamed (inlined) template uses, also rewritten into the
        enclosing class's names through those uses' arguments (`$out` -> `pool`), up to
        the use `stop` whose names the class is written in."""
        out, cur = list(cands), list(cands)
        for loc in via:
            if loc == stop or not cur:
                break
            use = self.by_loc.get(loc)
            template = self.templates.get(getattr(use, "use", None) or "")
            if template is None:
                break
            raw = self.written(use, "args")
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
            shape = self.data[box.inputs[0]].shape
            env[IN] = shape[0]
        return env

