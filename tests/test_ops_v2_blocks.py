"""The v2 ops that live on blocks or span them: ConvNeXt's layer scale (a parameter of the
enclosing block, as torchvision's CNBlock keeps it), and every new op through the code
generator, torch.export and ONNX, against the interpreter."""
from __future__ import annotations

import pytest
import torch

import netc
from tests.test_ops_v2 import assert_close, built, load, macs_of, x_of

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
    ops = {d.op for _, d in net.nodes()}
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
    scripted = torch.jit.script(gen)  # TorchScript compiles the inlined runtime modules too
    with torch.no_grad():
        torch.manual_seed(5)
        assert_close(scripted.train()(x), a, 1e-6)
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


def test_import_maps_the_new_modules(tmp_path):
    """`netc import` of a model built of torch's and torchvision's modules for the new ops gives a
    spec that loads its state_dict strictly and computes its outputs."""
    from netc.api import import_spec, loads
    from tests.conftest import ROOT

    text, verdict = import_spec(f"{ROOT / 'tests' / 'fixtures' / 'interop' / 'v2_ops.py'}:Mixed", {}, (3, 8, 8))
    assert verdict.max_diff <= 1e-5 and verdict.same_order
    ops = [d.op for _, d in loads(text).nodes()]
    assert ops[1:11] == ["groupnorm", "hardswish", "channel_shuffle", "layernorm", "permute", "layernorm", "linear",
                         "hardsigmoid", "permute", "stochastic_depth"]
    assert "layernorm: {eps: 1e-06}" in text and "layernorm: {over: last}" in text


def test_convnext_tiny_of_the_new_ops_is_torchvisions():
    """A whole ConvNeXt-T from these ops: torchvision's parameter count, GFLOPS (`_ops`, MACs as
    DESIGN.md counts them: the pointwise linears at H·W·in·out) and state_dict keys in order."""
    from torchvision.models import ConvNeXt_Tiny_Weights

    from tests.conftest import ROOT, reference_model

    net = netc.load(ROOT / "tests" / "fixtures" / "v2" / "convnext_tiny.yaml")
    meta = ConvNeXt_Tiny_Weights.IMAGENET1K_V1.meta
    assert net.params == meta["num_params"]
    assert round(net.macs / 1e9, 3) == meta["_ops"]
    ref = reference_model("convnext_tiny", device="meta")
    built_meta = net.build(device="meta")
    assert [(k, tuple(v.shape)) for k, v in built_meta.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
