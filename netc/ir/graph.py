"""The graph IR: a networkx DiGraph whose nodes are primitive ops, each a typed `Node`
(`netc.ir.node`). Edges are the nodes' inputs, kept for graph algorithms; node 0 is the input.

Graph-level fields: name, file, input_shape, input_loc, outputs [Output(name, node id, aux)],
blocks {scope: Block}, spec (the validated Spec) and env (resolved params and vars).
Code outside `netc.ir` reads them as attributes (`g.node(nid).shape`, `g.outputs`), never through
networkx's attribute dicts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple

import networkx as nx

from netc.errors import Loc
from netc.ir.node import Node


@dataclass(frozen=True)
class Block:
    """A named structure that groups ops: a template instance, repeat, residual, concat, seq, side."""

    scope: str
    kind: str
    template: str | None
    loc: Loc | None
    repeat: int | None = None
    # a template instance's bound arguments (kind 'use'); the code generator fits the
    # template's expressions against them
    args: dict | None = None

    @property
    def label(self) -> str:
        base = self.template or self.kind
        return f"{base} ×{self.repeat}" if self.repeat else base


class Output(NamedTuple):
    name: str
    node: int
    aux: bool


_NODE = "node"  # the key of a node's `Node` in networkx's per-node attribute dict


class Graph(nx.DiGraph):
    """The IR. Graph-level fields live in networkx's `graph` dict so that `copy()` and networkx's
    own constructions carry them; these properties are the only readers."""

    def __init__(self, incoming_graph_data=None, **attr):
        super().__init__(incoming_graph_data, **attr)
        self.graph.setdefault("outputs", [])
        self.graph.setdefault("blocks", {})

    @property
    def file(self) -> str:
        return self.graph["file"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.graph["input"]

    @input_shape.setter
    def input_shape(self, value: tuple[int, ...]) -> None:
        self.graph["input"] = value

    @property
    def input_loc(self) -> Loc | None:
        """Where the spec writes its input shape (else where the input node is)."""
        return self.graph.get("input_loc") or self.node(0).loc

    @input_loc.setter
    def input_loc(self, value: Loc | None) -> None:
        self.graph["input_loc"] = value

    @property
    def outputs(self) -> list[Output]:
        return self.graph["outputs"]

    @outputs.setter
    def outputs(self, value: list[Output]) -> None:
        self.graph["outputs"] = value

    @property
    def blocks(self) -> dict[str, Block]:
        return self.graph["blocks"]

    @blocks.setter
    def blocks(self, value: dict[str, Block]) -> None:
        self.graph["blocks"] = value

    @property
    def spec(self) -> Any:
        return self.graph.get("spec")

    @spec.setter
    def spec(self, value: Any) -> None:
        self.graph["spec"] = value

    @property
    def env(self) -> dict[str, Any]:
        return self.graph["env"]

    @env.setter
    def env(self, value: dict[str, Any]) -> None:
        self.graph["env"] = value

    @property
    def size_from_input(self) -> Loc | None:
        """Where the spec first sizes something by the input's height or width (`$in_h`, `$in_w`),
        which fixes the network to the input size it was compiled at; None if it never does."""
        return self.graph.get("size_from_input")

    @size_from_input.setter
    def size_from_input(self, value: Loc | None) -> None:
        self.graph["size_from_input"] = value

    @property
    def size_fixed(self) -> Loc | None:
        """Where the spec first reads `$in_h`/`$in_w` in a way generated code cannot follow at run
        time (an `if:`, a repeat count, a template argument, a `vars:` entry, a function of them):
        generated code then keeps the size it was generated for. None if it never does."""
        return self.graph.get("size_fixed")

    @size_fixed.setter
    def size_fixed(self, value: Loc | None) -> None:
        self.graph["size_fixed"] = value

    def node(self, nid: int) -> Node:
        return self._node[nid][_NODE]

    def node_items(self) -> Iterator[tuple[int, Node]]:
        """(id, node) of every node, the input included, in insertion order."""
        for nid, data in self._node.items():
            yield nid, data[_NODE]

    def node_table(self) -> dict[int, Node]:
        """Every node by id, as a plain dict (faster lookups than `node` in hot loops)."""
        return dict(self.node_items())

    def add(self, nid: int, node: Node) -> None:
        self.add_node(nid, **{_NODE: node})
        for src in node.inputs:
            self.add_edge(src, nid)

    def copy(self, as_view: bool = False) -> Graph:
        """A copy whose nodes are copies: rewiring one does not touch this graph."""
        h = super().copy(as_view)
        if not as_view:
            for data in h._node.values():
                data[_NODE] = data[_NODE].copy()
        return h


def new_graph(name: str, file: str, input_shape: tuple[int, ...]) -> Graph:
    g = Graph(name=name, file=file, input=input_shape)
    g.add(0, Node("input", None, "input", [], Loc(file), inferred=True, shape=input_shape))
    return g


def add_op(g: Graph, op: str, attrs, scope: str, inputs: list[int], loc: Loc | None,
           via: tuple = (), aux: bool = False, blocks: tuple = ()) -> int:
    nid = g.number_of_nodes()
    g.add(nid, Node(op, attrs, scope, list(inputs), loc, via, aux, blocks))
    return nid


def set_inputs(g: Graph, nid: int, inputs: list[int]) -> None:
    node = g.node(nid)
    for src in node.inputs:
        if g.has_edge(src, nid):
            g.remove_edge(src, nid)
    node.inputs = list(inputs)
    for src in inputs:
        g.add_edge(src, nid)


def output_ids(g: Graph) -> set[int]:
    return {nid for _, nid, _ in g.outputs}
