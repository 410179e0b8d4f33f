"""Each op is whole in its class (netc.ops.base.Op): its ONNX mapping, diagram style, import
facet and reference row live there, and the consumers ask the registry instead of keeping tables
keyed by op name. The README's op table is generated from the registry and must be current."""
from __future__ import annotations

import ast
import re

from netc.ops import REGISTRY
from netc.reference import BEGIN, END, op_table, with_table
from tests.conftest import ROOT

CONSUMERS = ["netc/backends/onnx/hazards.py", "netc/backends/render/dot.py", "netc/interop/mapping.py"]


def op_keyed_tables(source: str) -> list[int]:
    """Lines of dict or set displays with two or more op names as keys or members."""
    found = []
    for node in ast.walk(ast.parse(source)):
        keys = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(node, ast.Set) else []
        if sum(isinstance(k, ast.Constant) and k.value in REGISTRY for k in keys) >= 2:
            found.append(node.lineno)
    return found


def test_the_readme_op_table_is_generated_from_the_registry_and_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert BEGIN in readme and END in readme
    assert with_table(readme) == readme, "the README's op table is stale: run python -m netc.reference README.md"
    assert all(f"| `{name}` |" in op_table() for name in REGISTRY)


def test_no_consumer_keeps_a_table_keyed_by_op_name():
    assert op_keyed_tables('FILL = {"conv": "#cfe2f3", "relu": "#fff2cc"}') == [1]  # the check sees one
    found = {path: lines for path in CONSUMERS
             if (lines := op_keyed_tables((ROOT / path).read_text(encoding="utf-8")))}
    assert not found, f"tables keyed by op name outside netc/ops: {found}"


def test_every_op_declares_its_export_diagram_and_reference_facets():
    for name, op in REGISTRY.items():
        assert op.onnx, f"{name} has no ONNX mapping"
        assert re.fullmatch(r"#[0-9a-f]{6}", op.fill), name
        assert op.reference or op.summary, name
        assert not op.torch_functions or op.torch_modules, f"{name}: functions map through its first module"
