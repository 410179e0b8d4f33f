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


def _property(oracle):
    @QUICK
    @given(spec_text())
    def check(text):
        with tempfile.TemporaryDirectory() as tmp:
            oracle(text, Path(tmp))
    return check


test_params_and_macs_match_torch_and_the_flop_counter = _property(fuzz_oracles.params_and_macs)
test_every_shape_matches_a_real_forward = _property(fuzz_oracles.shapes)
test_forward_activation_memory_matches_autograd = _property(fuzz_oracles.forward_memory)
test_onnx_export_matches_onnxruntime = _property(fuzz_oracles.onnx_export)
test_import_of_the_built_module_verifies_as_the_spec = _property(fuzz_oracles.import_built)
test_verify_accepts_the_specs_own_generated_code = _property(fuzz_oracles.verify_generated)


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "mobilenet_v3_small"])
def test_forward_memory_on_bundled_specs(name):
    """The memory oracle on bundled networks (ELU-free; an ELU's saved input, not output, was the
    generated specs' first find)."""
    from netc.analysis.train import predict

    net = netc.load(name, input_shape=(3, 32, 32)) if name != "lenet5" else netc.load(name)
    measured = fuzz_oracles.measured_forward_bytes(fuzz_oracles.built(net), net.input_shape, 2)
    assert predict(net, 2).saved == measured
