"""The backbone contract: `Network.build(features_only=True, out_indices=...)` and the static
`feature_info`, against timm's `features_only=True` models and torchvision's
`create_feature_extractor` at the same nodes (random init, no downloads)."""
import subprocess
import sys

import pytest
import torch

import netc
from netc.errors import NetcError
from tests.conftest import ROOT
from tests.test_torch_interop import randomise_bn_stats

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")
from torchvision.models.feature_extraction import create_feature_extractor  # noqa: E402

# spec -> (timm name, torchvision constructor and kwargs, input size, spec overrides)
CASES = {
    "resnet50": ("resnet50", ("resnet50", {}), 64, {}),
    "inception_v3": ("inception_v3", ("inception_v3", {"aux_logits": False, "init_weights": True}), 75,
                     {"aux_logits": False}),
}


@pytest.mark.parametrize("spec", sorted(CASES))
def test_feature_info_equals_timm(spec):
    timm_name, _, _, _ = CASES[spec]
    ref = timm.create_model(timm_name, features_only=True, pretrained=False)
    info = netc.load(spec).feature_info
    assert info.channels() == ref.feature_info.channels()
    assert info.reduction() == ref.feature_info.reduction()


@pytest.mark.parametrize("spec", sorted(CASES))
def test_feature_maps_equal_torchvision_extractor(spec):
    _, (ctor, kwargs), size, overrides = CASES[spec]
    torch.manual_seed(0)
    ref = getattr(torchvision.models, ctor)(**kwargs).eval()
    randomise_bn_stats(ref)
    assert_maps_equal_extractor(netc.load(spec, overrides, input_shape=(3, size, size)), ref, size)


def assert_maps_equal_extractor(net, ref, size):
    """`net`'s features_only module, with `ref`'s weights, against create_feature_extractor at
    the nodes netc names; the classifier must be dropped."""
    ours = net.build(device="meta", features_only=True).eval()
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if k in ours.state_dict()},
                         strict=True, assign=True)
    names = ours.feature_info.module_name()
    extractor = create_feature_extractor(ref, return_nodes=names)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        want, got = extractor(x), ours(x)
    assert len(got) == len(names)
    for name, f, g in zip(names, ours.feature_info, got):
        assert g.shape[1:] == f.shape == want[name].shape[1:]
        assert (g - want[name]).abs().max().item() <= 1e-5, name
    assert not any(k.startswith("fc") for k in ours.state_dict())  # the classifier is dropped


def test_out_indices_by_number_and_name():
    net = netc.load("resnet50", input_shape=(3, 64, 64))
    assert net.features([1, -1]).module_name() == ["layer1", "layer4"]
    assert net.features(["layer2", "layer3.5"]).channels() == [512, 1024]
    m = net.build(features_only=True, out_indices=(2, "layer4")).eval()
    with torch.no_grad():
        maps = m(torch.randn(1, 3, 64, 64))
    assert [tuple(t.shape) for t in maps] == [(1, 512, 8, 8), (1, 2048, 2, 2)]


@pytest.mark.parametrize("bad, words", [([7], "out of range"), (["layer9"], "did you mean"),
                                        (["layer1.0.conv2"], "not a feature map"), ([1.5], "neither")])
def test_bad_out_indices_are_clear_errors(bad, words):
    with pytest.raises(NetcError) as exc:
        netc.load("resnet50").features(bad)
    assert words in str(exc.value)


def test_feature_info_needs_no_torch():
    code = ("import sys, netc\n"
            "print(netc.load('inception_v3').feature_info.channels())\n"
            "assert 'torch' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[64, 192, 288, 768, 2048]"


# modern torchvision nets, as `netc import` writes them (the source's module names, so the
# extractor's nodes are netc's names) -> timm's features_only model of the same architecture
MODERN = {
    "efficientnet_b0": "efficientnet_b0",
    "mobilenet_v3_large": "mobilenetv3_large_100",
    "mobilenet_v3_small": "mobilenetv3_small_100",
    "convnext_tiny": "convnext_tiny",
    "densenet121": "densenet121",
    "resnext50_32x4d": "resnext50_32x4d",
    "shufflenet_v2_x0_5": None,  # timm has no ShuffleNet
}


def _imported(name, size):
    from netc.api import import_spec, loads

    text, _ = import_spec(f"torchvision:{name}", {}, (3, size, size), check=False)
    return loads(text)


@pytest.mark.parametrize("name", sorted(MODERN))
def test_modern_feature_info_equals_timm_and_maps_equal_extractor(name):
    net = _imported(name, 64)
    if MODERN[name]:
        ref = timm.create_model(MODERN[name], features_only=True, pretrained=False)
        info = net.feature_info
        want = ref.feature_info.channels()
        if name == "efficientnet_b0":
            # timm's EfficientNet leaves its 1x1 conv head (1280) out of the features, its
            # MobileNetV3 keeps the identical one (960): no structural rule gives both, so the
            # default ends at the head here and timm's stages are picked by name
            assert info.channels() == want[:-1] + [1280]
            info = net.features(["features.1", "features.2", "features.3", "features.5", "features.7"])
        assert info.channels() == want
        assert info.reduction() == ref.feature_info.reduction()
    torch.manual_seed(0)
    ref = getattr(torchvision.models, name)().eval()
    randomise_bn_stats(ref)
    assert_maps_equal_extractor(net, ref, 64)


def test_generated_factory_offers_the_backbone(tmp_path):
    """The generated resnet50's features_only at another width: the channels the spec compiled
    with that width reports, the maps at out_indices, and the default points' names."""
    from tests.conftest import import_source

    net = netc.load(ROOT / "specs" / "resnet50.yaml", {"width": 32})
    mod = import_source(net.codegen(), tmp_path)
    backbone = mod.resnet50(width=32, features_only=True, out_indices=(1, -1)).eval()
    info = net.features([1, -1])
    assert backbone.feature_info.channels() == info.channels() == [128, 1024]
    assert backbone.feature_info.reduction() == info.reduction() == [4, 32]
    assert backbone.feature_info.module_name() == ["layer1", "layer4"]
    maps = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 128, 16, 16), (1, 1024, 2, 2)]
