"""The four timm CNN families issue 29 still refused (fastvit, focalnet, mambaout, metaformer), built
here from timm's own classes at tiny widths and depths, and the mechanisms they needed, each
checked against torch: timm's DropPath as stochastic depth (training mode), cat along any axis
(NHWC blocks), a parameter of any broadcastable shape added or multiplied by a forward (layer
scale and layer bias on the block), a childless module with weights and no op traced through, and
group norm without a bias."""
from __future__ import annotations

import pytest
import torch

import netc
from netc.api import import_spec
from tests.conftest import ROOT, pair
from tests.test_ops_v2 import assert_refused, load

FIXTURE = ROOT / "tests" / "fixtures" / "interop" / "timm_families.py"
FAMILIES = [("fastvit", (3, 64, 64)), ("focalnet", (3, 40, 48)), ("mambaout", (3, 36, 44)), ("poolformer", (3, 36, 44)),
            ("convformer", (3, 36, 44))]


@pytest.mark.parametrize("factory, size", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_imports_exact(tmp_path, factory, size):
    """Verified against the timm model (outputs in eval and training mode, parameters, MACs) at two
    sizes with the state_dict keys in the source's order; the generated code agrees at a third."""
    text, verdict = import_spec(f"{FIXTURE}:{factory}", {}, size)
    assert verdict.verified and verdict.same_order, verdict.summary()
    assert len(verdict.sizes) == 2, verdict.summary()
    other = (3, size[1] + 8, size[2] + 16)
    net = netc.loads(text, "imported.yaml", input_shape=other)
    ref, gen = pair(net, tmp_path, other)
    x = torch.randn(2, *other, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (gen.eval()(x) - ref.eval()(x)).abs().max().item() <= 1e-5


def test_drop_path_is_stochastic_depth():
    """timm's DropPath keeps its rate (its eval forward, an identity, would have left nothing)."""
    text, _ = import_spec(f"{FIXTURE}:focalnet", {"depths": (2,)}, (3, 32, 32))
    assert "stochastic_depth: {p: 0.3" in text, text  # (timm computes the rate in float32: 0.30000001192092896)


def test_nhwc_cat_and_layer_bias_are_written():
    mambaout, _ = import_spec(f"{FIXTURE}:mambaout", {"depths": (1,)}, (3, 32, 32))
    assert "cat: {dim: -1}" in mambaout and "$in_c" not in mambaout, mambaout  # (its blocks' axis 1 is the height)
    poolformer, _ = import_spec(f"{FIXTURE}:poolformer", {"depths": (1,)}, (3, 32, 32))
    assert "layer_bias: {init: 0.0, shape: [1]}" in poolformer, poolformer
    assert "groupnorm: {groups: 1, eps: 1e-06, bias: false}" in poolformer, poolformer
    convformer, _ = import_spec(f"{FIXTURE}:convformer", {"depths": (1,)}, (3, 32, 32))
    assert "pow: {exponent: 2.0}" in convformer, convformer  # SquaredReLU's torch.square


NHWC = ("  - {name: a, conv: {out: 4, k: 1}}\n  - {name: pa, permute: {dims: [1, 2, 0]}}\n"
        "  - {name: b, conv: {out: 6, k: 1}, from: input}\n  - {name: pb, permute: {dims: [1, 2, 0]}}\n"
        "  - {name: c, cat: {dim: -1}, from: [pa, pb]}\n  - {name: s, layer_scale: {init: 0.5, shape: [10]}}\n"
        "  - {name: d, layer_bias: {shape: [1]}}\n")
CHANNELS = ("  - {name: a, conv: {out: 4, k: 1}}\n  - {name: e, layer_bias: {init: 0.25}}\n"
            "  - {name: g, groupnorm: {groups: 2, bias: false}}\n  - {name: h, cat: {}, from: [g, a]}\n")


def _randomised(m) -> dict:
    state = m.state_dict()
    with torch.no_grad():
        for t in state.values():
            t.copy_(torch.rand(t.shape) + 0.5)
    return state


def _same(tmp_path, net, m, want, x) -> None:
    """`m` (the interpreter) and the generated code of `net` both give `want`."""
    with torch.no_grad():
        assert (m.eval()(x) - want).abs().max().item() <= 1e-5
    ref, gen = pair(net, tmp_path)
    with torch.no_grad():
        assert (gen.eval()(x) - ref.eval()(x)).abs().max().item() <= 1e-5


def test_cat_along_the_last_axis_and_owned_parameters_against_torch(tmp_path):
    """Two H×W×C maps joined on their channels (`torch.cat(.., dim=-1)`), a scale per channel of
    shape [10] and a bias of one element on the block: shapes, parameters, keys and outputs."""
    net = load(tmp_path, NHWC)
    assert {d.scope: d.shape for _, d in net.nodes()}["c"] == (6, 6, 10)
    assert net.params == (8 * 4 + 4) + (8 * 6 + 6) + 10 + 1
    m = net.build()
    state = _randomised(m)
    assert list(state)[:2] == ["s", "d"] and state["s"].shape == (10,) and state["d"].shape == (1,)
    x = torch.randn(2, 8, 6, 6)
    a = torch.nn.functional.conv2d(x, state["a.weight"], state["a.bias"]).permute(0, 2, 3, 1)
    b = torch.nn.functional.conv2d(x, state["b.weight"], state["b.bias"]).permute(0, 2, 3, 1)
    _same(tmp_path, net, m, torch.cat([a, b], dim=-1) * state["s"] + state["d"], x)


def test_layer_bias_per_channel_and_groupnorm_without_bias_against_torch(tmp_path):
    net = load(tmp_path, CHANNELS)
    assert net.params == (8 * 4 + 4) + 4 + 4
    m = net.build()
    state = _randomised(m)
    assert [k for k in state if not k.startswith("a.")] == ["e", "g.weight"] and state["e"].shape == (4, 1, 1)
    x = torch.randn(2, 8, 6, 6)
    a = torch.nn.functional.conv2d(x, state["a.weight"], state["a.bias"])
    g = torch.nn.functional.group_norm(a + state["e"], 2, state["g.weight"], None)
    _same(tmp_path, net, m, torch.cat([g, a], 1), x)


@pytest.mark.parametrize("layer, words", [
    ("{name: c, cat: {dim: 3}, from: [input, input]}", "cat dim 3 does not exist in a 3-d input"),
    ("{name: c, cat: {dim: x}, from: [input, input]}", "dim"),
    ("{name: c, layer_bias: {shape: [3, 1, 1]}}", "layer_bias shape 3×1×1 does not broadcast onto its input"),
    ("{name: c, layer_bias: {shape: [0]}}", "shape"),
    ("{name: c, layer_bias: {flat: true}}", "flat"),
    ("{name: c, groupnorm: {groups: 2, affine: false, bias: false}}", "bias: false goes with affine: true"),
])
def test_bad_uses_are_located(tmp_path, layer, words):
    assert_refused(tmp_path, f"  - {layer}\n", words)


@pytest.mark.parametrize("dim, words", [(0, "cat inputs disagree in height×width"),
                                        (-1, "cat inputs disagree off axis 2: 8×6×6, 8×3×3")])
def test_cat_of_disagreeing_shapes_is_located(tmp_path, dim, words):
    with pytest.raises(netc.NetcError) as e:
        load(tmp_path, f"  - {{name: p, maxpool: {{k: 2}}}}\n  - {{name: c, cat: {{dim: {dim}}}, from: [input, p]}}\n")
    assert words in str(e.value) and "probe.yaml:6:" in str(e.value), str(e.value)


def test_drop_path_without_rescaling_is_refused(tmp_path):
    """DropPath(scale_by_keep=False) leaves survivors unscaled, which netc's stochastic depth does not."""
    source = tmp_path / "unscaled.py"
    source.write_text("import torch.nn as nn\nfrom timm.layers import DropPath\n\n\nclass Net(nn.Sequential):\n"
                      "    def __init__(self):\n        super().__init__(nn.Conv2d(3, 8, 3), DropPath(0.2, scale_by_keep=False))\n",
                      encoding="utf-8")
    with pytest.raises(netc.NetcError) as e:
        import_spec(f"{source}:Net", {}, (3, 16, 16))
    assert "'1' of" in str(e.value) and "DropPath with scale_by_keep=False" in str(e.value), str(e.value)
