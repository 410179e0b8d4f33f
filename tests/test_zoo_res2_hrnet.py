"""timm's Res2Net, HRNet and DPN as bundled specs whose structure is a parameter (issue 28; DPN,
written by hand from timm's source, issue 29): exact against timm at two or more settings each
(parameter count, state_dict keys in order through a strict load, outputs <= 1e-5 on a 64x64
batch, which both references accept), and their generated code equal to the built module. Both
Res2Net and HRNet index lists interleaved in a forward (Res2Net's `convs[i]`, `bns[i]`; HRNet's
`fuse_layers[i][j]`): generated code registers such a block as an nn.ModuleList (nn.ModuleDict for
named children) and calls its items from the parent's forward; small generated specs of lists the
data flow leaves and re-enters check the mechanism beyond the two networks."""
import random

import pytest
import torch

import netc
from tests.conftest import SPECS, calibrate, pair, randomise, reference_model

SIZE = 64
RES2NET = SPECS / "res2net50_26w_4s.yaml"
HRNET = SPECS / "hrnet_w18_small.yaml"
DPN = SPECS / "dpn48b.yaml"
# (spec, timm model, --set values reproducing it); scale 1 is timm's block with block_args=dict(scale=1)
SETTINGS = [
    (RES2NET, "res2net50_26w_4s", {}),
    (RES2NET, "res2net50_48w_2s", {"width": 48, "scale": 2}),
    (RES2NET, "res2net50_26w_4s", {"scale": 1}),
    (HRNET, "hrnet_w18_small", {}),
    (HRNET, "hrnet_w18_small_v2", {"width1": 64, "blocks1": 2, "modules": [1, 3, 2], "widths": [18, 36, 72, 144]}),
    (DPN, "dpn48b", {}),
    # timm's other DPNs, as the spec's meta.variants set them
    *((DPN, name, v["set"]) for name, v in netc.load(DPN).spec.meta["variants"].items()),
]


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)


@pytest.mark.parametrize("spec, model, sets", SETTINGS, ids=[s[1] + ("_1s" if s[2].get("scale") == 1 else "")
                                                             for s in SETTINGS])
def test_matches_timm(spec, model, sets):
    torch.manual_seed(0)
    kwargs = {"block_args": {"scale": 1}} if sets.get("scale") == 1 else {}
    ref = reference_model(model, "timm", "cpu", **kwargs).eval()
    _randomise_bn(ref)
    net = netc.load(spec, sets, input_shape=(3, SIZE, SIZE))
    assert net.params == sum(p.numel() for p in ref.parameters())
    ours = net.build(device="cpu", init=False).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())  # the same keys in the same order
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == b.shape == (2, 1000)
    assert (a - b).abs().max().item() <= 1e-5


def test_parameters_change_the_structure():
    """scale and width split Res2Net's 3x3 (scale - 1 convs of width-per-64 channels); branches and
    modules are HRNet's stage layout; their MACs follow at the default 224 input."""
    r2 = netc.load(RES2NET, {"scale": 8, "width": 14})
    convs = [d.scope for _, d in r2.nodes() if d.scope.startswith("layer1.0.convs.")]
    assert convs == [f"layer1.0.convs.{i}" for i in range(7)]
    assert next(d.shape for _, d in r2.nodes() if d.scope == "layer1.0.convs.0")[0] == 14
    hr = netc.load(HRNET, {"modules": [1, 3, 2]})
    assert {s.split(".")[1] for s in hr.graph.blocks if s.startswith("stage3.")} == {"0", "1", "2"}
    assert any(d.scope == "stage4.1.fuse_layers.3.0.2.0" for _, d in hr.nodes())  # 3 strided convs: 0 -> 3


def _equal_outputs(net, tmp_path, shape):
    ref, gen = pair(net, tmp_path, shape)  # same state_dict keys and shapes, strictly loaded
    assert list(gen.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ref.eval()(x), gen.eval()(x)
    assert torch.isfinite(a).all() and (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("sets", [{}, {"scale": 2, "width": 48}], ids=["26w_4s", "48w_2s"])
def test_res2net_generated_code_indexes_its_lists(sets, tmp_path):
    net = netc.load(RES2NET, sets, input_shape=(3, SIZE, SIZE))
    source = net.codegen()
    if net.env["scale"] > 2:  # scale 2 has one conv per list: a chain, an nn.Sequential of one
        assert "self.convs = nn.ModuleList(" in source and "self.bns = nn.ModuleList(" in source
        assert "self.convs[2](" in source and "self.bns[2](" in source
    _equal_outputs(net, tmp_path, (3, SIZE, SIZE))


def test_hrnet_generated_code_indexes_its_lists(tmp_path):
    net = netc.load(HRNET, input_shape=(3, SIZE, SIZE))
    source = net.codegen()
    assert "self.fuse_layers = nn.ModuleList(" in source and "self.fuse_layers[1][0](" in source
    assert "self.branches[3](" in source and "self.incre_modules[3](" in source
    _equal_outputs(net, tmp_path, (3, SIZE, SIZE))


# --- generated specs: lists the data flow leaves and re-enters -----------------------------------

ITEMS = ["{conv: {out: 8, k: 3, p: 1}}", "{conv: {out: 8, k: 1, bias: false}}", "bn", "relu",
         "{seq: [{conv: {out: 8, k: 1}}, bn]}"]


def interleaved_spec(seed: int) -> str:
    """Lists L0, L1, … of n items each, item i of L(k+1) reading item i of Lk; item i > 0 of L0
    reads the join of the last list's item i - 1 with the stem, so the data flow leaves L0 and
    re-enters it. Items are numbered (an nn.ModuleList) or named (an nn.ModuleDict); a list may
    hold a chain (conv then bn reading it: opened, not a plain list) or a join of its own."""
    rng = random.Random(seed)
    n, depth, named = rng.randint(2, 4), rng.randint(1, 3), rng.random() < 0.5
    lines = ["netc: 1", f"name: interleaved{seed}", "input: [4, 8, 8]", "layers:",
             "  - {name: stem, conv: {out: 8, k: 1}}"]
    for k in range(depth):
        items = []
        for i in range(n):
            src = f"L{k - 1}.{'p' if named else ''}{i}" if k else ("stem" if i == 0 else f"j{i}")
            item = rng.choice(ITEMS)
            body = item[1:-1] if item.startswith("{") else f"{item}: {{}}"
            if item.startswith("{seq") and not named:
                body = f"name: '{i}', {body}"  # a block child of a numbered list takes its position by name
            items.append(f"{{{f'name: p{i}, ' if named else ''}{body}, from: {src}}}")
        if k == 0 and rng.random() < 0.5:  # a join of an item inside the list: no plain list, it is opened
            items.append(f"{{name: inner, add: {{}}, from: ['{'p' if named else ''}0', stem]}}")
        lines.append(f"  - {{name: L{k}, seq: [{', '.join(items)}]}}")
    last = f"L{depth - 1}.{'p' if named else ''}"
    lines += [f"  - {{name: j{i + 1}, add: {{}}, from: [{last}{i}, stem]}}" for i in range(n - 1)]
    uses = ", ".join(f"{last}{i}" for i in range(n)) + (", L0.inner" if "inner" in lines[5] else "")
    lines.append(f"  - {{cat: {{}}, from: [{uses}]}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(12))
def test_generated_interleaved_lists_equal_the_build(seed, tmp_path):
    text = interleaved_spec(seed)
    net = netc.loads(text, str(tmp_path / "spec.yaml"))
    source = net.codegen()  # generated: no "leaves block … and re-enters it"
    assert "self.L0 = nn.Module" in source and "self.L0[" in source
    shape = net.input_shape
    ref, gen = pair(net, tmp_path, shape)
    assert list(gen.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert (ref.eval()(x) - gen.eval()(x)).abs().max().item() <= 1e-5


def test_a_template_the_data_flow_reenters_is_still_a_located_error(tmp_path):
    """A template instance is its class: it cannot be opened, so codegen refuses it with the
    block's location (the built module runs it)."""
    text = """netc: 1
name: reentered
input: [4, 8, 8]
templates:
  Pair:
    args: {}
    body: [{name: a, conv: {out: 8, k: 1}}, {name: b, conv: {out: 8, k: 1}, from: mid}]
layers:
  - {name: stem, conv: {out: 8, k: 1}}
  - {name: blk, use: Pair}
  - {name: mid, add: {}, from: [blk.a, stem]}
  - {add: {}, from: [blk, mid]}
"""
    net = netc.loads(text, str(tmp_path / "reentered.yaml"))
    module = net.build(device="cpu")
    calibrate(module, net.input_shape)
    randomise(module)
    with pytest.raises(netc.NetcError) as exc:
        net.codegen()
    d = exc.value.diagnostics[0]
    assert d.code == "codegen" and "re-enters" in d.message and d.loc.line == 10


def test_modules_register_in_the_spec_order_when_a_from_points_forward(tmp_path):
    """A list whose items read a layer written after it (`from:` may point forward) is registered
    before that layer, as the interpreter registers it; the forward still runs that layer first."""
    text = """netc: 1
name: forward_ref
input: [4, 8, 8]
layers:
  - {name: stem, conv: {out: 8, k: 1}}
  - {name: L, seq: [{conv: {out: 8, k: 1}, from: X}, {conv: {out: 8, k: 3, p: 1}, from: X}]}
  - {name: X, conv: {out: 8, k: 1}, from: stem}
  - {cat: {}, from: [L.0, L.1]}
"""
    net = netc.loads(text, str(tmp_path / "forward_ref.yaml"))
    ref, gen = pair(net, tmp_path)
    assert [k.split(".")[0] for k in gen.state_dict()][::2] == ["stem", "L", "L", "X"]
    assert list(gen.state_dict()) == list(ref.state_dict())
