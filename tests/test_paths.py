"""Residual networks as ensembles of paths (Veit et al. 2016): path counts and lengths, lesion
and reorder. References: the paper's section 3 (2^n paths, lengths Binomial(n, 1/2)) computed
here with math.comb, and modules composed by hand from the built model's own layers."""
import json
import math
import re
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import netc
from netc.analysis.paths import count_paths
from netc.errors import NetcError
from tests.conftest import run_without_torch


def binomial_share(n, lo, hi):
    return Fraction(sum(math.comb(n, k) for k in range(lo, hi + 1)), 2 ** n)


def test_resnet110_unraveled():
    # Veit et al. 2016, section 3 and Fig. 6(a): ResNet-110 on CIFAR has 54 blocks, 2^54 paths,
    # and the paper's "95% of paths go through 19 to 35 blocks" (exactly 98.0%)
    p = count_paths(netc.load("resnet110"))
    assert p.count == 2 ** 54 and p.residual_blocks == 54
    assert p.blocks.counts == tuple(math.comb(54, k) for k in range(55))
    assert round(float(p.blocks.share(19, 35)) * 100, 1) == 98.0 == round(float(binomial_share(54, 19, 35)) * 100, 1)
    assert p.blocks.central() == (20, 34)
    assert round(float(p.blocks.share(20, 34)) * 100, 2) == 95.98
    # weighted layers: conv1 + fc, plus two convs per body taken (option A shortcuts have none)
    assert p.layers.offset == 2 and p.layers.count(2 + 2 * 27) == math.comb(54, 27)


def test_paths_cli_text_without_torch():
    out = run_without_torch("paths", "resnet110", "--between", "19-35")
    assert "18,014,398,509,481,984 paths" in out and "log2 54.00" in out
    assert "central 95%: 20-34 (95.98% of paths)" in out
    assert "19-35 residual blocks: 98.02% of paths" in out
    assert "#" * 40 in out  # the histogram's mode bar


def test_resnet1202_exact():
    # its time is machine-dependent (0.4 s CPU on stop 18's machine, 2.1 s on an AVX2 EPYC under
    # load): a benchmark's figure, not a unit test's bound
    p = count_paths(netc.load("resnet1202"))
    assert p.count == 2 ** 600 and p.log2 == 600.0
    assert p.blocks.count(300) == math.comb(600, 300)


def test_plain_and_inception():
    assert count_paths(netc.load("vgg16")).count == 1
    plain = count_paths(netc.load("plain34"))
    assert plain.count == 1 and plain.layers.offset == 34  # 33 convs and the fc
    # resnet34 (He et al. 2015 Table 1): 16 basic blocks; three have projection shortcuts (+1 layer)
    r34 = count_paths(netc.load("resnet34"))
    assert r34.count == 2 ** 16 and r34.layers.lengths[-1] == 34
    # GoogLeNet: 9 Inception modules of 4 branches each, in series: 4^9 paths; branch depths
    # 1, 2, 2, 1 weighted layers (Szegedy et al. 2014, Fig. 2b); stem 3 convs, classifier 1
    g = count_paths(netc.load("googlenet_v1"))
    assert g.count == 4 ** 9 and g.residual_blocks == 0
    assert (g.layers.offset, g.layers.lengths[-1]) == (3 + 9 + 1, 3 + 18 + 1)
    assert g.layers.count(13) == 2 ** 9  # every module through a one-layer branch


def test_paths_json(netc_cli):
    import json

    code, out, _ = netc_cli("paths", "resnet20", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["paths"] == str(2 ** 9) and data["blocks"]["counts"]["4"] == str(math.comb(9, 4))


def test_paths_bad_range(netc_cli):
    code, _, err = netc_cli("paths", "resnet20", "--between", "35-19")
    assert code == 2 and "--between" in err


# --- lesion and reorder ------------------------------------------------------------------

def cifar_forward(model, x, order=None, lesioned=()):
    """A CIFAR ResNet (He et al. 2015, 4.2, option A) composed by hand from the model's layers,
    with its blocks run in `order` per stage and the bodies of `lesioned` blocks left out."""
    m = model.get_submodule
    x = F.relu(m("bn1")(m("conv1")(x)))
    for stage in ("layer1", "layer2", "layer3"):
        for i in (order or {}).get(stage, range(9)):
            b = f"{stage}.{i}"
            short = x
            if m(f"{b}.conv1").stride == (2, 2):
                planes = m(f"{b}.conv1").out_channels
                extra = planes - x.shape[1]
                short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, extra // 2, extra - extra // 2))
            if b in lesioned:
                x = F.relu(short)
                continue
            body = m(f"{b}.bn1")(m(f"{b}.conv1")(x))
            body = m(f"{b}.bn2")(m(f"{b}.conv2")(F.relu(body)))
            x = F.relu(body + short)
    return m("linear")(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions: a second thread only adds synchronisation (20-100x slower on a loaded machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def resnet56():
    torch.manual_seed(0)
    net = netc.load("resnet56", input_shape=(3, 8, 8))  # 8x8 keeps the forwards cheap; shapes 8, 4, 2
    model = net.build().eval()
    for name, buf in model.named_buffers():  # non-trivial running statistics
        if name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
        elif name.endswith("running_mean"):
            buf.normal_(0, 0.1)
    return net, model


def test_lesion_every_block_of_resnet56(resnet56):
    """Veit et al. 2016, 4.1: each block whose shortcut is an identity, removed in turn. The
    lesioned model loads the original's state_dict minus the block's keys, strictly, and
    computes the hand-composed lesioned network."""
    net, model = resnet56
    state = model.state_dict()
    x = torch.randn(2, 3, 8, 8)
    for stage in ("layer1", "layer2", "layer3"):
        for i in range(1 if stage != "layer1" else 0, 9):
            scope = f"{stage}.{i}"
            lesioned = net.lesion(scope).build(init=False).eval()
            rest = {k: v for k, v in state.items() if not k.startswith(scope + ".")}
            assert len(rest) < len(state)
            lesioned.load_state_dict(rest, strict=True)
            with torch.no_grad():
                torch.testing.assert_close(lesioned(x), cifar_forward(model, x, lesioned={scope}))


def test_lesion_downsampling_block_keeps_option_a_shortcut(resnet56):
    net, model = resnet56
    lesioned = net.lesion("layer2.0")  # the zero-padding shortcut alone still gives 32x16x16
    assert net.params - lesioned.params == sum(
        v.numel() for k, v in model.named_parameters() if k.startswith("layer2.0."))


def test_reorder_resnet56(resnet56):
    net, model = resnet56
    x = torch.randn(2, 3, 8, 8)
    order = [0, 8, 7, 6, 5, 4, 3, 2, 1]  # the default: the shape-keeping blocks reversed
    for reordered, wanted in ((net.reorder("layer3"), order), (net.reorder("layer2", [0, 2, 1, 3, 4, 5, 6, 7, 8]),
                                                              [0, 2, 1, 3, 4, 5, 6, 7, 8])):
        built = reordered.build(init=False).eval()
        built.load_state_dict(model.state_dict(), strict=True)
        stage = "layer3" if wanted == order else "layer2"
        with torch.no_grad():
            torch.testing.assert_close(built(x), cifar_forward(model, x, order={stage: wanted}))


@pytest.mark.parametrize("spec, call, message", [
    ("plain34", lambda n: n.lesion("layer2.0"), "would change the parameters of 'layer2.1.conv1'"),
    ("vgg16", lambda n: n.lesion("features.0"), "3×224×224 -> 64×224×224"),
    ("resnet56", lambda n: n.lesion("layer3"), "holds 9 residual blocks"),
    ("resnet56", lambda n: n.lesion("layer3.44"), "did you mean"),
    ("resnet56", lambda n: n.reorder("layer3", [1, 0, 2, 3, 4, 5, 6, 7, 8]), "not shape-valid"),
    ("resnet56", lambda n: n.reorder("layer3", [0, 0, 2, 3, 4, 5, 6, 7, 8]), "not a permutation"),
    ("resnet56", lambda n: n.reorder("layer3.1"), "not a named repeat"),
    ("resnet18", lambda n: n.reorder("layer2"), "nothing to reorder"),
    ("googlenet_v1", lambda n: n.lesion("inception_3a"), "would change the parameters"),
    ("vgg16", lambda n: n.lesion("features.99"), "no layer or block"),
])
def test_transform_refusals(spec, call, message):
    with pytest.raises(NetcError) as exc:
        call(netc.load(spec))
    d = exc.value.diagnostics[0]
    assert d.code == "transform" and message in d.format()
    if "did you mean" not in message and "no layer" not in message:
        assert d.loc is not None and d.loc.line > 0  # located at the block in the spec


def test_build_cli_lesion_and_reorder(netc_cli, tmp_path):
    code, out, _ = netc_cli("build", "resnet56", "--lesion", "layer3.4", "--reorder", "layer2", "-q",
                            "--device", "cpu", "--save", tmp_path / "l.pt")
    assert code == 0 and "779,034 parameters" in out  # 853,018 minus layer3.4's 2 x (3x3x64x64 + 128)
    keys = set(torch.load(tmp_path / "l.pt"))
    assert "layer3.3.conv1.weight" in keys and not any(k.startswith("layer3.4.") for k in keys)
    code, _, err = netc_cli("build", "plain34", "--lesion", "layer2.0", "-q")
    assert code == 2 and "error[transform]" in err and "plain34.yaml:" in err
    code, out, _ = netc_cli("build", "resnet56", "--reorder", "layer3", "-q", "--device", "cpu")
    assert code == 0 and "built resnet56 (reorder layer3):" in out


def test_transforms_named_in_every_output(netc_cli):
    """A lesion halves the paths (Veit et al. 2016, 3: n residual blocks give 2^n paths; resnet56
    has 27), and the table, the diagram and the paths report name the lesioned network."""
    code, out, _ = netc_cli("paths", "resnet56", "--lesion", "layer3.4", "--format", "json")
    assert code == 0 and int(json.loads(out)["paths"]) == 2 ** 26 and "resnet56 (lesion layer3.4)" in out
    code, out, _ = netc_cli("paths", "resnet56", "--reorder", "layer3=0,2,1,3,4,5,6,7,8")
    assert code == 0 and out.startswith("resnet56 (reorder layer3 as 0,2,1,3,4,5,6,7,8): 134,217,728 paths")
    lesioned = netc.load("resnet56").lesion("layer3.4")
    assert "resnet56 (lesion layer3.4)" in lesioned.table()
    assert "resnet56 (lesion layer3.4)" in lesioned.render("dot")
    for command in (["table", "--depth", "1"], ["render"]):
        code, out, _ = netc_cli(command[0], "resnet56", "--lesion", "layer3.4", *command[1:])
        assert code == 0 and "resnet56 (lesion layer3.4)" in out, command


def test_lesion_vgg_layer_as_torchvision_without_it():
    """Veit et al. 2016, 4.1 delete single layers of VGG: netc's vgg16 without conv features.12
    computes torchvision's vgg16 with that layer replaced by an identity, from the same weights."""
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.vgg16().eval()
    lesioned_net = netc.load("vgg16", input_shape=(3, 32, 32)).lesion("features.12")
    lesioned = lesioned_net.build(init=False).eval()
    lesioned.load_state_dict(lesioned_net.kept(reference.state_dict()), strict=True)
    reference.features[12] = torch.nn.Identity()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(lesioned(x), reference(x))


def test_lesion_plain34_block():
    net = netc.load("plain34")
    lesioned = net.lesion("layer3.2")
    model = net.build(device="meta")
    assert net.params - lesioned.params == sum(
        p.numel() for k, p in model.named_parameters() if k.startswith("layer3.2."))
    assert lesioned.removed and all(s.startswith("layer3.2.") for s in lesioned.removed)


def test_readme_lesion_recipe_keeps_projection_shortcut():
    """The README's recipe, run as written, on a block with a projection shortcut: the lesioned
    model loads strictly and computes torchvision's resnet50 with that block's body left out."""
    import torchvision

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    recipe = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if ".lesion(" in b)
    torch.manual_seed(0)
    reference = torchvision.models.resnet50().eval()
    scope = {"netc": netc, "state": reference.state_dict()}
    exec(recipe, scope)  # noqa: S102 - the README's own text, run as a user would: defines `lesioned`
    lesioned = scope["lesioned"].eval()
    block = reference.layer2[0]
    reference.layer2[0] = torch.nn.Sequential(block.downsample, torch.nn.ReLU())  # the shortcut alone
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(lesioned(x), reference(x))


def test_paths_work_is_bounded(monkeypatch):
    from netc.analysis import paths

    monkeypatch.setattr(paths, "MAX_WORK", 1_000)  # resnet110 needs ~9,000 cell additions
    with pytest.raises(NetcError) as exc:
        count_paths(netc.load("resnet110"))
    assert exc.value.codes == ["limit"]


def test_residual_joins_are_structural(tmp_path):
    """Only an add joining a body and its shortcut is a residual block: two branches summed are
    two paths and no residual block, whatever the add is called; a template's `from: [body, input]`
    is one (MobileNet's inverted residual), as is a `residual:` with a projection shortcut."""
    spec = tmp_path / "branches.yaml"
    spec.write_text("""netc: 1
name: branches
input: [3, 8, 8]
templates:
  Skip:
    body:
      - {name: body, seq: [{conv: {out: 3, k: 3, p: 1}}, relu]}
      - {add: {}, from: [body, input]}
layers:
  - {name: a, conv: {out: 4, k: 1}}
  - {name: b, from: input, conv: {out: 4, k: 3, p: 1}}
  - {add: {}, from: [a, b]}
  - {conv: {out: 3, k: 1}}
  - {name: skip, use: Skip}
""")
    p = count_paths(netc.load(str(spec)))
    assert (p.count, p.residual_blocks) == (4, 1)  # 2 branches x (the skip's body or its shortcut)
    assert p.blocks.counts == (2, 2)  # through the skip's body on half of them
    lesioned = netc.load(str(spec)).lesion("skip")
    assert lesioned.removed == {"skip.body.0", "skip.body.1"}


def test_lesion_regnet_identity_block():
    """torchvision's ResBottleneckBlock without a projection is relu(x + f(x)) (the spec's `from:
    [input, f]`, a residual join): lesioning it leaves relu(x). Its projected blocks sum proj(x) +
    f(x) with a plain add (the spec runs proj first, as torchvision does), which joins two branches."""
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.regnet_y_400mf().eval()
    net = netc.load("regnet_y_400mf", input_shape=(3, 64, 64))
    assert count_paths(net).residual_blocks == 12  # 16 blocks, 4 of them projected
    lesioned_net = net.lesion("trunk_output.block2.block2-1")
    lesioned = lesioned_net.build(init=False).eval()
    lesioned.load_state_dict(lesioned_net.kept(reference.state_dict()), strict=True)
    reference.trunk_output.block2[1] = reference.trunk_output.block2[1].activation
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(lesioned(x), reference(x))
