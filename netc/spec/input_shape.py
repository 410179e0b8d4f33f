"""`$in_c`, `$in_h`, `$in_w`: the shape of a template instance's input, for its body's expressions
(and at the top level, of the network's input, as the spec's `input:` or `--input` gives it).

Consumes the IR expanded so far and the node that feeds a template instance; produces that
node's shape, inferred when an expression first asks for it (shape inference proper runs after
expansion). Each node's shape is inferred once and kept on the node, so asking is linear in the
nodes expanded, however many templates ask. A `from:` placeholder is followed to the node its
name has at that point; a name defined further down cannot give a shape yet, which is an error.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from netc.errors import Loc, error
from netc.ir.graph import Graph
from netc.ir.passes import arity_error, infer_node
from netc.ops import fmt_shape
from netc.expr import TEMPLATE_INPUT_VARS, Unavailable

SHAPE_ERROR = "input_shape.error"  # `Node.meta` key: the error that left the node without a shape


class InputShape(Mapping):
    """The variables `in_c`, `in_h`, `in_w` of one template instance; the shape is found on first use."""

    def __init__(self, shape_of: Callable[[], tuple], what: str = "the template's input",
                 on_size: Callable[[], None] | None = None):
        self._shape_of, self._what, self._on_size = shape_of, what, on_size
        self._shape: tuple | None = None

    def __getitem__(self, key: str) -> int:
        if key not in TEMPLATE_INPUT_VARS:
            raise KeyError(key)
        if self._shape is None:
            self._shape = self._shape_of()
        axis = TEMPLATE_INPUT_VARS.index(key)
        if axis and self._on_size is not None:  # a height or width: the network is fixed to its input size
            self._on_size()
        if axis >= len(self._shape):
            raise Unavailable(f"'${key}' is undefined: {self._what} is {fmt_shape(self._shape)}, which has "
                              f"no axis {axis}", "'$in_h' and '$in_w' need a C×H×W input")
        return self._shape[axis]

    def __contains__(self, key) -> bool:  # without inferring the shape
        return key in TEMPLATE_INPUT_VARS

    def __iter__(self):
        return iter(TEMPLATE_INPUT_VARS)

    def __len__(self) -> int:
        return len(TEMPLATE_INPUT_VARS)


class WithNetworkInput(dict):
    """Variables and, outside templates, `$in_c`, `$in_h`, `$in_w` of the network's input: found by
    lookup but never listed, so a hint over the variables costs what it costs over a plain dict
    (a ChainMap would merge its maps at every listing)."""

    def __init__(self, env, spec, on_size: Callable[[], None] | None = None):
        super().__init__(env)
        self.input = InputShape(lambda: tuple(spec.input), "the network's input", on_size)

    def __missing__(self, key):
        return self.input[key]

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key) or key in self.input


def shape_of(g: Graph, nid: int, resolve: Callable[[int], int | None], loc: Loc | None, via=()) -> tuple:
    """The shape of node `nid`, inferring what it depends on that has none yet. `resolve(ph)` is the
    node a `from:` placeholder names so far (None when the name is not defined yet)."""
    stack, active = [nid], set()
    while stack:
        n = stack[-1]
        data = g.node(n)
        if data.inferred:
            stack.pop()
            if data.shape is None:
                raise data.meta.get(SHAPE_ERROR) or error(
                    "shape", "the shape of this template's input is unknown (see the errors above)", loc, via=via)
            continue
        if data.op == "_ref":
            target = resolve(n)
            if target is None:
                raise error("ref", f"'$in_c', '$in_h' and '$in_w' need the shape of '{data.scope}', which is "
                                   "defined further down", loc, "take the input from a layer defined before", via)
            deps = [target]
        else:
            deps = data.inputs
        todo = [d for d in deps if not g.node(d).inferred]
        if todo:
            if n in active:
                raise error("cycle", f"the input of this template depends on itself through '{data.scope}'", loc,
                            via=via)
            active.add(n)
            stack.extend(todo)
            continue
        stack.pop()
        if data.op == "_ref":
            data.inferred, data.shape = True, g.node(deps[0]).shape
            continue
        bad = arity_error(data)
        try:
            if bad is not None:
                data.inferred, data.shape = True, None
                raise bad
            infer_node(g, n)
        except Exception as exc:
            data.meta[SHAPE_ERROR] = exc
            raise
    shape = g.node(nid).shape
    if shape is None:
        raise error("shape", "the shape of this template's input is unknown (see the errors above)", loc, via=via)
    return shape
