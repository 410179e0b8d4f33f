"""The activations of the timm era (Mish, SELU, ELU, CELU, softplus, hardtanh, PReLU, tanh-GELU)
against torch.nn.functional computed here, their errors, and their import from nn modules (with
instance norm's)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.test_ops_v2 import assert_close, assert_refused, built, load, x_of

CASES = [
    ("mish", lambda x: F.mish(x)),
    ("softsign", lambda x: F.softsign(x)),
    ("selu", lambda x: F.selu(x)),
    ("{elu: {alpha: 0.5}}", lambda x: F.elu(x, 0.5)),
    ("{celu: {alpha: 2.0}}", lambda x: F.celu(x, 2.0)),
    ("{softplus: {beta: 2.0, threshold: 1.0}}", lambda x: F.softplus(x, 2.0, 1.0)),
    ("{hardtanh: {min_val: -0.5, max_val: 2.0}}", lambda x: F.hardtanh(x, -0.5, 2.0)),
    ("{gelu: {approximate: tanh}}", lambda x: F.gelu(x, approximate="tanh")),
    ("prelu", lambda x: F.prelu(x, torch.tensor([0.25]))),
    ("{prelu: {per_channel: true, init: 0.1}}", lambda x: F.prelu(x, torch.full((8,), 0.1))),
]


@pytest.mark.parametrize("layer, reference", CASES, ids=[c[0].split(":")[0].strip("{") for c in CASES])
@pytest.mark.parametrize("shape", [(8, 5, 6), (8,)])
def test_activation_is_torch_functional(tmp_path, layer, reference, shape):
    net = load(tmp_path, f"  - {layer}\n", str(list(shape)))
    m = built(net)
    x = 3 * x_of(*shape)
    with torch.no_grad():
        assert_close(m(x), reference(x), 1e-6)
    assert net.params == sum(p.numel() for p in m.parameters())
    assert net.params == (8 if "per_channel" in layer else 1 if "prelu" in layer else 0)


@pytest.mark.parametrize("layer, words", [
    ("{hardtanh: {min_val: 1.0, max_val: 1.0}}", "min_val (1.0) must be below max_val (1.0)"),
    ("{elu: {alpha: 0.0}}", "alpha"),
    ("{softplus: {beta: -1.0}}", "beta"),
    ("{gelu: {approximate: sigmoid}}", "'none' or 'tanh'"),
    ("{prelu: {per_channel: 1}}", "per_channel"),
])
def test_activation_errors(tmp_path, layer, words):
    assert_refused(tmp_path, f"  - {layer}\n", words)


def test_activation_modules_import(tmp_path):
    from tests.test_import import import_sequential

    text, verdict = import_sequential(tmp_path, "nn.Conv2d(3, 8, 1), nn.PReLU(8, init=0.1), nn.ELU(0.5), nn.Mish(), "
                                      "nn.Hardtanh(-2.0, 2.0), nn.GELU('tanh'), nn.Softplus(2.0), nn.SELU(), "
                                      "nn.CELU(), nn.PReLU(), nn.Softsign()", (3, 8, 8))
    for words in ("prelu: {per_channel: true, init: 0.1}", "elu: {alpha: 0.5}", "mish", "hardtanh: {min_val: -2.0, "
                  "max_val: 2.0}", "gelu: {approximate: tanh}", "softplus: {beta: 2.0}", "selu", "celu", "  - prelu\n",
                  "softsign"):
        assert words in text, (words, text)
    assert verdict.same_order and verdict.max_diff <= 1e-6


def test_instance_norm_imports(tmp_path):
    from tests.test_import import import_sequential

    text, verdict = import_sequential(tmp_path, "nn.Conv2d(3, 8, 1), nn.InstanceNorm2d(8, affine=True), nn.ReLU(), "
                                      "nn.InstanceNorm2d(8, track_running_stats=True, eps=1e-3)", (3, 8, 8))
    assert "instancenorm: {affine: true}" in text and "instancenorm: {eps: 0.001, track_running_stats: true}" in text
    assert verdict.same_order and verdict.max_diff <= 1e-5
