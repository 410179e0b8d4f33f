"""torchvision's segmentation models (issue 28 item 6): FCN and DeepLabV3 on dilated ResNet-50/101,
DeepLabV3 and Lite R-ASPP on a dilated MobileNetV3-Large, each a bundled spec exact to
`torchvision.models.segmentation.<name>(weights=None, weights_backbone=None)` (21 classes, no
auxiliary head): the same parameters, the same state_dict keys in the same order (strict load), and
`model(x)["out"]` within 1e-5 for the same weights at 224x224 and at 160x192.

The specs size their upsampling by the input (`$in_h`, `$in_w`), and a built module follows the
size it is called at (issue 28 item 1): one build is exact at both sizes.
Batch 1, one reference per model: the whole file is about 30 s of CPU time (one thread)."""
import copy

import pytest
import torch

import netc
from tests.conftest import randomise, reference_model

torchvision = pytest.importorskip("torchvision")

SEGMENTATION = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
SIZES = [(224, 224), (160, 192)]


class Reference:
    """torchvision's model with random weights (BN statistics away from their defaults), in eval,
    and its output at each input size, computed once."""

    def __init__(self, name):
        self.name = name
        # torchvision's own init (5 s for a ResNet-101 on one core) is overwritten by randomise: skip it
        self.model = copy.deepcopy(reference_model(name, device="meta")).to_empty(device="cpu")
        randomise(self.model)  # num_batches_tracked too
        self.model.eval()
        self._outputs = {}

    def output(self, x):
        size = tuple(x.shape[-2:])
        if size not in self._outputs:
            with torch.no_grad():
                self._outputs[size] = self.model(x)["out"]
        return self._outputs[size]


@pytest.fixture(scope="module", params=SEGMENTATION)
def reference(request):
    """Module-scoped: pytest runs every test of one model before the next model's, so each
    reference is built, and run at each size, once."""
    return Reference(request.param)


def _ours(reference, size):
    """The bundled spec compiled at `size`, holding the reference's tensors, in eval."""
    ours = netc.load(reference.name, input_shape=(3, *size)).build(device="meta")
    ours.load_state_dict({k: v.clone() for k, v in reference.model.state_dict().items()}, strict=True, assign=True)
    return ours.eval()


def _assert_same_outputs(reference, ours, size):
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    want = reference.output(x)
    with torch.no_grad():
        got = ours(x)
    assert got.shape == want.shape == (1, 21, *size)
    assert torch.isfinite(want).all() and want.abs().max() > 0.1
    assert (got - want).abs().max().item() <= 1e-5, size


def test_every_torchvision_segmentation_model_is_bundled():
    assert set(torchvision.models.list_models(module=torchvision.models.segmentation)) == set(SEGMENTATION)


@pytest.mark.parametrize("name", SEGMENTATION)
def test_same_parameters_and_state_dict_keys_in_order(name):
    net = netc.load(name)
    ref = reference_model(name, device="meta")
    assert net.params == sum(p.numel() for p in ref.parameters()) == net.spec.meta["params"]
    ours = net.build(device="meta")
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)  # raises on any size mismatch


def test_exact_at_224_and_160x192_from_one_build(reference):
    """Issue 28's must-show: one module, built at 224x224, exact at both sizes."""
    ours = _ours(reference, SIZES[0])
    for size in SIZES:
        _assert_same_outputs(reference, ours, size)


def test_check_and_table_show_the_heads(netc_cli):
    code, out, _ = netc_cli("check", "-q", "lraspp_mobilenet_v3_large", "--input", "3x160x192")
    assert code == 0 and "21×160×192" in out and "3,221,538" in out
    code, out, _ = netc_cli("table", "deeplabv3_mobilenet_v3_large")
    assert code == 0 and "classifier.0.convs.4" in out and "upsample to 14 bilinear" in out
    code, out, _ = netc_cli("table", "fcn_resnet50", "--input", "3x160x192")
    assert code == 0 and "classifier.4" in out and "21×20×24" in out
