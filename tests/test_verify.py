"""`netc verify` (netc.interop.verify): a spec against a reference model, with every parameter and
buffer of the reference randomised so that no branch can hide, and the verifier itself
mutation-tested (tools/mutants.py: the long run's score is in benchmarks/RESULTS.md)."""
from __future__ import annotations

import pytest
import torch

import netc
from netc.interop import import_model
from netc.interop.source import load_source
from netc.interop.verify import verify
from tools import mutants


@pytest.fixture(scope="module")
def test_resnet():
    """timm's test_resnet as imported (zero_init_last: every block's last BN weight is 0)."""
    imported = import_model("timm:test_resnet", {}, None, None)
    return imported.text, imported.input_shape


def _compile(text, mutation=None):
    def at(shape):
        net = netc.loads(text, "<test_resnet>", input_shape=shape)
        return mutants.mutate(net, *mutation) if mutation else net
    return at


def test_a_branch_activation_dropped_behind_a_zero_init_bn_is_rejected(test_resnet):
    text, shape = test_resnet
    mutation = ("act->identity", "layer3.0.act1")
    # the blind spot: at timm's own initialisation the mutant computes the source's outputs
    source = load_source("timm:test_resnet").module.eval()
    assert all(float(m.weight.detach().abs().max()) == 0 for name, m in source.named_modules() if name.endswith(".bn3"))
    mutant = _compile(text, mutation)(shape).build(device="meta")
    mutant.load_state_dict(source.state_dict(), strict=True, assign=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert torch.allclose(mutant.eval()(x), source(x), atol=1e-6)
    # randomised, it is rejected, and the first module that differs is the mutated one
    report = verify(_compile(text, mutation), load_source("timm:test_resnet").module, shape)
    assert not report.verified and "the first module whose output differs is 'layer3.0.act1'" in report.summary()
    assert verify(_compile(text), load_source("timm:test_resnet").module, shape).verified


def test_cli_exit_status_0_verified_1_differs_2_bad_input(netc_cli, tmp_path):
    model = load_source("torchvision:resnet18").module
    good = tmp_path / "r18.pt"
    torch.save(model.state_dict(), good)
    code, out, err = netc_cli("verify", "resnet18", str(good))
    assert code == 0 and "verified" in out, err
    state = model.state_dict()
    state.pop("fc.bias")
    torch.save(state, tmp_path / "short.pt")
    code, out, _ = netc_cli("verify", "resnet18", str(tmp_path / "short.pt"))
    assert code == 1 and "fc.bias" in out
    torch.save({"fc.weight": "not a tensor"}, tmp_path / "bad.pt")
    code, out, err = netc_cli("verify", "resnet18", str(tmp_path / "bad.pt"))
    assert code == 2 and "not a state_dict" in err and not out
    code, out, err = netc_cli("verify", "resnet18", "torchvision:no_such_net")
    assert code == 2 and "no classification model" in err


def test_cli_compares_outputs_at_two_sizes(netc_cli):
    code, out, err = netc_cli("verify", "resnet18", "torchvision:resnet18", "--input", "3x64x64")
    assert code == 0, err
    assert "at 3x64x64, 3x80x80" in out and "training mode" in out


# the quick profile of the mutation test: one mutant per network, the operators in turn; the long
# run (every operator at several sites of 12 networks) is `python tools/mutants.py`
QUICK = [("resnet18", "add->mul"), ("mobilenet_v3_small", "act->identity"), ("googlenet", "cat.swap"),
         ("vgg11_bn", "maxpool->avg"), ("regnet_y_400mf", "bn.eps"), ("shufflenet_v2_x1_0", "cat.swap"),
         ("efficientnet_b0", "act->identity"), ("alexnet_torchvision", "act->identity"), ("resnet50", "conv.dilate"),
         ("densenet121", "bn.eps")]


@pytest.mark.heavy
@pytest.mark.parametrize("spec,operator", QUICK)
def test_every_mutant_is_rejected(spec, operator):
    network = netc.load(spec, input_shape=mutants.SIZE)
    site = next(s for o, s in mutants.sites(network) if o == operator)
    report = verify(lambda shape: mutants.mutate(netc.load(spec, input_shape=shape), operator, site),
                    load_source(f"torchvision:{network.spec.meta['torchvision']}").module, mutants.SIZE)
    assert not report.verified, (operator, site)
