"""Imported specs against the hand-written ones (issue 29, item 3): every bundled family that has a
torchvision or timm source (its spec's `meta:`) imports within 1.5x the lines of its bundled spec, counted with the library
templates that spec uses (`netc.spec.written`), and no template argument is named by a position
(`a_0_out`, `block_out2`). The spec must also build with the source's state_dict keys in the
source's order; the numbers it computes are verified in test_import_readable.py and test_import.py."""
import re

import pytest

import netc
from netc.api import loads
from netc.spec.written import written_lines
from tests.conftest import ROOT

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

# one model per bundled family (the specs of one family share their library templates)
FAMILIES = ["alexnet", "vgg16_bn", "vgg19_bn", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
            "densenet121", "efficientnet_b0", "efficientnet_v2_s", "mobilenet_v3_small", "mobilenet_v3_large",
            "shufflenet_v2_x1_0", "regnet_y_400mf", "convnext_tiny", "googlenet", "inception_v3", "fcn_resnet50",
            "deeplabv3_resnet50", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
            # the families whose bundled spec names a timm source
            "hrnet_w18_small", "inception_resnet_v2", "inception_v4", "res2net50_26w_4s", "xception", "dpn48b"]
NUMBERED_ARG = re.compile(r"a_[0-9]\w*|\w*_[a-z]+[0-9]+")  # a position in the name: `a_0_out`, `block_out2`


def _source(name: str) -> str:
    """The source the bundled spec says it follows (its `meta:`), as `netc import` names it; else
    torchvision's model of its name (the paper's AlexNet has torchvision's layers, one width apart)."""
    meta = netc.load(name).spec.meta
    return f"timm:{meta['timm']}" if "timm" in meta else f"torchvision:{meta.get('torchvision', name)}"


def _import(name: str) -> str:
    from netc.interop import import_model

    # inception_v3's aux head convolves 5x5 after a 5x5/3 pool (17x17 maps); v4's stem needs 75
    size = {"inception_v3": 299, "inception_v4": 75, "inception_resnet_v2": 75}.get(name, 64)
    return import_model(_source(name), {}, (3, size, size)).text


def test_hand_written_lines_count_the_library_templates_used():
    """mobilenet_v3_large's spec is 12 lines that use one whole-network template of lib/mobile.yaml:
    its length is those lines and the templates' (MobileNetV3Large, MobileNetV3Head, and the
    InvertedResidual, ConvBNAct and SqueezeExcitation they use), not the rest of the library."""
    spec = ROOT / "specs" / "mobilenet_v3_large.yaml"
    lib = (ROOT / "specs" / "lib" / "mobile.yaml").read_text().splitlines()
    own = spec.read_text().count("\n")
    starts = {line.strip()[:-1]: k for k, line in enumerate(lib) if re.fullmatch(r"  \w+:", line)}
    order = sorted(starts.values()) + [len(lib)]
    span = {name: order[order.index(k) + 1] - k for name, k in starts.items()}
    used = ("MobileNetV3Large", "MobileNetV3Head", "InvertedResidual", "ConvBNAct", "SqueezeExcitation")
    assert written_lines(spec) == own + sum(span[t] for t in used)
    assert written_lines(spec) < own + len(lib)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_bundled_family_imports_within_one_and_a_half_times_its_spec(name):
    text = _import(name)
    lines = text.count("\n")
    assert lines <= 1.5 * written_lines(ROOT / "specs" / f"{name}.yaml"), lines
    net = loads(text)
    for template in net.spec.templates.values():
        assert not [a for a in template.args if NUMBERED_ARG.fullmatch(a)], template.args
    hub, _, model = _source(name).partition(":")
    if hub == "timm":
        import timm

        reference = timm.create_model(model, pretrained=False)
    else:
        segmentation = torchvision.models.list_models(module=torchvision.models.segmentation)
        reference = torchvision.models.get_model(model, weights=None,
                                                 **({"weights_backbone": None} if model in segmentation else {}))
    assert list(net.build(device="meta").state_dict()) == list(reference.state_dict())
