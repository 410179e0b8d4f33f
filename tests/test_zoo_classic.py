"""The classic torchvision zoo beyond ResNet/VGG/Inception: ResNeXt and Wide ResNet, ShuffleNet V2,
ConvNeXt and DenseNet, exact to torchvision.

References are torchvision's models with random init (tests/conftest.py `reference_model`);
MACs are compared with torchvision's published `weights.meta["_ops"]` (GMACs, 3 decimals).
Outputs are compared at small inputs with our module built on the meta device and given the
reference's tensors (`load_state_dict(assign=True)`), in eval and in training mode."""
import pytest
import torch

import netc
from tests.conftest import SPECS, randomise, reference_model

torchvision = pytest.importorskip("torchvision")

BUNDLED = ["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
           "shufflenet_v2_x1_0", "convnext_tiny", "densenet121"]

# spec -> (input side for the output comparison: the smallest whose last stage still has more than
# one value per channel, so training-mode batch norm is well defined at batch 2; overrides and
# torchvision keyword arguments that turn stochastic depth off). resnext101_64x4d and
# wide_resnet101_2 get the static checks only (keys, strict load, params, MACs): their template and
# arguments are those of resnext101_32x8d and wide_resnet50_2, and their forwards would double this
# file's time.
OUTPUTS = {
    "resnext50_32x4d": (64, {}, {}),
    "resnext101_32x8d": (64, {}, {}),
    "wide_resnet50_2": (64, {}, {}),
    "shufflenet_v2_x1_0": (64, {}, {}),
    "convnext_tiny": (64, {"stochastic_depth_prob": 0.0}, {"stochastic_depth_prob": 0.0}),
    "densenet121": (64, {}, {}),
}

# every torchvision variant -> (spec, --set overrides) that builds it
VARIANTS = {
    "resnext50_32x4d": ("resnext50_32x4d", {}),
    "resnext101_32x8d": ("resnext101_32x8d", {}),
    "resnext101_64x4d": ("resnext101_64x4d", {}),
    "wide_resnet50_2": ("wide_resnet50_2", {}),
    "wide_resnet101_2": ("wide_resnet101_2", {}),
    "shufflenet_v2_x0_5": ("shufflenet_v2_x1_0", {"channels": [24, 48, 96, 192, 1024]}),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", {}),
    "shufflenet_v2_x1_5": ("shufflenet_v2_x1_0", {"channels": [24, 176, 352, 704, 1024]}),
    "shufflenet_v2_x2_0": ("shufflenet_v2_x1_0", {"channels": [24, 244, 488, 976, 2048]}),
    "convnext_tiny": ("convnext_tiny", {}),
    "convnext_small": ("convnext_tiny", {"depths": [3, 3, 27, 3], "stochastic_depth_prob": 0.4}),
    "convnext_base": ("convnext_tiny", {"dims": [128, 256, 512, 1024], "depths": [3, 3, 27, 3],
                                        "stochastic_depth_prob": 0.5}),
    "convnext_large": ("convnext_tiny", {"dims": [192, 384, 768, 1536], "depths": [3, 3, 27, 3],
                                         "stochastic_depth_prob": 0.5}),
    "densenet121": ("densenet121", {}),
    "densenet161": ("densenet121", {"growth": 48, "blocks": [6, 12, 36, 24], "init_features": 96}),
    "densenet169": ("densenet121", {"blocks": [6, 12, 32, 32]}),
    "densenet201": ("densenet121", {"blocks": [6, 12, 48, 32]}),
}


def published_gmacs(name: str) -> float:
    """torchvision's GMACs at the weights' 224 input (every weight enum of a model gives the same)."""
    return next(iter(torchvision.models.get_model_weights(name))).meta["_ops"]


@pytest.mark.parametrize("name", BUNDLED)
def test_state_dict_params_and_macs(name):
    """Keys in torchvision's order, a strict load, equal params, and MACs as torchvision publishes."""
    net = netc.load(name)
    ref = reference_model(net.spec.meta["torchvision"], device="meta")
    ours = net.build(device="meta")
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)
    assert net.params == sum(p.numel() for p in ref.parameters()) == net.spec.meta["params"]
    assert round(net.macs / 1e9, 3) == published_gmacs(net.spec.meta["torchvision"])


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_same_outputs_in_eval_and_training(name):
    size, overrides, kwargs = OUTPUTS[name]
    net = netc.load(name, overrides, input_shape=(3, size, size))
    torch.manual_seed(0)
    ref = reference_model(net.spec.meta["torchvision"], **kwargs)
    randomise(ref)  # every weight and statistic, layer scales included (1e-6 would hide a block)
    ours = net.build(device="meta")
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)  # shares the reference's tensors
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    for training in (False, True):  # eval first: training mode updates the shared running stats
        ref.train(training), ours.train(training)
        with torch.no_grad():
            torch.manual_seed(1)
            want = ref(x)
            torch.manual_seed(1)
            got = ours(x)
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= 1e-5, f"training={training}"


@pytest.mark.parametrize("name, drop", [("convnext_tiny", {"stochastic_depth_prob": 0.5}),
                                        ("densenet121", {"drop_rate": 0.2})])
def test_same_random_drops_as_torchvision(name, drop):
    """Training mode with stochastic depth / dropout on: from the same seed, the same rows and
    units are dropped as in torchvision (the same random draws in the same order)."""
    net = netc.load(name, drop, input_shape=(3, 64, 64))
    torch.manual_seed(0)
    ref = reference_model(net.spec.meta["torchvision"], **drop).train()
    randomise(ref)
    ours = net.build(device="meta").train()
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(1)
        want = ref(x)
        torch.manual_seed(1)
        got = ours(x)
        torch.manual_seed(2)
        other = ref(x)
    assert (other - want).abs().max().item() > 1e-3  # the drops do change the output
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_torchvision_variant_has_its_params_and_macs(variant):
    spec, overrides = VARIANTS[variant]
    ref = reference_model(variant, device="meta")
    net = netc.load(spec, overrides)
    assert net.params == sum(p.numel() for p in ref.parameters())
    assert round(net.macs / 1e9, 3) == published_gmacs(variant)


def test_resnext_set_gives_the_other_widths():
    """`--set` on resnext50_32x4d alone reaches Wide ResNet-50-2 (groups 1 x 128 per 64 planes)."""
    wide = netc.load("resnext50_32x4d", {"groups": 1, "width_per_group": 128})
    assert wide.params == netc.load("wide_resnet50_2").params == 68_883_240
    assert round(wide.macs / 1e9, 3) == published_gmacs("wide_resnet50_2")


def test_densenet_fits_in_45_lines():
    """Issue 13: DenseNet-121 in at most 45 spec lines, its templates included."""
    lines = sum(len((SPECS / f).read_text(encoding="utf-8").splitlines())
                for f in ("densenet121.yaml", "lib/densenet.yaml"))
    assert lines <= 45
    net = netc.load("densenet121")
    assert "features.denseblock4.denselayer16.conv2" in {d.scope for _, d in net.nodes()}


def test_variants_from_the_command_line(netc_cli):
    """The variants as the specs' descriptions give them: --set on the bundled spec."""
    code, out, _ = netc_cli("check", "-q", "shufflenet_v2_x1_0", "--set", "channels=[24, 48, 96, 192, 1024]")
    assert code == 0 and "1,366,792" in out  # shufflenet_v2_x0_5
    code, out, _ = netc_cli("check", "-q", "densenet121", "--set", "growth=48", "--set", "blocks=[6, 12, 36, 24]",
                            "--set", "init_features=96")
    assert code == 0 and "28,681,000" in out  # densenet161
