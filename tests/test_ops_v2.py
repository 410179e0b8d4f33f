"""The language-v2 ops (issue 13) against the torch / torchvision modules they stand for: each small
spec is built by the interpreter and compared with the reference module computed here, on the
same weights; parameters and MACs against the reference's own counts."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import netc
from netc.backends.torch.module import build_module, confirm_shapes


def load(tmp_path, layers: str, input_shape="[8, 6, 6]", extra: str = "", name: str = "probe"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"netc: 1\nname: {name}\ninput: {input_shape}\n{extra}layers:\n{layers}", encoding="utf-8")
    return netc.load(path)


def built(net, init=True):
    m = build_module(net, init=init)
    assert confirm_shapes(m, net) == len(list(net.nodes()))
    return m


def x_of(*shape, seed=0):
    return torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed))


def assert_close(a, b, tol=1e-6):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= tol


def assert_refused(tmp_path, layers: str, words: str) -> None:
    """`layers` (first at line 5 of the probe spec) are refused with `words`, located there."""
    with pytest.raises(netc.NetcError) as e:
        load(tmp_path, layers)
    assert words in str(e.value) and "probe.yaml:5:" in str(e.value)


def macs_of(module, x) -> int:
    """conv and linear MACs of a reference module, as torch's flop counter counts them (FLOPs / 2)."""
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


def test_permute_is_torchvision_permute(tmp_path):
    from torchvision.ops.misc import Permute

    net = load(tmp_path, "  - {permute: {dims: [1, 2, 0]}}\n  - {permute: {dims: [1, 0, 2]}}\n", "[8, 6, 5]")
    x = x_of(8, 6, 5)
    out = built(net)(x)
    assert_close(out, Permute([0, 3, 2, 1])(x))
    assert net.graph.node(net.outputs[0][1]).shape == (5, 6, 8)


def test_layernorm_over_channels_is_torchvision_layernorm2d(tmp_path):
    from torchvision.models.convnext import LayerNorm2d

    net = load(tmp_path, "  - {name: norm, layernorm: {eps: 1.0e-6}}\n")
    m = built(net)
    ref = LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        ref.weight.normal_(), ref.bias.normal_()
    m.load_state_dict({f"norm.{k}": v for k, v in ref.state_dict().items()}, strict=True)
    assert isinstance(m.norm, nn.LayerNorm) and net.params == sum(p.numel() for p in ref.parameters())
    x = x_of(8, 6, 6)
    assert_close(m(x), ref(x), 1e-5)


@pytest.mark.parametrize("shape", ["[6, 5, 8]", "[8]"])
def test_layernorm_over_last_axis_is_nn_layernorm(tmp_path, shape):
    net = load(tmp_path, "  - {name: norm, layernorm: {over: last, affine: false}}\n", shape)
    x = x_of(*eval(shape))
    assert net.params == 0
    assert_close(built(net)(x), nn.LayerNorm(8, elementwise_affine=False)(x), 1e-5)


def test_groupnorm_is_nn_groupnorm(tmp_path):
    net = load(tmp_path, "  - {name: gn, groupnorm: {groups: 4, eps: 1.0e-3}}\n")
    m = built(net)
    ref = nn.GroupNorm(4, 8, eps=1e-3)
    with torch.no_grad():
        ref.weight.normal_(), ref.bias.normal_()
    m.load_state_dict({f"gn.{k}": v for k, v in ref.state_dict().items()}, strict=True)
    x = x_of(8, 6, 6)
    assert net.params == 16
    assert_close(m(x), ref(x), 1e-5)


@pytest.mark.parametrize("attrs, params, buffers", [("{}", 0, 0), ("{affine: true}", 16, 0),
                                                    ("{affine: true, track_running_stats: true, momentum: 0.5}", 16, 17)])
def test_instancenorm_is_functional_instance_norm(tmp_path, attrs, params, buffers):
    """Each image's channels over their own positions, in training and (with running statistics)
    in eval; weights and statistics counted as nn.InstanceNorm2d holds them."""
    net = load(tmp_path, f"  - {{name: inorm, instancenorm: {attrs}}}\n")
    m = built(net)
    with torch.no_grad():
        for t in m.inorm.parameters():
            t.normal_()
    assert (net.params, sum(b.numel() for b in m.buffers())) == (params, buffers)
    x = x_of(8, 6, 6)
    w, b = (m.inorm.weight, m.inorm.bias) if params else (None, None)
    mean, var = (torch.zeros(8), torch.ones(8)) if buffers else (None, None)
    with torch.no_grad():
        want = nn.functional.instance_norm(x, mean, var, w, b, use_input_stats=True, momentum=0.5)
        assert_close(m.train()(x), want, 1e-5)
        if buffers:  # eval normalises by the running statistics both updated alike
            assert_close(m.eval()(x), nn.functional.instance_norm(x, mean, var, w, b, use_input_stats=False), 1e-5)


def test_instancenorm_refuses_a_single_position(tmp_path):
    with pytest.raises(netc.NetcError) as e:
        load(tmp_path, "  - gap\n  - instancenorm\n")
    assert "probe.yaml:6:5: error[shape]" in str(e.value) and "instancenorm of a 1×1 map" in str(e.value)


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_draws_as_torchvision(tmp_path, mode):
    from torchvision.ops import StochasticDepth

    net = load(tmp_path, f"  - {{stochastic_depth: {{p: 0.5, mode: {mode}}}}}\n")
    m, ref = built(net), StochasticDepth(0.5, mode)
    x = torch.randn(64, 8, 6, 6, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    a = m.train()(x)
    torch.manual_seed(7)
    b = ref.train()(x)
    assert torch.equal(a, b)
    assert 0 < (a.flatten(1).abs().sum(1) == 0).sum() < 64 if mode == "row" else True  # some rows dropped
    assert torch.equal(m.eval()(x), x)  # identity in eval


def test_stochastic_depth_zero_is_identity_in_training(tmp_path):
    net = load(tmp_path, "  - {stochastic_depth: {p: 0.0}}\n")
    x = x_of(8, 6, 6)
    assert torch.equal(built(net).train()(x), x)


def test_channel_shuffle_is_nn_channel_shuffle_and_shufflenet_s(tmp_path):
    from torchvision.models.shufflenetv2 import channel_shuffle

    net = load(tmp_path, "  - {channel_shuffle: {groups: 2}}\n")
    x = x_of(8, 6, 6)
    out = built(net)(x)
    assert_close(out, nn.ChannelShuffle(2)(x), 0)
    assert_close(out, channel_shuffle(x, 2), 0)


def test_chunk_parts_are_addressable(tmp_path):
    """ShuffleNet V2's split: both halves of x.chunk(2, 1), each its own node, joined in reverse."""
    net = load(tmp_path, "  - {name: a, chunk: {parts: 2, index: 0}}\n"
                         "  - {name: b, from: input, chunk: {parts: 2, index: 1}}\n"
                         "  - {name: c, from: [b, a], cat: {}}\n"
                         "  - {name: w, chunk: {parts: 3, index: 2, dim: 2}}\n")
    x = x_of(8, 6, 6)
    a, b = x.chunk(2, 1)
    assert_close(built(net)(x), torch.cat([b, a], 1).chunk(3, 3)[2], 0)
    assert net.graph.node(net.outputs[0][1]).shape == (8, 6, 2)


SLICES = ("  - {name: a, slice: {end: 3}}\n"
          "  - {name: b, from: input, slice: {start: 3}}\n"
          "  - {name: c, from: input, slice: {start: -2, end: -1, dim: 2}}\n"
          "  - {name: d, from: [b, a], cat: {}}\n"
          "  - {name: w, slice: {start: 1, end: 5, dim: -1}}\n"
          "  - {name: e, from: [w, c], mul: {}}\n")


def test_slice_takes_unequal_parts(tmp_path):
    """CSPNet's / DPN's split into unequal channel parts, negative indices from the end, any axis:
    the interpreter against torch's own indexing of the same tensor."""
    net = load(tmp_path, SLICES)
    x = x_of(8, 6, 6)
    expected = torch.cat([x[:, 3:], x[:, :3]], 1)[:, :, :, 1:5] * x[:, :, :, -2:-1]
    assert_close(built(net)(x), expected, 0)
    assert net.graph.node(net.outputs[0][1]).shape == (8, 6, 4)


def test_slice_in_generated_code_and_onnx(tmp_path):
    """The generated forward indexes as the interpreter does; the ONNX export runs in onnxruntime
    with the same numbers."""
    from tests.conftest import pair

    net = load(tmp_path, SLICES + "  - {conv: {out: 4, k: 3, p: 1}}\n")
    ref, gen = pair(net, tmp_path)
    x = x_of(8, 6, 6)
    assert_close(gen.eval()(x), ref.eval()(x), 0)
    assert "[:, 3:]" in net.codegen() and "[:, :, :, 1:5]" in net.codegen()
    verdict = net.export_onnx(tmp_path / "slices.onnx", module=ref)
    assert max(verdict.max_diff.values()) <= 1e-5


@pytest.mark.parametrize("attrs, words", [
    ("{start: 2, end: 9}", "slice end 9 is outside axis 0 of 8 entries"),
    ("{start: -9}", "slice start -9 is outside axis 0 of 8 entries"),
    ("{start: 5, end: 5}", "slice 5:5 of axis 0 (8 entries) is empty"),
    ("{start: 2, dim: 3}", "slice dim 3 does not exist in a 3-d input"),
    ("{stop: 2}", "stop"),
])
def test_slice_errors(tmp_path, attrs, words):
    assert_refused(tmp_path, f"  - {{name: part, slice: {attrs}}}\n", words)


UPSAMPLES = ("  - {name: down, conv: {out: 8, k: 3, s: 2, p: 1}}\n"
             "  - {name: near, upsample: {scale: [2, 3]}}\n"
             "  - {name: lin, from: down, upsample: {scale: [2, 3], mode: bilinear}}\n"
             "  - {name: sq, from: down, upsample: {scale: 2}, output: sq}\n"
             "  - {name: corners, from: down, upsample: {size: [7, 9], mode: bilinear, align_corners: true}}\n"
             "  - {name: back, from: corners, upsample: {size: [7, 18]}, output: back}\n"
             "  - {name: mix, from: [near, lin], add: {}}\n"
             "  - {name: conv, conv: {out: 4, k: 3, p: 1}}\n")


def test_upsample_against_torch(tmp_path):
    """nn.Upsample / F.interpolate semantics (nearest, bilinear, align_corners, to a size) on the
    same weights; the table's jump and a feature map's stride divide by an integer factor."""
    from netc.analysis.cost import analyse

    net = load(tmp_path, UPSAMPLES, "[3, 6, 6]")
    m = built(net)
    x = x_of(3, 6, 6)
    with torch.no_grad():
        d = m.down(x)
        near = nn.Upsample(scale_factor=(2, 3))(d)
        lin = nn.functional.interpolate(d, scale_factor=(2, 3), mode="bilinear", align_corners=False)
        corners = nn.functional.interpolate(d, size=(7, 9), mode="bilinear", align_corners=True)
        out = m(x)
    assert_close(out.out, m.conv(near + lin), 1e-6)
    assert_close(out.sq, nn.functional.interpolate(d, scale_factor=2), 0)
    assert_close(out.back, nn.functional.interpolate(corners, size=(7, 18)), 1e-6)
    jump = {r.scope: r.jump for r in analyse(net).rows}
    assert jump["down"] == (2, 2) and jump["sq"] == (1, 1) and jump["near"] == (1, 2)
    assert jump["corners"] == (2, 2)  # 3 -> 7 is no integer factor: the jump is kept (an upper bound)
    assert jump["back"] == (2, 1)
    fpn = load(tmp_path, "  - {name: c2, conv: {out: 8, k: 3, s: 2, p: 1}}\n  - {name: c4, conv: {out: 8, k: 3, s: 2, p: 1}}\n"
                         "  - {name: up, upsample: {scale: 2}}\n  - {name: p2, conv: {out: 8, k: 1}}\n", "[3, 16, 16]")
    assert fpn.features(["c2", "c4", "up", "p2"]).reduction() == [2, 4, 2, 2]


def test_upsample_in_generated_code_and_onnx(tmp_path):
    from tests.conftest import pair

    net = load(tmp_path, UPSAMPLES, "[3, 6, 6]")
    ref, gen = pair(net, tmp_path)
    x = x_of(3, 6, 6)
    for a, b in zip(gen.eval()(x), ref.eval()(x)):
        assert_close(a, b, 0)
    code = net.codegen()
    assert 'nn.Upsample(scale_factor=(2, 3), mode="bilinear", align_corners=False)' in code
    assert "nn.Upsample(size=(7, 18))" in code
    verdict = net.export_onnx(tmp_path / "up.onnx", module=ref, dynamic_batch=True)
    assert max(verdict.max_diff.values()) <= 1e-5


@pytest.mark.parametrize("attrs, words", [
    ("{scale: 2, size: 12}", "give either scale (an integer factor) or size"),
    ("{}", "give either scale (an integer factor) or size"),
    ("{scale: 2, align_corners: true}", "align_corners goes with mode: bilinear"),
    ("{scale: 2, mode: bicubic}", "bicubic"),
    ("{size: [4, 12]}", "upsample to 4×12 would shrink the 6×6 input"),
    ("{scale: 0}", "scale"),
])
def test_upsample_errors(tmp_path, attrs, words):
    assert_refused(tmp_path, f"  - {{name: up, upsample: {attrs}}}\n", words)


def test_reshape_and_partial_flatten(tmp_path):
    net = load(tmp_path, "  - {flatten: {start: 1}}\n  - {reshape: {shape: [2, -1, 9]}}\n"
                         "  - {flatten: {start: 0, end: 1}}\n")
    x = x_of(8, 6, 6)
    assert_close(built(net)(x), nn.Flatten(1, 2)(nn.Flatten(2)(x).reshape(2, 2, -1, 9)), 0)
    assert net.graph.node(net.outputs[0][1]).shape == (32, 9)


def test_linear_over_the_last_axis(tmp_path):
    """nn.Linear semantics on a permuted map; MACs count every position (H·W·in·out)."""
    net = load(tmp_path, "  - {permute: {dims: [1, 2, 0]}}\n  - {name: fc, linear: {out: 12}}\n", "[8, 6, 5]")
    m = built(net)
    ref = nn.Linear(8, 12)
    m.fc.load_state_dict(ref.state_dict())
    x = x_of(8, 6, 5)
    assert_close(m(x), ref(x.permute(0, 2, 3, 1)), 1e-6)
    assert net.params == 8 * 12 + 12
    assert net.macs == macs_of(ref, x[:1].permute(0, 2, 3, 1)) == 6 * 5 * 8 * 12


@pytest.mark.parametrize("op, cls", [("hardswish", nn.Hardswish), ("hardsigmoid", nn.Hardsigmoid)])
def test_hard_activations(tmp_path, op, cls):
    net = load(tmp_path, f"  - {op}\n  - {{{op}: {{inplace: true}}}}\n")
    x = x_of(8, 6, 6) * 4
    assert_close(built(net)(x), cls()(cls()(x)), 0)


def test_add_broadcast(tmp_path):
    net = load(tmp_path, "  - {name: g, gap: {}}\n  - {name: s, from: [input, g], add: {broadcast: true}}\n")
    x = x_of(8, 6, 6)
    assert_close(built(net)(x), x + x.mean((2, 3), keepdim=True), 1e-6)


SE = """\
templates:
  SqueezeExcitation:
    args: {input_channels: int, squeeze_channels: int}
    body:
      - {name: avgpool, gap: {}}
      - {name: fc1, conv: {out: $squeeze_channels, k: 1}}
      - {name: activation, relu: {}}
      - {name: fc2, conv: {out: $input_channels, k: 1}}
      - {name: scale_activation, sigmoid: {}}
"""


def test_squeeze_excitation_loads_torchvision_strictly(tmp_path):
    """torchvision.ops.SqueezeExcitation written as a template: the gate times the input (mul)."""
    from torchvision.ops import SqueezeExcitation

    net = load(tmp_path, "  - {name: gate, use: SqueezeExcitation, args: {input_channels: 16, squeeze_channels: 4}}\n"
                         "  - {name: scale, from: [gate, input], mul: {}}\n", "[16, 7, 7]", SE)
    ref = SqueezeExcitation(16, 4)
    m = built(net)
    m.gate.load_state_dict(ref.state_dict(), strict=True)
    assert list(m.gate.state_dict()) == list(ref.state_dict())
    assert net.params == sum(p.numel() for p in ref.parameters())
    x = x_of(16, 7, 7)
    assert_close(m(x), ref(x), 1e-6)
    assert net.macs == macs_of(ref, x[:1])


def test_readme_lists_every_op():
    from netc.ops import REGISTRY
    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("**Ops.**"):text.index("## Editor support")]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    listed = {name.strip(" `") for row in rows for part in row.split("/") for name in part.split(",")}
    assert listed == set(REGISTRY)


SHUFFLE_UNIT = """\
  - {name: x1, chunk: {parts: 2, index: 0}}
  - {name: x2, from: input, chunk: {parts: 2, index: 1}}
  - name: branch2
    from: x2
    seq:
      - {conv: {out: 8, k: 1, bias: false}}
      - bn
      - {relu: {inplace: true}}
      - {conv: {out: 8, k: 3, p: 1, groups: 8, bias: false}}
      - bn
      - {conv: {out: 8, k: 1, bias: false}}
      - bn
      - {relu: {inplace: true}}
  - {name: out, from: [x1, branch2], cat: {}}
  - {name: shuffle, channel_shuffle: {groups: 2}}
"""


def test_shufflenet_unit_loads_torchvision_strictly(tmp_path):
    """ShuffleNet V2's stride-1 unit: both halves of the channel split addressed by `from:`,
    the branch's state_dict as torchvision's; outputs equal in eval and training."""
    from torchvision.models.shufflenetv2 import InvertedResidual

    net = load(tmp_path, SHUFFLE_UNIT, "[16, 7, 7]")
    ref = InvertedResidual(16, 16, 1)
    m = built(net)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    m.load_state_dict(ref.state_dict(), strict=True)
    assert list(m.state_dict()) == list(ref.state_dict())
    assert net.params == sum(p.numel() for p in ref.parameters()) and net.macs == macs_of(ref.eval(), x_of(16, 7, 7)[:1])
    x = x_of(16, 7, 7)
    for train in (False, True):
        m.train(train), ref.train(train)
        assert_close(m(x), ref(x), 1e-5)
