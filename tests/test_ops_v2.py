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
    assert net.graph.nodes[net.outputs[0][1]]["shape"] == (5, 6, 8)


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
    assert net.graph.nodes[net.outputs[0][1]]["shape"] == (8, 6, 2)


def test_reshape_and_partial_flatten(tmp_path):
    net = load(tmp_path, "  - {flatten: {start: 1}}\n  - {reshape: {shape: [2, -1, 9]}}\n"
                         "  - {flatten: {start: 0, end: 1}}\n")
    x = x_of(8, 6, 6)
    assert_close(built(net)(x), nn.Flatten(1, 2)(nn.Flatten(2)(x).reshape(2, 2, -1, 9)), 0)
    assert net.graph.nodes[net.outputs[0][1]]["shape"] == (32, 9)


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


CNBLOCK = """\
templates:
  CNBlock:
    args: {dim: int, p: 0.0}
    body:
      residual:
        body:
          - name: block
            seq:
              - {conv: {out: $dim, k: 7, p: 3, groups: $dim}}
              - {permute: {dims: [1, 2, 0]}}
              - {layernorm: {over: last, eps: 1.0e-6}}
              - {linear: {out: 4 * $dim}}
              - gelu
              - {linear: {out: $dim}}
              - {permute: {dims: [2, 0, 1]}}
          - {name: layer_scale, layer_scale: {init: 0.25}}
          - {name: stochastic_depth, stochastic_depth: {p: $p}}
"""


def cnblock_spec(tmp_path, init=""):
    layers = ("  - name: features\n    seq:\n      - {conv: {out: 8, k: 1}}\n"
              "      - {name: '1', seq: [{name: '0', use: CNBlock, args: {dim: 8}}]}\n")
    return load(tmp_path, layers, "[8, 7, 7]", init + CNBLOCK)


def test_layer_scale_is_convnext_cnblock_parameter(tmp_path):
    """The layer scale is a parameter of the block itself (`features.1.0.layer_scale`), as in
    torchvision's CNBlock, whose state_dict loads strictly; outputs equal in eval and training."""
    from torchvision.models.convnext import CNBlock

    net = cnblock_spec(tmp_path)
    m = built(net)
    ref = CNBlock(8, layer_scale=0.25, stochastic_depth_prob=0.0)
    block = m.features[1][0]
    assert block.get_parameter("layer_scale") is block.layer_scale
    assert [k for k in m.state_dict() if k.startswith("features.1.0.")] == \
        [f"features.1.0.{k}" for k in ref.state_dict()]
    assert [n for n, _ in block.named_parameters(recurse=False)] == ["layer_scale"]
    assert torch.equal(block.layer_scale, ref.layer_scale)  # both start at the init value
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    block.load_state_dict(ref.state_dict(), strict=True)
    assert net.params == 8 * 8 + 8 + sum(p.numel() for p in ref.parameters())
    x = x_of(8, 7, 7)
    for train in (False, True):
        m.train(train), ref.train(train)
        assert_close(block(m.features[0](x)), ref(m.features[0](x)), 1e-5)
    loss = m(x).square().sum()
    loss.backward()
    assert block.layer_scale.grad is not None and block.layer_scale.grad.abs().sum() > 0
    ref_macs = macs_of(ref.eval(), x[:1])
    assert net.macs == 8 * 8 * 49 + ref_macs  # the stem's 1x1 conv plus the block


def test_layer_scale_starts_at_init_whatever_the_scheme(tmp_path):
    rules = ("init:\n  preset: default\n  rules:\n    - {scope: '*', weight: 0.5, bias: 0}\n"
             "    - {op: [conv, linear], weight: {normal: {std: 0.1}}}\n")
    net = cnblock_spec(tmp_path, rules)
    m = built(net)
    assert torch.equal(m.features[1][0].layer_scale, torch.full((8, 1, 1), 0.25))
    assert torch.equal(built(net, init=False).features[1][0].layer_scale, torch.full((8, 1, 1), 0.25))


def test_layer_scale_shapes_and_copies(tmp_path):
    """Default C on a vector, a given shape on a map; deepcopy and pickle keep it on the block."""
    import copy
    import pickle

    net = load(tmp_path, "  - {name: ls, layer_scale: {init: 2.0, shape: [1, 6, 1]}}\n  - gap\n  - flatten\n"
                         "  - {name: v, layer_scale: {}}\n")
    m = built(net)
    assert m.ls.shape == (1, 6, 1) and m.v.shape == (8,) and net.params == 14
    x = x_of(8, 6, 6)
    want = (2 * x).mean((2, 3)) * 1e-6
    assert_close(m(x), want, 1e-9)
    for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert list(other.state_dict()) == ["ls", "v"]
        assert_close(other(x), want, 1e-9)


# every new op, in blocks the code generator writes as classes and as nn.Sequential
EVERY_NEW_OP = """\
templates:
  Unit:
    args: {c: int, p: 0.0}
    body:
      - {name: inp, identity: {}}
      - {name: left, chunk: {parts: 2, index: 0}}
      - name: branch
        from: inp
        seq: [{chunk: {parts: 2, index: 1}}, {conv: {out: $c // 2, k: 1}}, {groupnorm: {groups: 2}}, hardswish]
      - {name: joined, from: [left, branch], cat: {}}
      - {name: shuffle, channel_shuffle: {groups: 2}}
      - {name: avgpool, gap: {}}
      - {name: fc, conv: {out: $c, k: 1}}
      - {name: gate, hardsigmoid: {}}
      - {name: scaled, from: [gate, shuffle], mul: {}}
      - {name: "7", layer_scale: {init: 0.5}}
      - {name: layer_scale, layer_scale: {init: $p + 0.1, shape: [1, 1, 1]}}
      - {name: drop, stochastic_depth: {p: $p}}
      - {name: bias, from: [drop, avgpool], add: {broadcast: true}}
layers:
  - {name: stem, conv: {out: 8, k: 3, p: 1}}
  - {name: units, seq: [{use: Unit, name: a, args: {c: 8}}, {use: Unit, name: b, args: {c: 8, p: 0.2}}]}
  - {name: norm, layernorm: {}}
  - {name: head, seq: [{permute: {dims: [1, 2, 0]}}, {layernorm: {over: last}}, {linear: {out: 12}},
                       {permute: {dims: [2, 0, 1]}}, {reshape: {shape: [12, -1]}}, {flatten: {start: 0}}]}
  - {name: fc, linear: {out: 5}}
"""


def test_codegen_equals_the_interpreter_for_every_new_op(tmp_path):
    """The generated module holds the same parameters under the same names (the layer scales
    on their blocks) and computes the same outputs, in eval and in training (same seed)."""
    from tests.conftest import import_source, pair

    net = load(tmp_path, "".join(EVERY_NEW_OP.partition("layers:\n")[2]), "[4, 6, 6]",
               EVERY_NEW_OP.partition("layers:\n")[0], name="every_new")
    ops = {d["op"] for _, d in net.nodes()}
    assert {"mul", "chunk", "channel_shuffle", "groupnorm", "hardswish", "hardsigmoid", "layer_scale",
            "stochastic_depth", "layernorm", "permute", "reshape", "flatten", "linear", "add"} <= ops
    ref, gen = pair(net, tmp_path)
    assert list(gen.state_dict()) == list(ref.state_dict())
    assert "units.a.7" in ref.state_dict() and "units.b.layer_scale" in ref.state_dict()
    x = x_of(4, 6, 6)
    with torch.no_grad():
        assert_close(gen.eval()(x), ref.eval()(x), 1e-6)
        torch.manual_seed(5)
        a = ref.train()(x)
        torch.manual_seed(5)
        assert_close(gen.train()(x), a, 1e-6)
    source = net.codegen()
    for text in ("out = out_2 * out", "= x.chunk(2, 1)[0]", "x = x.chunk(2, 1)[1]", "nn.GroupNorm(2, c // 2)",
                 'self.register_parameter("7", nn.Parameter(torch.full((c, 1, 1), 0.5)))',
                 "self.layer_scale = nn.Parameter(torch.full((1, 1, 1), p + 0.1))", "out = self.layer_scale * out",
                 'out = getattr(self, "7") * out', 'StochasticDepth(p, "row")', "out = out + out_1",
                 "Permute((0, 2, 3, 1))", "Reshape((12, -1))"):
        assert text in source, text
    fresh = import_source(source, tmp_path)
    from tests.conftest import factory

    built_fresh = factory(fresh)()
    assert torch.equal(built_fresh.units.a.get_parameter("7"), torch.full((8, 1, 1), 0.5))


def every_new_op(tmp_path):
    head, _, layers = EVERY_NEW_OP.partition("layers:\n")
    return load(tmp_path, layers, "[4, 6, 6]", head, name="every_new")


def test_torch_export_keeps_the_layer_scales(tmp_path, netc_cli):
    net = every_new_op(tmp_path)
    (tmp_path / "every_new.yaml").rename(tmp_path / "spec.yaml")
    path = tmp_path / "every.pt2"
    code, _, stderr = netc_cli("export", tmp_path / "spec.yaml", "--torch-export", path, "--dynamic-batch")
    assert code == 0, stderr
    program = torch.export.load(str(path))
    assert {"units.a.7", "units.b.layer_scale"} <= set(program.state_dict)
    module = built(net).eval()
    module.load_state_dict(program.state_dict, strict=True)
    x = x_of(4, 6, 6)
    with torch.no_grad():
        assert_close(program.module()(x), module(x), 1e-5)


def test_onnx_export_of_every_new_op(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    net = every_new_op(tmp_path)
    module = built(net)
    path = tmp_path / "every.onnx"
    verdict = net.export_onnx(path, dynamic_batch=True, module=module)
    assert set(verdict.max_diff) == {1, 3}
    model = onnx.load(str(path))
    assert {"units.a.7", "units.b.layer_scale"} <= {i.name for i in model.graph.initializer}
    nodes = {n.name: n.op_type for n in model.graph.node}
    assert nodes["units.b.layer_scale"] == nodes["units.a.scaled"] == "Mul" and nodes["head.0"] == "Transpose"


def test_readme_lists_every_op():
    from netc.ops import REGISTRY
    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("**Ops.**"):text.index("## Editor support")]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    listed = {name.strip(" `") for row in rows for part in row.split("/") for name in part.split(",")}
    assert listed == set(REGISTRY)


def test_check_table_render_cover_the_new_ops_without_torch(tmp_path):
    """Costs of broadcasts and norms in `netc table`, labels in `netc render`, all static."""
    from tests.conftest import run_without_torch

    every_new_op(tmp_path)
    spec = str(tmp_path / "every_new.yaml")
    import csv

    table = run_without_torch("table", spec, "--format", "csv")
    rows = {r["scope"]: r for r in csv.DictReader(table.splitlines()[:-1])}
    assert (rows["units.a.7"]["label"], rows["units.a.7"]["params"]) == ("layer scale 0.5", "8")
    assert rows["units.a.scaled"]["other_flops"] == rows["units.a.bias"]["other_flops"] == str(8 * 6 * 6)
    assert rows["head.2"]["macs"] == str(6 * 6 * 8 * 12)  # linear over the channels of each position
    assert rows["units.a.branch.2"]["params"] == "8"
    run_without_torch("render", spec, "--dot", "-o", str(tmp_path / "every.dot"))
    dot = (tmp_path / "every.dot").read_text(encoding="utf-8")
    for label in ("<<B>×</B>>", "chunk 1/2", "shuffle 2", "permute 1,2,0", "layernorm 2d", "groupnorm 2",
                  "stochastic depth 0.2", "reshape 12×-1", "hardswish"):
        assert label in dot, label
