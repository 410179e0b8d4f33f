"""softsign, the op added as one file (netc/ops/softsign.py) to show that an op is whole in its
class: its shape, cost, autograd, module, ONNX mapping, diagram style, import mapping and README row
all come from that file; the every-op tables of the other tests (train cost, every-op build, fuzz,
activations, functional import) hold a case for it."""
from __future__ import annotations

import netc
from netc.ops import REGISTRY
from netc.reference import op_table

SPEC = "netc: 1\nname: soft\ninput: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, k: 3, p: 1}}\n  - softsign\n"


def test_it_is_registered_from_its_own_file_with_every_facet():
    op = REGISTRY["softsign"]
    assert type(op).__module__ == "netc.ops.softsign"
    assert (op.onnx, op.torch_modules, op.torch_functions) == ("Softsign", ("torch.nn.Softsign",),
                                                               ("torch.nn.functional.softsign",))
    assert "| `softsign` | — | `nn.Softsign`" in op_table()


def test_it_exports_to_onnx_without_hazards(tmp_path):
    net = netc.loads(SPEC, "soft.yaml")
    assert net.export_hazards() == []
    verdict = net.export_onnx(tmp_path / "soft.onnx")
    assert verdict.shapes_checked and max(verdict.max_diff.values()) <= 1e-5


def test_it_is_drawn_as_an_activation():
    assert 'fillcolor="#fff2cc"' in netc.loads(SPEC, "soft.yaml").render("dot")


def test_the_module_imports_as_softsign(tmp_path):
    from tests.test_import import import_sequential

    text, verdict = import_sequential(tmp_path, "nn.Conv2d(3, 8, 1), nn.Softsign()", (3, 8, 8))
    assert "  - softsign\n" in text and verdict.max_diff <= 1e-6
