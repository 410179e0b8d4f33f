"""A built module called at another input size: its sizes follow the input, or it refuses the call
with the spec's location before any op runs.

The oracle is the spec compiled at the new size. On the first call at a spatial size other than
the one it was built at, the module compiles its network there (`Network.at_input`: the spec
expanded again when it reads `$in_h`/`$in_w`, else only its shapes inferred again) and compares
the two op by op. Where they differ only in parameter-free modules (an `upsample` whose size is
`[$in_h, $in_w]`, an adaptive pool, a pad computed from a template's input), those modules are
swapped in for the call: the module then computes exactly what the spec compiled at that size
computes, with the same weights. Where a difference touches a parameter or a buffer (a flatten
into a linear whose `in_features` no longer fit, a conv whose channels or kernel the spec computes
from `$in_h`), the graph's structure (a `repeat:` count or an `if:` on the size), or the spec does
not compile at that size (a pool window larger than its input), the call raises `InputSizeError`
at the first such layer's spec location. The comparison is cached per size, so a call at a
known size costs one tuple comparison (and the swap, when the size changes between calls).
"""
from __future__ import annotations

import inspect
from itertools import zip_longest

import torch


class InputSizeError(ValueError):
    """A module called at an input size its spec's structure cannot follow."""


def fmt_size(size) -> str:
    return size if isinstance(size, str) else "×".join(map(str, size))


def located(where, size, built, detail: str) -> str:
    """The one message of a size the module cannot follow (generated code writes it too)."""
    return (f"{where}: {detail}, so the module built for {fmt_size(built)} cannot run at {fmt_size(size)}; "
            "compile it at that size (netc.load(..., input_shape=...), --input CxHxW)")


class FollowSize:
    """The forward pre-hook of a network built at `size` (its input's spatial size): see the module doc.

    Keeps the network to compile it again (pickled with the module) and, per size, the modules to
    swap in or the error to raise (not pickled: found again on first use)."""

    def __init__(self, network, size: tuple[int, ...], make_leaf):
        self.network, self.size, self.make_leaf = network, tuple(size), make_leaf
        self._plans: dict[tuple[int, ...], dict | InputSizeError] = {self.size: {}}
        self._built: dict[str, object] = {}  # the built size's modules at the scopes some size swaps

    def __getstate__(self):
        return {"network": self.network, "size": self.size, "make_leaf": self.make_leaf}

    def __setstate__(self, state):
        self.__init__(state["network"], state["size"], state["make_leaf"])

    def __call__(self, module, args) -> None:
        shape = getattr(args[0], "shape", None) if args else None
        if shape is None or len(shape) != len(self.size) + 2:
            return  # not a batch of images: the first op says what is wrong
        if torch.jit.is_tracing():  # a trace records the ops at the traced size only (its sizes are tensors)
            return
        got = tuple(int(d) for d in shape[2:])
        at = module.__dict__.get("_netc_size", self.size)
        if got == at:
            return
        plan = self.plan(got)
        if isinstance(plan, InputSizeError):
            raise plan
        swaps = {**self.built_leaves(self.plan(at)), **plan}
        for scope, leaf in swaps.items():
            parent, _, name = scope.rpartition(".")
            try:
                owner = module.get_submodule(parent)
            except AttributeError:  # an inference rewrite removed the op (netc.backends.torch.optimize)
                continue
            if name in owner._modules:
                owner._modules[name] = leaf
        module.__dict__["_netc_size"] = got

    def plan(self, size: tuple[int, ...]) -> dict | InputSizeError:
        """The parameter-free modules to swap in at `size` by scope, or the error the call raises."""
        if size not in self._plans:
            try:
                self._plans[size] = self._changes(size)
            except InputSizeError as exc:
                self._plans[size] = exc
        return self._plans[size]

    def built_leaves(self, scopes) -> dict:
        """The modules the built size has at `scopes` (made again: they hold no parameters)."""
        todo = set(scopes) - set(self._built)
        if todo:
            self._built.update(self._leaves(self.network, todo))
        return {s: self._built[s] for s in scopes}

    def _changes(self, size: tuple[int, ...]) -> dict:
        from netc.errors import NetcError

        try:
            other = self.network.at_input((self.network.input_shape[0], *size))
        except NetcError as exc:
            d = exc.diagnostics[0]
            raise InputSizeError(located(d.loc or self.network.file, size, self.size,
                                         f"the spec does not compile at that size ({d.message})")) from None
        return self._leaves(other, _compare(self.network, other, size, self.size, self.make_leaf))

    def _leaves(self, network, scopes) -> dict:
        """The modules of `network`'s ops at `scopes`."""
        shapes = network.graph.node_table()
        return {d.scope: self.make_leaf(d.op, d.attrs, [shapes[i].shape for i in d.inputs])
                for _, d in network.nodes() if d.scope in scopes}


def _compare(a, b, size, built, make_leaf) -> set[str]:
    """The scopes of the parameter-free modules that differ between network `a` and `b` (the same
    spec compiled at another size); InputSizeError at the first op that cannot follow."""
    from netc.ops import REGISTRY

    at_a, at_b = a.graph.node_table(), b.graph.node_table()
    changed = set()
    for (_, x), (_, y) in zip_longest(a.nodes(), b.nodes(), fillvalue=(None, None)):
        if x is None or y is None or (x.scope, x.op, x.aux) != (y.scope, y.op, y.aux) or \
                [at_a[i].scope for i in x.inputs] != [at_b[i].scope for i in y.inputs]:
            node = x if x is not None else y
            raise InputSizeError(located(node.loc, size, built, f"at that size the spec's layers differ from "
                                         f"'{node.scope}' ({node.op}) on (a repeat count or an if: reads the size)"))
        if x.params != y.params or x.buffers != y.buffers or x.owned != y.owned:
            raise InputSizeError(located(x.loc, size, built, f"'{x.scope}' ({x.op}) cannot follow the input size: "
                                         f"{_diff(x, y, at_a, at_b, make_leaf)}"))
        op = REGISTRY[x.op]
        spec_x = op.module(x.attrs, [at_a[i].shape for i in x.inputs]) if x.owned is None else None
        spec_y = op.module(y.attrs, [at_b[i].shape for i in y.inputs]) if y.owned is None else None
        if spec_x != spec_y:
            if x.params or x.buffers:  # the same counts, other shapes (a kernel computed from $in_h)
                raise InputSizeError(located(x.loc, size, built, f"'{x.scope}' ({x.op}) cannot follow the input "
                                             f"size: {_diff(x, y, at_a, at_b, make_leaf)}"))
            changed.add(x.scope)
    return changed


def _diff(x, y, at_a, at_b, make_leaf) -> str:
    """What differs in an op with parameters between the two sizes, as its module would show it."""
    from netc.ops import REGISTRY

    op = REGISTRY[x.op]
    if x.owned is not None or y.owned is not None:
        return f"its parameter's shape would be {y.owned.shape if y.owned else None} instead of " \
               f"{x.owned.shape if x.owned else None}"
    sx = op.module(x.attrs, [at_a[i].shape for i in x.inputs])
    sy = op.module(y.attrs, [at_b[i].shape for i in y.inputs])
    with torch.device("meta"):
        names = list(inspect.signature(type(make_leaf(x.op, x.attrs, [at_a[i].shape for i in x.inputs]))).parameters)
    parts = [f"{names[k] if k < len(names) else k} {u!r} → {v!r}" for k, (u, v) in enumerate(zip(sx.args, sy.args))
             if u != v]
    parts += [f"{k} {sx.kwargs.get(k)!r} → {sy.kwargs.get(k)!r}" for k in sorted(set(sx.kwargs) | set(sy.kwargs))
              if sx.kwargs.get(k) != sy.kwargs.get(k)]
    return f"its {x.params:,} parameters would become {y.params:,} ({', '.join(parts)})" if x.params != y.params \
        else f"its module would change ({', '.join(parts)}) while keeping parameters"


def codegen_guard(network, unfollowed=()) -> tuple[tuple[int, ...], str] | None:
    """The size generated code is fixed to, and its error with `%s` for the size it was called at,
    for a network whose spec reads `$in_h`/`$in_w` where generated code cannot follow it at run
    time (`Graph.size_fixed`, or the ops in `unfollowed`: netc.backends.codegen.sizes); None when
    it follows every size its layers accept."""
    shape, where = network.input_shape, network.graph.size_fixed
    if where is None and unfollowed:
        where = next(d.loc for nid, d in network.nodes() if nid in unfollowed)
    if where is None or len(shape) != 3:
        return None
    detail = ("the spec sizes layers by the input's height and width ($in_h, $in_w) here in a way generated code "
              "computes at the size it was generated for")
    return tuple(shape[1:]), located(where, "\\0", shape[1:], detail).replace("%", "%%").replace("\\0", "%s")


def follow_size(network, make_leaf) -> FollowSize | None:
    """The size follower of `network` (a `netc.api.Network`), None for an input that is not C×H×W;
    `make_leaf(op, attrs, in_shapes)` constructs an op's module (netc.backends.torch.module's)."""
    shape = network.input_shape
    return FollowSize(network, tuple(shape[1:]), make_leaf) if len(shape) == 3 else None
