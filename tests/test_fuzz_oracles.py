"""The differential oracles of tests/fuzz_oracles.py, each on a few generated specs (the quick
profile, derandomized); `make fuzz` runs each on thousands (tools/fuzz.py)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

import netc
from tests import fuzz_oracles
from tests.test_fuzz import spec_text

QUICK = settings(max_examples=12, deadline=None, derandomize=True,
                 phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def _property(oracle, examples: int = 12):
    @settings(QUICK, max_examples=examples)
    @given(spec_text())
    def check(text):
        with tempfile.TemporaryDirectory() as tmp:
            oracle(text, Path(tmp))
    return check


test_params_and_macs_match_torch_and_the_flop_counter = _property(fuzz_oracles.params_and_macs)
test_every_shape_matches_a_real_forward = _property(fuzz_oracles.shapes)
test_forward_activation_memory_matches_autograd = _property(fuzz_oracles.forward_memory)
test_onnx_export_matches_onnxruntime = _property(fuzz_oracles.onnx_export, 4)  # seconds per export
test_import_of_the_built_module_verifies_as_the_spec = _property(fuzz_oracles.import_built)
test_verify_accepts_the_specs_own_generated_code = _property(fuzz_oracles.verify_generated)


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_forward_memory_on_bundled_specs(name):
    """The memory oracle on bundled networks: batch norms, in-place activations, residual adds,
    pools and a classifier."""
    from netc.analysis.train import predict

    net = netc.load(name)
    measured = fuzz_oracles.measured_forward_bytes(fuzz_oracles.built(net), net.input_shape, 2)
    assert predict(net, 2).saved == measured


# the import oracle's find: a training-only side head whose block reads the head's input and a
# value computed inside the side (a template's `cat: {from: [input, conv]}`) crashed the importer
SIDE_READING_TWO = """netc: 1
name: side2
input: [3, 8, 6]
templates:
  Block:
    body:
    - {name: conv, conv: {out: $in_c * 2, k: 1}}
    - {cat: {}, from: [input, conv]}
layers:
- {side: {use: Block}, output: aux2, aux: true, name: b}
- gap
- flatten
- {name: fc, linear: {out: 3}}
"""


def test_import_refuses_a_side_head_it_cannot_write_with_a_located_error(netc_cli, tmp_path):
    (tmp_path / "side2.yaml").write_text(SIDE_READING_TWO, encoding="utf-8")
    (tmp_path / "src.py").write_text(f"import netc\n\n\ndef make():\n    return netc.load({str(tmp_path / 'side2.yaml')!r}).build()\n",
                                     encoding="utf-8")
    code, out, err = netc_cli("import", f"{tmp_path / 'src.py'}:make", "--input", "3x8x6", "-o", tmp_path / "out.yaml")
    assert code == 2 and not out and not (tmp_path / "out.yaml").exists()
    assert err.startswith("error[import]: cannot import the training-only head 'b._cat': it reads 2 values"), err


@pytest.mark.parametrize("padding", ["valid", "same", 1])
def test_import_reads_a_separable_convs_padding_as_written(padding, tmp_path):
    """The import oracle's find: `p: valid` (a string in torch's Conv2d) crashed the importer."""
    from netc.api import import_spec

    spec = tmp_path / "sep.yaml"
    spec.write_text(f"netc: 1\nname: sep\ninput: [3, 8, 8]\nlayers:\n- {{sepconv: {{out: 4, k: 3, p: {padding}}}}}\n",
                    encoding="utf-8")
    (tmp_path / "src.py").write_text(f"import netc\n\n\ndef make():\n    return netc.load({str(spec)!r}).build()\n",
                                     encoding="utf-8")
    text, report = import_spec(f"{tmp_path / 'src.py'}:make", {}, (3, 8, 8))
    assert report.verified and f"p: {padding}" in text, text


@pytest.mark.parametrize("op", ["conv", "sepconv"])
@pytest.mark.parametrize("k,d", [(2, 1), (4, 1), ([4, 2], 1), (3, 2), (2, 2)])
def test_same_padding_keeps_the_size_as_torch_does(op, k, d):
    """The shape oracle's find: an even kernel with `p: same` (torch pads one more after) was
    inferred one smaller than torch's output, and its MACs with it."""
    import torch

    net = netc.loads(f"netc: 1\nname: same\ninput: [2, 12, 8]\nlayers:\n- {{{op}: {{out: 4, k: {k}, d: {d}, p: same}}}}\n",
                     "same.yaml")
    with torch.no_grad():
        out = net.build()(torch.zeros(1, 2, 12, 8))
    assert tuple(out.shape[1:]) == net.graph.node(net.outputs[0].node).shape
