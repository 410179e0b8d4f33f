"""Expansion: templates, repeats, variables and defaults become the graph IR.

Naming follows nn.Sequential so that specs can reproduce torchvision's state_dict keys: a
node placed in a scope takes its `name:` or, without one, its position in that scope. Named
structures (seq, concat, residual, use, side, repeat) open a scope (`layer1`, `layer1.0`);
unnamed ones are transparent and their children continue the enclosing numbering. Nodes that
expansion itself adds (the concat of branches, a residual's add and scale) are named `_cat`,
`_add`, `_scale` and take no position.
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from netc.errors import Collector, Loc, NetcError, clip, did_you_mean, error, listing
from netc.ir.graph import Block, add_op, new_graph, set_inputs
from netc.ops import REGISTRY
from netc.spec.budget import MAX_WORK, STEP, spend, work_budget
from netc.spec.expr import is_expr, substitute, variables
from netc.spec.load import MAX_FILE_BYTES
from netc.spec.model import Node, Spec, Template
from netc.spec.names import BadName, check_output_name
from netc.spec.yamlload import key_loc, value_loc
from netc.spec.validate import attrs_error


@dataclass
class Limits:
    """Protect the machine: checked during expansion and before any allocation."""

    max_nodes: int = 100_000
    max_depth: int = 64  # nesting of structures and templates
    max_param_bytes: int = 16 * 2**30  # float32 parameters (4 bytes each)
    max_file_bytes: int = MAX_FILE_BYTES  # each spec file, imports included
    max_work: int = MAX_WORK  # steps of work (netc.spec.budget): iterations, evaluations, values


@dataclass
class Frame:
    """A naming scope: its module path prefix and the names placed directly in it."""

    prefix: str
    counter: int = 0
    names: dict[str, Loc | None] = field(default_factory=dict)
    next_generated: dict[str, int] = field(default_factory=dict)  # kind -> first suffix not yet tried

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def place(self, name: str | None, loc: Loc | None) -> str:
        """Take the next position; return the node's name (its own or its position)."""
        auto = str(self.counter)
        self.counter += 1
        name = auto if name is None else name
        self.claim(name, loc)
        return name

    def claim(self, name: str, loc: Loc | None) -> None:
        if name in self.names:
            first = self.names[name]
            raise error("name", f"duplicate name '{self.path(name)}'" + (f" (first used at {first})" if first else ""),
                        loc, "names must be unique within their block")
        self.names[name] = loc

    def generated(self, kind: str) -> str:
        """`_add`, `_add1`, …: the first free one; suffixes already tried are not tried again,
        so naming n of them is linear in n."""
        n = self.next_generated.get(kind, 0)
        name = f"_{kind}{n or ''}"
        while name in self.names:
            n += 1
            name = f"_{kind}{n}"
        self.next_generated[kind] = n + 1
        self.names[name] = None
        return name


@dataclass(frozen=True)
class Ctx:
    frame: Frame
    env: dict[str, Any]
    via: tuple[Loc, ...] = ()
    depth: int = 0
    stack: tuple[str, ...] = ()  # templates being instantiated
    aux: bool = False
    blocks: tuple[str, ...] = ()
    lint_ignore: frozenset = frozenset()  # lint rules a `lint: {ignore}` of this node or a parent silences

    def but(self, **kw) -> "Ctx":
        return Ctx(**{**self.__dict__, **kw})


def _loc(node) -> Loc | None:
    raw = getattr(node, "_raw", None)
    return getattr(raw, "loc", None)


def _name_loc(raw, loc: Loc | None) -> Loc | None:
    """Where a node's name is written (its `name:` value), else the node itself."""
    return value_loc(raw, "name", loc) if "name" in raw else loc


TYPE_NAMES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list,),
              "any": (object,)}


class Expander:
    def __init__(self, spec: Spec, file: str, templates: dict[str, Template], env: dict[str, Any],
                 limits: Limits):
        self.spec, self.file, self.templates, self.limits = spec, file, templates, limits
        self.globals = env
        self.g = new_graph(spec.name, file, tuple(spec.input))
        self.errors = Collector()
        self.names: dict[str, int] = {"input": 0}  # scope path -> node id giving its result
        self.pending: list[tuple[int, str, str, Loc | None, tuple]] = []  # from: refs to resolve
        self.output_names: set[str] = set()

    # --- IR construction -------------------------------------------------------------------
    def add(self, op: str, attrs, scope: str, inputs: list[int], loc, ctx: Ctx) -> int:
        if self.g.number_of_nodes() > self.limits.max_nodes:
            raise error("limit", f"the network expands to more than {self.limits.max_nodes:,} nodes", loc,
                        "check repeat counts; the limit is a setting (--max-nodes)")
        nid = add_op(self.g, op, attrs, scope, inputs, loc, ctx.via, ctx.aux, ctx.blocks)
        if ctx.lint_ignore:
            self.g.nodes[nid]["lint_ignore"] = ctx.lint_ignore
        return nid

    def keep_going(self, exc: NetcError) -> None:
        """Record an independent error and continue; a limit stops expansion at once (it would recur)."""
        if getattr(exc, "fatal", False):
            raise exc
        self.errors.add(exc)
        if "limit" in exc.codes:
            fatal = NetcError(self.errors.diagnostics)
            fatal.fatal = True
            raise fatal from None

    def attempt(self, expand, fallback: int) -> int:
        """`expand()`, or record its error and continue from `fallback`, so later parts are checked too."""
        try:
            return expand()
        except NetcError as exc:
            self.keep_going(exc)
            return fallback

    def publish(self, scope: str, nid: int) -> None:
        self.names[scope] = nid

    # --- nodes ----------------------------------------------------------------------------
    def expand_list(self, nodes, ctx: Ctx, cur: int) -> int:
        for node in nodes:
            try:
                cur = self.expand(node, ctx, cur)
            except NetcError as exc:
                self.keep_going(exc)
        return cur

    def expand(self, node: Node, ctx: Ctx, cur: int) -> int:
        loc = _loc(node)
        spend(STEP, loc)
        if ctx.depth > self.limits.max_depth:
            raise error("limit", f"nesting deeper than {self.limits.max_depth} levels", loc, via=ctx.via)
        raw = node._raw
        if node.lint is not None and node.lint.ignore:
            ctx = ctx.but(lint_ignore=ctx.lint_ignore | frozenset(node.lint.ignore))
        if node.if_ is not None:
            cond = self.eval(node.if_, ctx, value_loc(raw, "if", loc))
            if not cond:
                return cur
        if node.repeat is not None:
            return self.expand_repeat(node, ctx, cur)
        return self.expand_one(node, ctx, cur, node.name)

    def eval(self, value, ctx: Ctx, loc):
        return substitute(value, ctx.env, loc) if (is_expr(value) or isinstance(value, (dict, list))) else value

    def expand_repeat(self, node: Node, ctx: Ctx, cur: int) -> int:
        raw, loc = node._raw, _loc(node)
        n = self.eval(node.repeat, ctx, value_loc(raw, "repeat", loc))
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise error("schema", f"repeat must be a non-negative integer, got {clip(n)}", value_loc(raw, "repeat", loc),
                        via=ctx.via)
        if n > self.limits.max_nodes:
            raise error("limit", f"repeat: {n:,} exceeds the limit of {self.limits.max_nodes:,} nodes",
                        value_loc(raw, "repeat", loc), "the limit is a setting (--max-nodes)", via=ctx.via)
        at = dict(node.at or {})
        # the model's keys are ints; the YAML's may be written "1": map each back for its location
        at_keys = {int(k): k for k in raw["at"]} if node.at else {}
        for i in at:
            if not 0 <= i < n:
                span = f"gives 0…{n - 1}" if n else "is 0"
                raise error("schema", f"'at' names iteration {i}, but repeat {span}", key_loc(raw, "at", loc),
                            via=ctx.via)
        if node.name is not None:
            scope = ctx.frame.path(node.name)
            ctx.frame.place(node.name, _name_loc(raw, loc))
            self.g.graph["blocks"][scope] = Block(scope, "repeat", node.use, loc, n)
            outer = ctx.but(frame=Frame(scope), blocks=ctx.blocks + (scope,))
        else:
            outer = ctx
        for i in range(n):
            spend(STEP, loc)
            overrides = {}
            if i == 0 and node.first:
                overrides.update(self.eval(raw["first"], ctx, value_loc(raw, "first", loc)))
            if i in at:
                key = at_keys[i]
                overrides.update(self.eval(raw["at"][key], ctx, value_loc(raw["at"], key, loc)))
            # layered, not copied: a copy of every variable per iteration is quadratic
            it = outer.but(env=ChainMap({"i": i, **overrides}, ctx.env))
            # a named repeat names its iterations by index: layer1.0, layer1.1, …
            cur = self.expand_one(node, it, cur, str(i) if node.name is not None else None, overrides)
        if node.name is not None:
            self.publish(outer.frame.prefix, cur)
        return cur

    def expand_one(self, node: Node, ctx: Ctx, cur: int, name: str | None, arg_overrides=None) -> int:
        raw, loc, kind = node._raw, _loc(node), node.kind
        inputs = self.sources(node, ctx, cur)
        if kind in REGISTRY:
            out = self.expand_op(node, kind, ctx, inputs, name)
        else:
            if len(inputs) != 1:
                raise error("arity", f"'{kind}' takes one input, 'from' names {len(inputs)}",
                            key_loc(raw, "from", loc), "only add and cat join several tensors", via=ctx.via)
            inner = ctx.but(depth=ctx.depth + 1)
            if name is not None:
                scope = ctx.frame.path(name)
                ctx.frame.place(name, _name_loc(raw, loc))
                inner = inner.but(frame=Frame(scope), blocks=ctx.blocks + (scope,))
                template = node.use if kind == "use" else None
                self.g.graph["blocks"][scope] = Block(scope, kind, template, loc)
            out = getattr(self, "expand_" + kind)(node, inner, inputs[0], arg_overrides or {})
            if name is not None:
                self.publish(inner.frame.prefix, out)
        if node.output is not None and kind != "side":
            self.add_output(node.output, out, value_loc(raw, "output", loc), ctx)
        return out

    def sources(self, node: Node, ctx: Ctx, cur: int) -> list[int]:
        """The node's inputs: the previous result, or placeholders for its `from:` names."""
        if node.from_ is None:
            return [cur]
        refs = [node.from_] if isinstance(node.from_, str) else list(node.from_)
        raw, loc = node._raw, _loc(node)
        if not refs:
            raise error("ref", "'from' names no inputs", value_loc(raw, "from", loc), via=ctx.via)
        out = []
        for i, ref in enumerate(refs):
            rloc = value_loc(raw["from"], i, None) if isinstance(node.from_, list) else value_loc(raw, "from", loc)
            ph = self.add("_ref", None, ref, [], rloc, ctx)
            self.pending.append((ph, ref, ctx.frame.prefix, rloc, ctx.via))
            out.append(ph)
        return out

    def expand_op(self, node: Node, op: str, ctx: Ctx, inputs: list[int], name: str | None) -> int:
        raw, loc = node._raw, _loc(node)
        attrs_raw = raw.get(op)
        attrs_loc = value_loc(raw, op, loc)
        values = self.eval(attrs_raw, ctx, attrs_loc) if attrs_raw is not None else {}
        if not isinstance(values, dict):
            raise error("schema", f"'{op}' takes a mapping of attributes, got {clip(values)}", attrs_loc,
                        f"write '{op}: {{}}' for the defaults", via=ctx.via)
        model = REGISTRY[op].Attrs
        try:
            attrs = model.model_validate(dict(values))
        except Exception as exc:  # pydantic.ValidationError
            raise attrs_error(exc, op, values, attrs_loc, ctx.via) from None
        scope = ctx.frame.path(ctx.frame.place(name, _name_loc(raw, loc)))
        nid = self.add(op, attrs, scope, inputs, loc, ctx)
        if name is not None:
            self.publish(scope, nid)
        return nid

    def expand_seq(self, node: Node, ctx: Ctx, cur: int, _overrides) -> int:
        if not node.seq:
            raise error("schema", "empty 'seq'", _loc(node), via=ctx.via)
        return self.expand_list(node.seq, ctx, cur)

    def expand_concat(self, node: Node, ctx: Ctx, cur: int, _overrides) -> int:
        if not node.concat or len(node.concat) < 2:
            raise error("arity", "'concat' needs at least two branches", _loc(node), via=ctx.via)
        outs = [self.attempt(lambda: self.expand(branch, ctx, cur), cur) for branch in node.concat]
        return self.add("cat", REGISTRY["cat"].Attrs(), ctx.frame.path(ctx.frame.generated("cat")), outs,
                        _loc(node), ctx)

    def expand_residual(self, node: Node, ctx: Ctx, cur: int, _overrides) -> int:
        res, loc = node.residual, _loc(node)
        # the parts in the order the mapping lists them: that is the order of the built module's
        # children (timm's Xception registers its shortcut first); the forward still runs the body first
        keys = [k for k in (res._raw if isinstance(res._raw, dict) else ()) if k in ("body", "shortcut")]
        order = ("shortcut", "body") if keys == ["shortcut", "body"] else ("body", "shortcut")
        ends = {}
        for part in order:
            sub = getattr(res, part)
            ends[part] = self.attempt(lambda sub=sub: self.expand(sub, ctx, cur), cur) if sub is not None else cur
        body, shortcut = ends["body"], ends["shortcut"]
        scale = self.eval(res.scale, ctx, value_loc(res._raw, "scale", loc))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise error("schema", f"residual scale must be a number, got {clip(scale)}", value_loc(res._raw, "scale", loc),
                        via=ctx.via)
        if scale != 1:
            attrs = REGISTRY["scale"].Attrs(factor=float(scale))
            body = self.add("scale", attrs, ctx.frame.path(ctx.frame.generated("scale")), [body], loc, ctx)
        out = self.add("add", REGISTRY["add"].Attrs(), ctx.frame.path(ctx.frame.generated("add")),
                       [body, shortcut], loc, ctx)
        if res.then is not None:
            out = self.expand(res.then, ctx, out)
        return out

    def expand_side(self, node: Node, ctx: Ctx, cur: int, _overrides) -> int:
        raw, loc = node._raw, _loc(node)
        before = len(self.errors.diagnostics)
        out = self.expand(node.side, ctx.but(aux=ctx.aux or node.aux), cur)
        if out == cur and len(self.errors.diagnostics) == before:  # not empty: its layers had errors
            raise error("schema", "a side branch needs at least one layer (all of its layers were skipped)", loc,
                        via=ctx.via)
        name = node.output or node.name
        if name is None:
            raise error("schema", "a side branch needs 'output' (or 'name') to name its result", loc, via=ctx.via)
        self.add_output(name, out, value_loc(raw, "output", loc) if node.output else _name_loc(raw, loc), ctx,
                        aux=node.aux)
        return cur

    def expand_use(self, node: Node, ctx: Ctx, cur: int, overrides: dict) -> int:
        raw, loc = node._raw, _loc(node)
        name = node.use
        template = self.templates.get(name)
        if template is None:
            raise error("template", f"unknown template '{name}'", value_loc(raw, "use", loc),
                        did_you_mean(name, self.templates) or
                        ("defined: " + listing(self.templates) if self.templates else "the spec defines no templates"),
                        via=ctx.via)
        if name in ctx.stack:
            chain = " → ".join(ctx.stack[ctx.stack.index(name):] + (name,))
            raise error("template", f"template recursion: {chain}", value_loc(raw, "use", loc),
                        "a template cannot instantiate itself, directly or through others", via=ctx.via)
        args = self.bind_args(node, template, ctx, overrides)
        block = self.g.graph["blocks"].get(ctx.frame.prefix)
        if block is not None and block.kind == "use" and block.args is None:  # a named instance
            self.g.graph["blocks"][ctx.frame.prefix] = replace(block, args=dict(args))
        inner = ctx.but(env=ChainMap(args, self.globals), via=(loc,) + ctx.via, stack=ctx.stack + (name,))
        return self.expand(template.body, inner, cur)

    def bind_args(self, node: Node, template: Template, ctx: Ctx, overrides: dict) -> dict:
        raw, loc = node._raw, _loc(node)
        given_raw = raw.get("args") or {}
        given = dict(self.eval(given_raw, ctx, value_loc(raw, "args", loc))) if given_raw else {}
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
                bound[key] = self.eval(decl, ctx.but(env=ChainMap(bound, self.globals)),
                                       value_loc(traw, key, loc) if traw else loc)
        errors.raise_if_any()
        return bound

    def add_output(self, name: str, nid: int, loc, ctx: Ctx, aux: bool = False) -> None:
        """Publish an output; one computed inside an auxiliary branch is auxiliary too."""
        try:
            check_output_name(name)  # a side branch's `name` is its output's name too
        except BadName as exc:
            raise error("name", str(exc), loc, "give the side branch an 'output:' name", via=ctx.via) from None
        if name in self.output_names:
            raise error("name", f"duplicate output name '{name}'", loc, via=ctx.via)
        self.output_names.add(name)
        self.g.graph["outputs"].append((name, nid, aux or ctx.aux))

    # --- references ------------------------------------------------------------------------
    def resolve_refs(self, out: int) -> int:
        """Replace each `from:` placeholder by the node it names; return `out` resolved likewise.

        A placeholder can itself be the result of a name (a block whose layers were all skipped
        by `if:` or `repeat: 0` yields its input), so references are followed to a real node.
        """
        target: dict[int, int] = {}
        for ph, ref, prefix, loc, via in self.pending:
            found = self.lookup(ref, prefix)
            if found is None:
                self.errors.add(error("ref", f"'from' refers to '{ref}', which is not defined", loc,
                                      did_you_mean(ref, self.names) or "name a node with 'name:' to refer to it",
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
            return None if self.g.nodes[nid]["op"] == "_ref" else nid

        resolved = {ph: final(ph) for ph in target}
        for ph, ref, prefix, loc, via in self.pending:
            if ph in resolved and resolved[ph] is None:
                self.errors.add(error("ref", f"'from: {ref}' refers to its own input (the block named '{ref}' "
                                             "contains no layers)", loc, via=via))
        if self.errors:
            return out
        for ph in target:
            for consumer in list(self.g.successors(ph)):
                inputs = [resolved.get(i, i) for i in self.g.nodes[consumer]["inputs"]]
                set_inputs(self.g, consumer, inputs)
        outputs = self.g.graph["outputs"]
        outputs[:] = [(name, resolved.get(nid, nid), aux) for name, nid, aux in outputs]
        self.g.remove_nodes_from(target)
        return resolved.get(out, out)

    def lookup(self, ref: str, prefix: str) -> int | None:
        parts = prefix.split(".") if prefix else []
        for n in range(len(parts), -1, -1):
            path = ".".join(parts[:n] + [ref])
            if path in self.names:
                return self.names[path]
        return None


def _type_of(default) -> tuple:
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (int, float)
    if default is None:
        return (object,)
    return (type(default),)


def expand(spec: Spec, file: str, templates: dict[str, Template], env: dict[str, Any],
           limits: Limits) -> nx.DiGraph:
    """Build the IR of a validated spec; raises NetcError with every problem found."""
    ex = Expander(spec, file, templates, env, limits)
    root = Ctx(frame=Frame(""), env=env)
    with work_budget(limits.max_work):
        out = ex.expand_list(spec.layers, root, 0)
        out = ex.resolve_refs(out)
    ex.errors.raise_if_any()
    layers_loc = key_loc(spec._raw, "layers", getattr(spec._raw, "loc", None))
    if ex.g.number_of_nodes() == 1:
        raise error("schema", "the network has no layers: every layer was skipped by 'if' or 'repeat: 0'", layers_loc)
    if out == 0:
        raise error("schema", "the network's main path has no layers: its output would be its input",
                    layers_loc, "side branches do not change the main path; add the layers that compute the output")
    outputs = ex.g.graph["outputs"]
    if not any(nid == out and not aux for _, nid, aux in outputs):
        outputs.insert(0, ("out", out, False))
    ex.g.graph["spec"] = spec
    ex.g.graph["env"] = env
    return ex.g
