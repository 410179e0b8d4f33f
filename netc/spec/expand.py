"""Expansion: templates, repeats, variables and defaults become the graph IR.

Consumes a validated spec, its templates and variables; produces the typed IR
(netc.ir.graph) with every node named and placed, or raises NetcError with every problem
found. This module walks the constructs (ops, seq, concat, residual, side, use, repeat); naming
scopes and the context are netc.spec.scope, a repeat's iterations netc.spec.repeat, template
arguments netc.spec.template_args, `from:` references netc.spec.refs.
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, replace
from typing import Any

from netc.errors import Collector, Loc, NetcError, clip, did_you_mean, error, listing
from netc.ir.graph import Block, Graph, Output, add_op, new_graph
from netc.ir.transform import RESIDUAL, mark_block_residual
from netc.ops import REGISTRY
from netc.spec.budget import MAX_WORK, STEP, spend, work_budget
from netc.spec.load import MAX_FILE_BYTES
from netc.spec.model import Node, Spec, Template
from netc.expr import variables
from netc.names import BadName, check_output_name
from netc.spec.input_shape import InputShape, WithNetworkInput, shape_of
from netc.spec.name_pattern import is_pattern, resolve_name
from netc.spec.refs import Pending, lookup, resolve_refs, written_refs
from netc.spec.repeat import at_keys, iterations, repeat_count, repeat_start
from netc.spec.symbolic import SIZED, symbolic_attrs
from netc.spec.scope import Ctx, Frame, evaluate, name_loc, node_loc
from netc.spec.template_args import TYPE_NAMES, bind_args
from netc.spec.yamlload import LocDict, key_loc, value_loc
from netc.spec.validate import attrs_error

__all__ = ["TYPE_NAMES", "Ctx", "Expander", "Frame", "Limits", "expand"]


@dataclass
class Limits:
    """Protect the machine: checked during expansion and before any allocation."""

    max_nodes: int = 100_000
    max_depth: int = 64  # nesting of structures and templates
    max_param_bytes: int = 16 * 2**30  # float32 parameters (4 bytes each)
    max_file_bytes: int = MAX_FILE_BYTES  # each spec file, imports included
    max_work: int = MAX_WORK  # steps of work (netc.spec.budget): iterations, evaluations, values
    lib_path: tuple[str, ...] = ()  # library folders `lib:` imports search before $NETC_PATH (--lib)


class Expander:
    def __init__(self, spec: Spec, file: str, templates: dict[str, Template], env: dict[str, Any],
                 limits: Limits):
        self.spec, self.file, self.templates, self.limits = spec, file, templates, limits
        self.globals = env
        self.g = new_graph(spec.name, file, tuple(spec.input))
        self.errors = Collector()
        self.names: dict[str, int] = {"input": 0}  # scope path -> node id giving its result
        self.disabled: dict[str, Loc | None] = {}  # scope path of a name its false `if:` removed -> the if
        self.pending: list[Pending] = []  # from: refs to resolve
        self.ref_names: dict[int, tuple[str, str]] = {}  # placeholder -> (name, scope prefix)
        self.output_names: set[str] = set()
        self.at: Loc | None = None  # the node being expanded (where a read of `$in_h`/`$in_w` is)
        self.size_read: Loc | None = None  # the first such read
        self.size_reads = 0  # how many so far
        self.capturing = False  # reads now are of an op's attributes, which may follow the input
        self.fixed_read: Loc | None = None  # the first read no generated code can follow (`if:`, a repeat)

    # --- IR construction -------------------------------------------------------------------
    def add(self, op: str, attrs, scope: str, inputs: list[int], loc, ctx: Ctx) -> int:
        if self.g.number_of_nodes() > self.limits.max_nodes:
            raise error("limit", f"the network expands to more than {self.limits.max_nodes:,} nodes", loc,
                        "check repeat counts; the limit is a setting (--max-nodes)")
        nid = add_op(self.g, op, attrs, scope, inputs, loc, ctx.via, ctx.aux, ctx.blocks)
        if ctx.lint_ignore:
            self.g.node(nid).lint_ignore = ctx.lint_ignore
        if ctx.template_input is not None:  # what `$in_c` and `from: input` meant here (for codegen)
            self.g.node(nid).template_input = ctx.template_input
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

    def sized_by_input(self) -> None:
        self.size_reads += 1
        if self.size_read is None:
            self.size_read = self.at
        if not self.capturing and self.fixed_read is None:
            self.fixed_read = self.at

    def attrs_of(self, attrs_raw, ctx: Ctx, attrs_loc) -> tuple[Any, dict | None]:
        """An op's attribute values, and those computed from `$in_h`/`$in_w` as expressions of the
        bound input's runtime size (netc.spec.symbolic; None where they cannot follow it)."""
        reads, self.capturing = self.size_reads, True
        try:
            values = evaluate(attrs_raw, ctx, attrs_loc)
            sized = symbolic_attrs(attrs_raw, ctx.env, attrs_loc) if self.size_reads != reads else None
        finally:
            self.capturing = False
        if self.size_reads != reads and sized is None and self.fixed_read is None:
            self.fixed_read = self.at
        return values, sized

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

    def expand(self, node: Node, ctx: Ctx, cur: int, inherited_name: str | None = None) -> int:
        loc = self.at = node_loc(node)
        spend(STEP, loc)
        if ctx.depth > self.limits.max_depth:
            raise error("limit", f"nesting deeper than {self.limits.max_depth} levels", loc, via=ctx.via)
        raw = node._raw
        if node.lint is not None and node.lint.ignore:
            ctx = ctx.but(lint_ignore=ctx.lint_ignore | frozenset(node.lint.ignore))
        name = node.name if node.name is not None else inherited_name
        if node.if_ is not None:
            cond = evaluate(node.if_, ctx, value_loc(raw, "if", loc))
            if not cond:
                return self.expand_else(node, ctx, cur, name)
        if node.repeat is not None:
            return self.expand_repeat(node, ctx, cur, name)
        return self.expand_one(node, ctx, cur, name)

    def expand_else(self, node: Node, ctx: Ctx, cur: int, name: str | None) -> int:
        """A node whose `if:` is false: its `else:` node, which reads the node's `from:` unless it
        says its own, or nothing - and then its name is remembered as disabled, so that a
        reference to it is an error rather than a silent match in an enclosing scope."""
        raw, loc = node._raw, node_loc(node)
        if node.else_ is None:
            if name is not None and not is_pattern(name):
                self.disabled.setdefault(ctx.frame.path(name), value_loc(raw, "if", loc))
            return cur
        alternative = node.else_
        if node.from_ is not None and alternative.from_ is None:
            alternative = alternative.model_copy(update={"from_": node.from_})
            alternative._raw = _with_from(alternative._raw, raw)
        return self.expand(alternative, ctx, cur, name)

    def expand_repeat(self, node: Node, ctx: Ctx, cur: int, name: str | None) -> int:
        raw, loc = node._raw, node_loc(node)
        n = repeat_count(node, ctx, self.limits.max_nodes)
        at = at_keys(node, ctx, n)
        # a plain name opens a scope whose iterations are numbered (layer1.0, layer1.1, …); a name
        # pattern names each iteration in the enclosing scope (denselayer1, denselayer2, …)
        scoped = name is not None and not is_pattern(name)
        outer, start = ctx, 0
        if scoped:
            scope = ctx.frame.path(name)
            ctx.frame.place(name, name_loc(raw, loc))
            self.g.blocks[scope] = Block(scope, "repeat", node.use, loc, n)
            outer = ctx.but(frame=Frame(scope), blocks=ctx.blocks + (scope,))
            start = repeat_start(node, ctx)
        # `from:` is the repeat's input, read by its first iteration; one that uses the index is each one's
        per_iteration = (node.index or "i") in variables(node.from_)
        for i, overrides, env in iterations(node, ctx, n, at):
            cur = self.expand_one(node, outer.but(env=env), cur, str(start + i) if scoped else name, overrides,
                                  feed=i == 0 or per_iteration)
        if scoped:
            self.publish(outer.frame.prefix, cur)
        return cur

    def expand_one(self, node: Node, ctx: Ctx, cur: int, name: str | None, arg_overrides=None, feed=True) -> int:
        raw, loc, kind = node._raw, node_loc(node), node.kind
        if is_pattern(name):
            name = resolve_name(name, ctx.env, name_loc(raw, loc), ctx.via)
        elif name is None and kind == "use" and getattr(self.templates.get(node.use), "module", False):
            name = str(ctx.frame.counter)  # a module template's unnamed instance takes the next position
        inputs = self.sources(node, ctx, cur) if feed else [cur]
        if kind in REGISTRY:
            out = self.expand_op(node, kind, ctx, inputs, name)
        else:
            if len(inputs) != 1:
                raise error("arity", f"'{kind}' takes one input, 'from' names {len(inputs)}",
                            key_loc(raw, "from", loc), "only add and cat join several tensors", via=ctx.via)
            inner = ctx.but(depth=ctx.depth + 1)
            if name is not None:
                scope = ctx.frame.path(name)
                ctx.frame.place(name, name_loc(raw, loc))
                inner = inner.but(frame=Frame(scope), blocks=ctx.blocks + (scope,))
                template = node.use if kind == "use" else None
                self.g.blocks[scope] = Block(scope, kind, template, loc)
            out = getattr(self, "expand_" + kind)(node, inner, inputs[0], arg_overrides or {})
            if name is not None:
                self.publish(inner.frame.prefix, out)
        if node.output is not None and kind != "side":
            self.add_output(node.output, out, value_loc(raw, "output", loc), ctx)
        return out

    def sources(self, node: Node, ctx: Ctx, cur: int) -> list[int]:
        """The node's inputs: the previous result, or placeholders for the names its `from:` gives."""
        if node.from_ is None:
            return [cur]
        raw, loc = node._raw, node_loc(node)
        refs = written_refs(node.from_, raw, loc, ctx.env, ctx.via)
        if not refs:
            raise error("ref", "'from' names no inputs", value_loc(raw, "from", loc), via=ctx.via)
        out = []
        for ref, rloc in refs:
            if ref == "input" and ctx.template_input is not None:  # inside a template: the instance's input
                out.append(ctx.template_input)
                continue
            ph = self.add("_ref", None, ref, [], rloc, ctx)
            self.pending.append((ph, ref, ctx.frame.prefix, rloc, ctx.via))
            self.ref_names[ph] = (ref, ctx.frame.prefix)
            out.append(ph)
        return out

    def placeholder_target(self, ph: int) -> int | None:
        """The node a `from:` placeholder names so far (for a template's input shape)."""
        return lookup(self.names, *self.ref_names[ph])

    def expand_op(self, node: Node, op: str, ctx: Ctx, inputs: list[int], name: str | None) -> int:
        raw, loc = node._raw, node_loc(node)
        attrs_raw = raw.get(op)
        attrs_loc = value_loc(raw, op, loc)
        values, sized = self.attrs_of(attrs_raw, ctx, attrs_loc) if attrs_raw is not None else ({}, None)
        if not isinstance(values, dict):
            raise error("schema", f"'{op}' takes a mapping of attributes, got {clip(values)}", attrs_loc,
                        f"write '{op}: {{}}' for the defaults", via=ctx.via)
        model = REGISTRY[op].Attrs
        try:
            attrs = model.model_validate(dict(values))
        except Exception as exc:  # pydantic.ValidationError
            raise attrs_error(exc, op, values, attrs_loc, ctx.via) from None
        joins = name is None and REGISTRY[op].max_inputs != 1  # a function in PyTorch: no module, no position
        scope = ctx.frame.path(ctx.frame.generated(op) if joins else ctx.frame.place(name, name_loc(raw, loc)))
        nid = self.add(op, attrs, scope, inputs, loc, ctx)
        if op == "add" and node.from_ is not None and ctx.template_input is not None:
            mark_block_residual(self.g.node(nid), ctx.template_input)
        if sized:  # `{H}`, `{W}`: the height and width of the node's `template_input`, else the network's input
            self.g.node(nid).meta[SIZED] = sized
        if not joins:  # by its name or its position: `from: convs.0` reaches an unnamed child
            self.publish(scope, nid)
        return nid

    def expand_seq(self, node: Node, ctx: Ctx, cur: int, _overrides) -> int:
        if not node.seq:
            raise error("schema", "empty 'seq'", node_loc(node), via=ctx.via)
        return self.expand_list(node.seq, ctx, cur)

    def expand_concat(self, node: Node, ctx: Ctx, cur: int, _overrides) -> int:
        if not node.concat or len(node.concat) < 2:
            raise error("arity", "'concat' needs at least two branches", node_loc(node), via=ctx.via)
        outs = [self.attempt(lambda: self.expand(branch, ctx, cur), cur) for branch in node.concat]
        return self.add("cat", REGISTRY["cat"].Attrs(), ctx.frame.path(ctx.frame.generated("cat")), outs,
                        node_loc(node), ctx)

    def expand_residual(self, node: Node, ctx: Ctx, cur: int, _overrides) -> int:
        res, loc = node.residual, node_loc(node)
        # the parts in the order the mapping lists them: that is the order of the built module's
        # children (timm's Xception registers its shortcut first); the forward still runs the body first
        keys = [k for k in (res._raw if isinstance(res._raw, dict) else ()) if k in ("body", "shortcut")]
        order = ("shortcut", "body") if keys == ["shortcut", "body"] else ("body", "shortcut")
        ends = {}
        for part in order:
            sub = getattr(res, part)
            ends[part] = self.attempt(lambda sub=sub: self.expand(sub, ctx, cur), cur) if sub is not None else cur
        body, shortcut = ends["body"], ends["shortcut"]
        scale = evaluate(res.scale, ctx, value_loc(res._raw, "scale", loc))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise error("schema", f"residual scale must be a number, got {clip(scale)}", value_loc(res._raw, "scale", loc),
                        via=ctx.via)
        if scale != 1:
            attrs = REGISTRY["scale"].Attrs(factor=float(scale))
            body = self.add("scale", attrs, ctx.frame.path(ctx.frame.generated("scale")), [body], loc, ctx)
        out = self.add("add", REGISTRY["add"].Attrs(), ctx.frame.path(ctx.frame.generated("add")),
                       [body, shortcut], loc, ctx)
        self.g.node(out).meta[RESIDUAL] = 0
        if res.then is not None:
            out = self.expand(res.then, ctx, out)
        return out

    def expand_side(self, node: Node, ctx: Ctx, cur: int, _overrides) -> int:
        raw, loc = node._raw, node_loc(node)
        before = len(self.errors.diagnostics)
        out = self.expand(node.side, ctx.but(aux=ctx.aux or node.aux), cur)
        if out == cur and len(self.errors.diagnostics) == before:  # not empty: its layers had errors
            raise error("schema", "a side branch needs at least one layer (all of its layers were skipped)", loc,
                        via=ctx.via)
        name = node.output or node.name
        if name is None:
            raise error("schema", "a side branch needs 'output' (or 'name') to name its result", loc, via=ctx.via)
        self.add_output(name, out, value_loc(raw, "output", loc) if node.output else name_loc(raw, loc), ctx,
                        aux=node.aux)
        return cur

    def expand_use(self, node: Node, ctx: Ctx, cur: int, overrides: dict) -> int:
        raw, loc = node._raw, node_loc(node)
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
        in_loc = value_loc(raw, "from", loc) if "from" in raw else loc
        in_shape = InputShape(lambda: shape_of(self.g, cur, self.placeholder_target, in_loc, ctx.via),
                              on_size=self.sized_by_input)
        args = bind_args(node, template, ctx, overrides, ChainMap(in_shape, self.globals))
        block = self.g.blocks.get(ctx.frame.prefix)
        if block is not None and block.kind == "use" and block.args is None:  # a named instance
            self.g.blocks[ctx.frame.prefix] = replace(block, args=dict(args))
        inner = ctx.but(env=ChainMap(args, in_shape, self.globals), via=(loc,) + ctx.via, stack=ctx.stack + (name,),
                        template_input=cur)
        return self.expand(template.body, inner, cur)

    def add_output(self, name: str, nid: int, loc, ctx: Ctx, aux: bool = False) -> None:
        """Publish an output; one computed inside an auxiliary branch is auxiliary too."""
        try:
            check_output_name(name)  # a side branch's `name` is its output's name too
        except BadName as exc:
            raise error("name", str(exc), loc, "give the side branch an 'output:' name", via=ctx.via) from None
        if name in self.output_names:
            raise error("name", f"duplicate output name '{name}'", loc, via=ctx.via)
        self.output_names.add(name)
        self.g.outputs.append(Output(name, nid, aux or ctx.aux))


def _with_from(raw, parent):
    """An `else:` node's mapping given its parent's `from:`, with the parent's locations for it."""
    out = LocDict(raw, loc=getattr(raw, "loc", None))
    out.key_locs = {**getattr(raw, "key_locs", {}), "from": key_loc(parent, "from")}
    out.value_locs = {**getattr(raw, "value_locs", {}), "from": value_loc(parent, "from")}
    out["from"] = parent["from"]
    return out


def _sized_vars(spec: Spec) -> Loc | None:
    """Where the first of the spec's `vars` reads the input's height or width."""
    vraw = spec._raw.get("vars") or {}
    return next((value_loc(vraw, key, spec._raw.loc) for key, value in spec.vars.items()
                 if variables(value) & {"in_h", "in_w"}), None)


def expand(spec: Spec, file: str, templates: dict[str, Template], env: dict[str, Any],
           limits: Limits) -> Graph:
    """Build the IR of a validated spec; raises NetcError with every problem found."""
    ex = Expander(spec, file, templates, env, limits)
    root = Ctx(frame=Frame(""), env=WithNetworkInput(env, spec, ex.sized_by_input))
    with work_budget(limits.max_work):
        out = ex.expand_list(spec.layers, root, 0)
        out = resolve_refs(ex.g, ex.pending, ex.names, ex.errors, out, ex.disabled)
    ex.errors.raise_if_any()
    layers_loc = key_loc(spec._raw, "layers", getattr(spec._raw, "loc", None))
    if ex.g.number_of_nodes() == 1:
        raise error("schema", "the network has no layers: every layer was skipped by 'if' or 'repeat: 0'", layers_loc)
    if out == 0:
        raise error("schema", "the network's main path has no layers: its output would be its input",
                    layers_loc, "side branches do not change the main path; add the layers that compute the output")
    outputs = ex.g.outputs
    if not any(nid == out and not aux for _, nid, aux in outputs):
        outputs.insert(0, Output("out", out, False))
    ex.g.input_loc = getattr(spec._raw, "value_locs", {}).get("input")
    ex.g.size_from_input = _sized_vars(spec) or ex.size_read
    ex.g.size_fixed = _sized_vars(spec) or ex.fixed_read
    ex.g.spec = spec
    ex.g.env = env
    return ex.g
