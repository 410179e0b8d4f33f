"""The graph IR: one networkx DiGraph whose nodes are primitive ops.

Node data:
  op      registered op name ('input' for the network input)
  attrs   the op's validated attribute model (frozen pydantic)
  scope   hierarchical module path, e.g. 'layer1.0.conv1'
  inputs  ordered list of input node ids (edges hold the same set, for graph algorithms)
  loc     source location of the YAML node it came from; via: instantiation chain
  aux     True inside an auxiliary (training-only) side branch
  blocks  enclosing named blocks, outermost first (scopes, keys of graph['blocks'])
  template_input  inside a template: the node feeding its instance (`$in_c`, `from: input`)
Filled by the shape pass: shape, params, buffers, macs, owned (the `OwnedParam` of an op that keeps
a parameter on its enclosing block instead of a module, else None).

Graph data: name, file, input (shape), outputs [(name, node id, aux)], blocks {scope: Block},
spec (the validated Spec), env (resolved params and vars).
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from netc.errors import Loc


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


def new_graph(name: str, file: str, input_shape: tuple[int, ...]) -> nx.DiGraph:
    g = nx.DiGraph(name=name, file=file, input=input_shape, outputs=[], blocks={})
    g.add_node(0, op="input", attrs=None, scope="input", inputs=[], loc=Loc(file), via=(), aux=False,
               blocks=(), shape=input_shape, params=0, buffers=0, macs=0)
    return g


def add_op(g: nx.DiGraph, op: str, attrs, scope: str, inputs: list[int], loc: Loc | None,
           via: tuple = (), aux: bool = False, blocks: tuple = ()) -> int:
    nid = g.number_of_nodes()
    g.add_node(nid, op=op, attrs=attrs, scope=scope, inputs=list(inputs), loc=loc, via=via, aux=aux,
               blocks=blocks)
    for src in inputs:
        g.add_edge(src, nid)
    return nid


def set_inputs(g: nx.DiGraph, nid: int, inputs: list[int]) -> None:
    for src in g.nodes[nid]["inputs"]:
        if g.has_edge(src, nid):
            g.remove_edge(src, nid)
    g.nodes[nid]["inputs"] = list(inputs)
    for src in inputs:
        g.add_edge(src, nid)


def op_nodes(g: nx.DiGraph):
    """(id, data) of every op node in a topological order (the input node excluded)."""
    for nid in nx.topological_sort(g):
        if nid != 0:
            yield nid, g.nodes[nid]


def output_ids(g: nx.DiGraph) -> set[int]:
    return {nid for _, nid, _ in g.graph["outputs"]}
