"""The mobile and RegNet zoo (issue 13): EfficientNet B0-B7 and V2 S/M/L, MobileNetV3 Large and
Small, RegNet X/Y 400MF-128GF, each against torchvision's model built with random init.

A bundled spec loads torchvision's state_dict strictly, its keys in torchvision's order, and gives
torchvision's outputs in eval and in training mode (dropout and stochastic depth at 0; the batch
norm statistics it updates too) at a small input; its MACs are torchvision's published GFLOPS
(`weights.meta["_ops"]`, rounded as there, at the weights' crop size). Every other size torchvision
has follows from a spec's `meta.variants` (`--set` values and input): params, state_dict keys and
shapes, and MACs, on the meta device.
"""
from functools import partial

import pytest
import torch

import netc
from netc.spec.yamlload import load_yaml
from tests.conftest import SPECS as SPEC_DIR
from tests.conftest import randomise, reference_model
from tests.test_catalogue import ref_macs

torchvision = pytest.importorskip("torchvision")

SPECS = ["efficientnet_b0", "efficientnet_v2_s", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_y_400mf"]
FAMILIES = ("efficientnet_", "mobilenet_v3_", "regnet_")


def _variants():
    """(spec, torchvision name, --set overrides, input shape or None) for every size the specs give
    (read from the YAML: a spec that does not compile fails its tests, not the collection)."""
    out = []
    for spec in SPECS:
        path = SPEC_DIR / f"{spec}.yaml"
        meta = load_yaml(path.read_text(encoding="utf-8"), str(path))["meta"]
        out.append((spec, meta["torchvision"], {}, None))
        for name, v in meta.get("variants", {}).items():
            out.append((spec, name, v["set"], tuple(v["input"]) if "input" in v else None))
    return out


VARIANTS = _variants()

# the reference without dropout and stochastic depth, and the spec's parameters that say the same
NO_DROP = {"efficientnet": ({"dropout": 0.0, "stochastic_depth_prob": 0.0}, {"dropout": 0, "stochastic_depth": 0}),
           "mobilenet": ({"dropout": 0.0}, {"dropout": 0}),
           "regnet": ({}, {})}

# case -> (torchvision model, its extra arguments, the spec's extra --set values): the bundled specs,
# RegNetX (no squeeze-excitation), and B0 with the batch norm of B5-B7 (eps 1e-3, momentum 0.01:
# the running statistics after the training forward check the momentum)
SAME_OUTPUTS = {name: (name, {}, {}) for name in SPECS} | {
    "regnet_x_400mf": ("regnet_x_400mf", {}, {}),
    "efficientnet_b0_bn_b5": ("efficientnet_b0", {"norm_layer": partial(torch.nn.BatchNorm2d, eps=1e-3, momentum=0.01)},
                              {"eps": 0.001, "momentum": 0.01}),
}


def _variant(name):
    return next(v for v in VARIANTS if v[1] == name)


def _published_ops(name, input_shape):
    """torchvision's GFLOPS for the weights evaluated at this input (their crop size)."""
    weights = [w for w in torchvision.models.get_model_weights(name)
               if w.transforms.keywords.get("crop_size") == input_shape[-1]]
    assert weights, f"no {name} weights are evaluated at {input_shape}"
    return weights[0].meta["_ops"]


def test_every_torchvision_size_is_covered():
    theirs = {n for n in torchvision.models.list_models(module=torchvision.models) if n.startswith(FAMILIES)}
    ours = [v[1] for v in VARIANTS]
    assert len(ours) == len(set(ours))
    assert set(ours) == theirs


@pytest.mark.parametrize("spec, name, overrides, input_shape", VARIANTS, ids=[v[1] for v in VARIANTS])
def test_variant_matches_torchvision(spec, name, overrides, input_shape):
    """Params, MACs (exactly FlopCounterMode's, and the published GFLOPS) and state_dict keys and
    shapes, in order, of each size; the spec compiled with the variant's --set values."""
    net = netc.load(spec, overrides, input_shape=input_shape)
    ref = reference_model(name, device="meta")
    assert net.params == sum(p.numel() for p in ref.parameters())
    assert net.macs == ref_macs(ref, net.input_shape)
    assert round(net.macs / 1e9, 3) == _published_ops(name, net.input_shape)
    ours = net.build(device="meta")
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)  # raises on any size mismatch


@pytest.mark.parametrize("case", SAME_OUTPUTS)
def test_same_outputs_as_torchvision(case):
    """Eval, then training mode on the same weights: equal outputs, and in training mode equal
    batch norm running statistics afterwards (eps and momentum as torchvision's)."""
    name, ref_kwargs, extra = SAME_OUTPUTS[case]
    spec, _, overrides, _ = _variant(name)
    ref_no_drop, no_drop = NO_DROP[name.split("_")[0]]
    torch.manual_seed(0)
    ref = reference_model(name, **ref_kwargs, **ref_no_drop)
    randomise(ref)
    net = netc.load(spec, {**overrides, **extra, **no_drop}, input_shape=(3, 64, 64))
    ours = net.build(device="meta")
    ours.load_state_dict({k: v.clone() for k, v in ref.state_dict().items()}, strict=True, assign=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for training in (False, True):
        ref.train(training), ours.train(training)
        with torch.no_grad():
            want, got = ref(x), ours(x)
        assert got.shape == want.shape == (2, 1000)
        assert torch.isfinite(want).all() and want.abs().max() > 0.1
        assert (got - want).abs().max().item() <= 1e-5, f"training={training}"
    theirs = ref.state_dict()
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, theirs[key], atol=1e-6, rtol=1e-5, msg=key)


def test_stochastic_depth_follows_torchvision():
    """Block b of N drops its residual with p = 0.2 * b / N (as torchvision's loop over stages),
    on MBConv and Fused-MBConv blocks; a block without a shortcut has none."""
    for spec in ("efficientnet_b0", "efficientnet_v2_s"):
        ref = reference_model(spec, device="meta")
        want = {n: m.p for n, m in ref.named_modules() if isinstance(m, torchvision.ops.StochasticDepth)
                and ref.get_submodule(n.rsplit(".", 1)[0]).use_res_connect}
        net = netc.load(spec)
        got = {d.scope: d.attrs.p for _, d in net.nodes() if d.op == "stochastic_depth"}
        assert len(got) >= 9 and got == want  # the same float arithmetic: equal, not close


def test_variants_follow_from_the_cli(netc_cli):
    code, out, _ = netc_cli("check", "-q", "efficientnet_b0", "--set", "width=1.1", "--set", "depth=1.2",
                            "--input", "3x288x288")
    assert code == 0 and "9,109,994" in out and "1,087,529,456" in out  # torchvision's efficientnet_b2
    code, out, _ = netc_cli("check", "-q", "regnet_y_400mf", "--set", "depths=[1, 2, 7, 12]",
                            "--set", "widths=[32, 64, 160, 400]", "--set", "group_widths=[16, 16, 16, 16]",
                            "--set", "se=false")
    assert code == 0 and "5,495,976" in out  # torchvision's regnet_x_400mf
