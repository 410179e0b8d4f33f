"""Passes over the IR: structure checks, shape inference with costs, and limits."""
from __future__ import annotations

import networkx as nx

from netc.errors import Collector, NetcError, error
from netc.ir.graph import Graph, output_ids
from netc.ir.node import Node
from netc.ops import REGISTRY, ShapeError, fmt_shape
from netc.ops.base import numel


def topo_order(g: Graph) -> list[int]:
    """Op node ids in a topological order that follows the spec where it can."""
    ids = sorted(g.nodes)
    if all(u < v for u, v in g.edges):
        return ids
    return list(nx.lexicographical_topological_sort(g))


def check_structure(g: Graph) -> None:
    """Arity of every op, no cycles, every result used (reaching an output)."""
    errors = Collector()
    cycle = None
    if not nx.is_directed_acyclic_graph(g):  # linear time; find_cycle is slow on large acyclic graphs
        cycle = nx.find_cycle(g)
    if cycle:
        names = [g.node(u).scope for u, _ in cycle]
        first = g.node(cycle[0][0])
        errors.add(error("cycle", "the graph has a cycle: " + " → ".join(names + [names[0]]), first.loc,
                         "a 'from' reference points forward to a node that depends on this one", first.via))
        errors.raise_if_any()
    outputs = output_ids(g)
    for nid, data in g.node_items():
        if nid == 0:
            continue
        bad = arity_error(data)
        if bad is not None:
            errors.add(bad)
        if not data.aux:
            for src in data.inputs:
                if g.node(src).aux:
                    errors.add(error("aux", f"'{data.scope}' takes the result of '{g.node(src).scope}', which "
                                            "is in an auxiliary branch (computed in training only)", data.loc,
                                     "the main path cannot depend on an aux head; drop 'aux: true' or take "
                                     "another input", data.via))
        if g.out_degree(nid) == 0 and nid not in outputs:
            errors.add(error("unused", f"the result of '{data.scope}' ({data.op}) is never used", data.loc,
                             "a later node takes its input with 'from:' elsewhere; use this result, "
                             "mark it as an output, or remove it", data.via))
    errors.raise_if_any()


def arity_error(data: Node) -> NetcError | None:
    """The error of a node given more or fewer inputs than its op takes, or None."""
    op = REGISTRY[data.op]
    n = len(data.inputs)
    if n < op.min_inputs or (op.max_inputs is not None and n > op.max_inputs):
        want = f"{op.min_inputs}" if op.max_inputs == op.min_inputs else f"at least {op.min_inputs}"
        return error("arity", f"'{data.op}' takes {want} input{'s' if op.min_inputs > 1 else ''}, got {n}",
                     data.loc, "join several tensors with add or cat" if op.max_inputs == 1 else
                     "name its inputs with from: [a, b]", data.via)
    return None


def infer_shapes(g: Graph, order: list[int]) -> None:
    """Shape, parameters, buffers and MACs of every node; independent shape errors reported together."""
    errors = Collector()
    for nid in order:
        if nid == 0:
            continue
        try:
            infer_node(g, nid)
        except NetcError as exc:
            errors.add(exc)
    errors.raise_if_any()


def infer_node(g: Graph, nid: int) -> None:
    """Shape, parameters, buffers and MACs of one node whose inputs have theirs; a located error if
    its op refuses them (its shape is then None, and nodes after it are skipped, not reported)."""
    data = g.node(nid)
    shapes = [g.node(i).shape for i in data.inputs]
    if any(s is None for s in shapes):  # upstream failed: do not cascade
        data.inferred, data.shape = True, None
        return
    op, a = REGISTRY[data.op], data.attrs
    try:
        out = op.infer(a, shapes)
    except ShapeError as exc:
        if len(shapes) == 1:
            given = f"input {fmt_shape(shapes[0])}"
        else:  # name the branches, as the user wrote them
            given = "inputs " + ", ".join(f"'{g.node(i).scope}' {fmt_shape(s)}"
                                          for i, s in zip(data.inputs, shapes))
        data.inferred, data.shape = True, None
        hint = exc.hint
        if data.inputs == [0] and len(shapes[0]) < 3:  # the network input itself lacks axes: say so, not 'flatten'
            hint = (f"the network's input is {fmt_shape(shapes[0])}; an image takes three sizes, C×H×W "
                    "(--input 3x224x224, or the spec's input:)")
        raise error("shape", f"'{data.scope}' ({data.op}): {exc.message} ({given})", data.loc,
                    hint, data.via) from None
    data.inferred, data.shape = True, out
    data.params = op.params(a, shapes)
    data.buffers = op.buffers(a, shapes)
    data.macs = op.macs(a, shapes, out)
    data.owned = op.owned(a, shapes)


MAX_TENSOR_BYTES = 2**63 - 1  # torch computes a storage's size in bytes as a signed 64-bit integer


def check_limits(g: Graph, max_param_bytes: int) -> None:
    for nid, data in g.node_items():
        # a tensor too large to exist at all: a batch of one in float64 must fit torch's storage size
        if data.inferred and numel(data.shape) * 8 > MAX_TENSOR_BYTES:
            what, loc = "the network input", g.input_loc
            if nid != 0:
                what, loc = f"the output of '{data.scope}'", data.loc
            raise error("limit", f"{what} ({fmt_shape(data.shape)}) has {numel(data.shape):,} elements per "
                                 "sample, more than a torch tensor can hold", loc,
                        "check the input size (--input) and the channel counts", data.via)
    params = sum(d.params for _, d in g.node_items())
    if params * 4 > max_param_bytes:
        # point at the op holding the most parameters: the likeliest culprit
        big = max(g.nodes, key=lambda n: g.node(n).params)
        data = g.node(big)
        raise error("limit", f"the network has {params:,} parameters ({params * 4 / 2**30:.1f} GiB in float32); "
                             f"the limit is {max_param_bytes / 2**30:.1f} GiB; '{data.scope}' alone has "
                             f"{data.params:,}", data.loc,
                    "check channel counts; the limit is a setting (--max-param-bytes)", data.via)
