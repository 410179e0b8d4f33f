"""`optimize_for_inference`: the folded, simplified model computes what the unfused one does in
eval mode (max abs diff <= 1e-4 in float32), and the passes really happened."""
from __future__ import annotations

import pickle

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import netc  # noqa: E402
from netc.backends.torch.optimize import optimize_for_inference  # noqa: E402
from netc.errors import NetcError  # noqa: E402

# the smallest inputs each architecture accepts, to keep CPU time low (inception_v3's aux head
# needs 299x299; the eval forward never runs it, so it is left out)
CASES = {
    "resnet50": ((3, 64, 64), {}),
    "inception_v3": ((3, 75, 75), {"aux_logits": False}),
    "googlenet": ((3, 64, 64), {}),
    "vgg16_bn": ((3, 32, 32), {}),
}


def randomise_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so that folding has something to fold.

    γ < 1 keeps activations at the scale of a trained network (logits of order 1-10; with
    torchvision's init and γ = 1 resnet50's residual stream grows to ~250, where float32
    rounding alone exceeds 1e-4)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.25)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def count(module: nn.Module, kind) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("name", list(CASES))
def test_optimized_matches_unfused(name):
    torch.manual_seed(0)
    shape, overrides = CASES[name]
    network = netc.load(name, overrides, input_shape=shape)
    model = network.build().eval()
    randomise_batchnorm(model)
    n_bn = count(model, nn.BatchNorm2d)
    fast = optimize_for_inference(model)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        want, got = model(x), fast(x)
    assert got.shape == want.shape
    diff = (got - want).abs().max().item()
    assert diff <= 1e-4, f"{name}: max abs diff {diff:.3g} (output scale {want.abs().max().item():.3g})"
    assert n_bn > 0 and count(fast, nn.BatchNorm2d) == 0, "every conv-fed batch norm should be folded"
    assert count(fast, nn.Dropout) == 0
    assert count(model, nn.BatchNorm2d) == n_bn, "the input module must be left untouched"
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_batchnorm_not_after_a_conv_is_kept_and_shared_conv_not_folded():
    spec = """
netc: 1
name: tricky
input: [3, 8, 8]
layers:
  - {name: c1, conv: {out: 4, k: 3, p: 1}}
  - {name: b, concat: [[{name: bn_a, bn: {}}], [{name: c2, conv: {out: 4, k: 1}}]]}
  - {name: bn_cat, bn: {}}
  - relu
  - {name: drop, dropout: {p: 0.5}}
  - gap
  - flatten
  - {name: fc, linear: {out: 3}}
"""
    model = netc.loads(spec).build().eval()
    randomise_batchnorm(model, seed=1)
    fast = optimize_for_inference(model)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max().item() <= 1e-5
    # c1 feeds both bn_a and c2: bn_a cannot be folded; bn_cat follows a concat: kept
    assert count(fast, nn.BatchNorm2d) == 2
    assert count(fast, nn.Dropout) == 0
    # the relu after bn_cat runs in place; the input tensor is not modified
    x0 = x.clone()
    with torch.no_grad():
        fast(x)
    assert torch.equal(x, x0)
    # it pickles (fx re-traces the forward on loading)
    again = pickle.loads(pickle.dumps(fast))
    with torch.no_grad():
        assert torch.equal(again(x), fast(x))


def test_aux_heads_are_dropped_and_build_api():
    network = netc.load("googlenet", input_shape=(3, 64, 64))
    fast = network.build(optimize="inference")
    assert not fast.training
    assert not any("aux" in name for name, _ in fast.named_modules())
    with torch.no_grad():
        out = fast(torch.randn(1, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 1000)


def test_unknown_level_is_a_netc_error():
    with pytest.raises(NetcError) as exc:
        netc.load("lenet5").build(optimize="infrence")
    assert "inference" in exc.value.diagnostics[0].format()
