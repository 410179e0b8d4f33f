"""Give an exported ONNX graph the spec's scope names.

torch's exporter names nodes and values after aten ops (`node_conv2d_3`, `getitem_6`) but
records each node's module path in its `pkg.torch.onnx.name_scopes` metadata. This pass
names every node after its innermost module (`layer1.0.conv1`, `block1.rep.0.pointwise`;
`scope/OpType` when a module lowers to several nodes) and the value an op hands to the rest
of the network after the op's scope, so Netron and shape inference show the spec's names.
Initialisers already carry the state_dict keys (`layer1.0.conv1.weight`).
"""
from __future__ import annotations

import ast

SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def node_scopes(node) -> list[str]:
    """Module paths enclosing `node`, outermost first ('' and the aten op name dropped)."""
    text = node.metadata_props.get(SCOPES_KEY)
    if not text:
        return []
    try:
        scopes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [s for s in scopes[:-1] if s and not s.startswith("_")]


def _scopes(node, leaf_scopes: set[str], initializers) -> list[str]:
    """A node's module paths; for the op that applies a parameter an op owns on its block (layer
    scale: a Mul by the initializer named after the op's scope), that op's scope."""
    scopes = node_scopes(node)
    if any(s in leaf_scopes for s in scopes):
        return scopes
    owned = [v.name for v in node.inputs if v is not None and v.name in leaf_scopes and v.name in initializers]
    return scopes + owned[:1]


def apply_scope_names(model, leaf_scopes: set[str], input_name: str, output_names: list[str]) -> dict[str, str]:
    """Rename `model` (an onnx_ir Model) in place; returns {scope: value name} of the renamed op outputs."""
    graph = model.graph
    taken = {v.name for v in graph.initializers.values()}
    if graph.inputs:
        graph.inputs[0].name = input_name
        taken.add(input_name)
    for value, name in zip(graph.outputs, output_names):
        value.name = name
        taken.add(name)
    scopes_of = {id(node): _scopes(node, leaf_scopes, graph.initializers) for node in graph}
    op_scope = {key: next((s for s in scopes if s in leaf_scopes), None) for key, scopes in scopes_of.items()}
    _name_nodes(graph, scopes_of)
    graph_outputs = {id(v) for v in graph.outputs}
    for node in graph:  # first unique names no scope can take (':' is not in a scope), then the scopes
        for k, value in enumerate(node.outputs):
            if id(value) not in graph_outputs:
                value.name = f"{node.name}:{k}"
    named = {}
    for scope, value in _scope_results(graph, op_scope, graph_outputs).items():
        if id(value) not in graph_outputs and scope not in taken:
            value.name = scope
            taken.add(scope)
        named[scope] = value.name
    return named


def _name_nodes(graph, scopes_of) -> None:
    """Each node named after its innermost module path: the path alone where one node has it, else
    path/OpType, numbered from the second."""
    counts: dict[str, int] = {}
    for scopes in scopes_of.values():
        if scopes:
            counts[scopes[-1]] = counts.get(scopes[-1], 0) + 1
    used: dict[str, int] = {}
    for node in graph:
        scopes = scopes_of[id(node)]
        if not scopes:
            continue
        base = scopes[-1]
        name = base if counts[base] == 1 else f"{base}/{node.op_type}"
        used[name] = used.get(name, 0) + 1
        node.name = name if used[name] == 1 else f"{name}_{used[name] - 1}"


def _scope_results(graph, op_scope, graph_outputs) -> dict:
    """scope -> the last value it hands to another op (constants are shared, not results)."""
    chosen = {}
    for node in graph:
        scope = op_scope[id(node)]
        if scope is None or node.op_type == "Constant":
            continue
        for value in node.outputs:
            if id(value) in graph_outputs or any(op_scope.get(id(user)) not in (scope, None)
                                                 for user, _ in value.uses()):
                chosen[scope] = value
    return chosen
