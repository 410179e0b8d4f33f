"""Weight interop: netc's module loads a randomly initialised torchvision model's state_dict
with strict=True and computes the same outputs (eval mode, float32)."""
import pytest
import torch

import netc
from tests.conftest import SPECS, reference_model

torchvision = pytest.importorskip("torchvision")

# spec -> (torchvision constructor, smallest convenient input); adaptive pooling lets the
# ResNets and VGGs run at 64x64, AlexNet needs 63+ and Inception-v3 75+ (aux head off)
CASES = {
    "alexnet_torchvision": ("alexnet", {}, 64, {}),
    "vgg11": ("vgg11", {}, 32, {}),
    "vgg13": ("vgg13", {}, 32, {}),
    "vgg16": ("vgg16", {}, 32, {}),
    "vgg19": ("vgg19", {}, 32, {}),
    "vgg11_bn": ("vgg11_bn", {}, 32, {}),
    "vgg13_bn": ("vgg13_bn", {}, 32, {}),
    "vgg16_bn": ("vgg16_bn", {}, 32, {}),
    "vgg19_bn": ("vgg19_bn", {}, 32, {}),
    "resnet18": ("resnet18", {}, 64, {}),
    "resnet34": ("resnet34", {}, 64, {}),
    "resnet50": ("resnet50", {}, 64, {}),
    "resnet101": ("resnet101", {}, 64, {}),
    "resnet152": ("resnet152", {}, 64, {}),
    "googlenet": ("googlenet", {"aux_logits": True, "init_weights": True}, 64, {}),
    "inception_v3": ("inception_v3", {"aux_logits": False, "init_weights": True}, 75, {"aux_logits": False}),
}


def randomise_bn_stats(model):
    """Random running statistics, so eval-mode batch norm is not the identity."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.mark.parametrize("spec", sorted(CASES))
def test_loads_torchvision_weights_and_matches(spec):
    ctor, kwargs, size, overrides = CASES[spec]
    torch.manual_seed(0)
    ref = reference_model(ctor, **kwargs).eval()
    randomise_bn_stats(ref)
    net = netc.load(SPECS / f"{spec}.yaml", overrides, input_shape=(3, size, size))
    ours = net.build(device="meta").eval()  # nothing allocated: the state_dict's tensors are assigned
    assert net.params == sum(p.numel() for p in ref.parameters())
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-5
