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
    assert code == 2 and "no classification, segmentation or detection model" in err


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


TINY_SOURCE = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, hungry_above=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.hungry_above = hungry_above

    def forward(self, x):
        if x.shape[-1] % 8:
            raise ValueError(f"the width must be a multiple of 8, got {x.shape[-1]}")
        if self.hungry_above is not None and x.shape[-1] > self.hungry_above:
            x.new_zeros(x.shape[0], 2**16, 2**16, 2**12)  # 64 TiB per image: no machine has it
        return self.conv(x)


class Plain(nn.Module):  # what import traces: no branch
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
"""
TINY_SPEC = "netc: 1\nname: tiny\ninput: [3, 8, 8]\nlayers:\n  - {name: conv, conv: {out: 4, k: 3, p: 1}}\n"


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "tiny.py").write_text(TINY_SOURCE, encoding="utf-8")
    (tmp_path / "tiny.yaml").write_text(TINY_SPEC, encoding="utf-8")
    return tmp_path


def test_tiny_source_verifies(netc_cli, tiny):
    code, out, err = netc_cli("verify", tiny / "tiny.yaml", f"{tiny / 'tiny.py'}:Tiny")
    assert code == 0 and "verified" in out, err


@pytest.mark.parametrize("verb", ["verify", "import"])
def test_a_wrong_input_channel_count_names_the_input_and_both_counts(netc_cli, tiny, verb):
    """Not a state_dict size mismatch (the spec adapts its first conv to 4 channels; the source's
    weights have 3) and not a torch traceback: a usage error, exit 2, nothing written."""
    args = (("verify", tiny / "tiny.yaml", f"{tiny / 'tiny.py'}:Tiny") if verb == "verify" else
            ("import", f"{tiny / 'tiny.py'}:Plain", "-o", tiny / "out.yaml"))
    code, out, err = netc_cli(*args, "--input", "4x8x8")
    assert code == 2 and not out, (out, err)
    assert err.startswith("error[usage]: --input 4x8x8 gives the source 4 channel(s), but its first layer 'conv' "
                          "(Conv2d) takes 3"), err
    assert "hint: use --input 3x8x8" in err and "Traceback" not in err and "state_dict" not in err
    assert not (tiny / "out.yaml").exists()


def test_a_size_the_source_does_not_take_is_a_usage_error(netc_cli, tiny):
    code, out, err = netc_cli("verify", tiny / "tiny.yaml", f"{tiny / 'tiny.py'}:Tiny", "--input", "3x8x12")
    assert code == 2 and not out, (out, err)
    assert err.startswith("error[usage]: the source does not run on --input 3x8x12: ValueError: the width must be a "
                          "multiple of 8, got 12"), err


@pytest.mark.parametrize("hungry_above", [0, 8])
def test_out_of_memory_in_a_verification_forward_is_a_limit_with_the_size_asked(netc_cli, tiny, hungry_above):
    """The source's forward asks the CPU allocator for 64 TiB per image: at the first size (0), or
    only at the second, larger one (8: at 8x8 it runs, at 16x16 not), which must not be taken for
    a size the source refuses and skipped."""
    code, out, err = netc_cli("verify", tiny / "tiny.yaml", f"{tiny / 'tiny.py'}:Tiny", f"hungry_above={hungry_above}")
    assert code == 2 and not out, (out, err)
    assert err.startswith("error[limit]: verification (forwards at 3x8x8 and 3x16x16) ran out of memory: an "
                          f"allocation of {2**46 / 2**30:,.2f} GiB ({2**46:,} bytes) failed"), err  # one image's
