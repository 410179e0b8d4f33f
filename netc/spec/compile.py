"""The frontend's last step: a validated spec with its variables bound becomes the checked IR.

Consumes the Spec, its file (for imports and messages), the bound variables and the limits;
produces the IR expanded, structure-checked, shape-inferred and checked against the limits,
with its execution order. `netc.load` and the code generator's recompiles both go through here.
"""
from __future__ import annotations

from typing import Any

from netc.ir.graph import Graph
from netc.ir.passes import check_limits, check_structure, infer_shapes, topo_order
from netc.spec.expand import Limits, expand
from netc.spec.load import collect_templates
from netc.spec.model import Spec


def compile_graph(spec: Spec, file: str, env: dict[str, Any], limits: Limits) -> tuple[Graph, list[int]]:
    templates = collect_templates(spec, file, limits.max_file_bytes)
    g = expand(spec, file, templates, env, limits)
    check_structure(g)
    order = topo_order(g)
    infer_shapes(g, order)
    check_limits(g, limits.max_param_bytes)
    return g, order
