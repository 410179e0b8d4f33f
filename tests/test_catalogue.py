"""The catalogue: every bundled spec checks, builds, and matches its reference.

References are computed here from torchvision / timm models built with random init (params;
MACs = FlopCounterMode / 2 on the meta device; state_dict keys and shapes; outputs), from
torchvision models altered the way the paper describes the variant (ResNet v1 strides, option
A/C shortcuts, VGG A-LRN and C), or, where no implementation exists, from the numbers of the
papers and of issue 7 (cited beside each).
"""
import contextlib
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netc
from netc import catalogue
from tests.conftest import ROOT, reference_model, run_without_torch

SPEC_FILES = catalogue.spec_files()
NAMES = [p.stem for p in SPEC_FILES]


# --- references ---------------------------------------------------------------------------

def resnet_v1(depth):
    """torchvision's ResNet (v1.5) with each stage's stride moved back to the first 1x1 conv:
    the original ResNet of He et al. 2015."""
    m = reference_model(f"resnet{depth}")
    for layer in (m.layer2, m.layer3, m.layer4):
        block = layer[0]
        block.conv1.stride, block.conv2.stride = block.conv2.stride, block.conv1.stride
    return m


class ZeroPadShortcut(nn.Module):
    """Option A (He et al. 2015, 4.1): subsample by 2, zero-pad the new channels (half each side)."""

    def __init__(self, planes):
        super().__init__()
        self.planes = planes

    def forward(self, x):
        extra = self.planes - x.shape[1]
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, extra // 2, extra - extra // 2))


def resnet34_option(option):
    """torchvision resnet34 (option B) turned into option A or C of He et al. 2015, 4.1."""
    m = reference_model("resnet34")
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        for block in layer:
            planes = block.conv2.out_channels
            if option == "A" and block.downsample is not None:
                block.downsample = ZeroPadShortcut(planes)
            elif option == "C" and block.downsample is None:
                block.downsample = nn.Sequential(nn.Conv2d(planes, planes, 1, bias=False), nn.BatchNorm2d(planes))
    return m


def vgg11_lrn():
    """VGG A-LRN (Table 1): configuration A with LRN (AlexNet's settings) after the first conv's ReLU."""
    m = reference_model("vgg11")
    f = list(m.features)
    m.features = nn.Sequential(*f[:2], nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), *f[2:])
    return m


def vgg16_c():
    """VGG C (Table 1): configuration D whose third conv in stages 3, 4 and 5 is 1x1."""
    m = reference_model("vgg16")
    for i in (14, 21, 28):
        c = m.features[i].out_channels
        m.features[i] = nn.Conv2d(c, c, 1)
    return m


CONSTRUCTED = {
    "resnet50_v1": lambda: resnet_v1(50),
    "resnet101_v1": lambda: resnet_v1(101),
    "resnet152_v1": lambda: resnet_v1(152),
    "resnet34_a": lambda: resnet34_option("A"),
    "resnet34_c": lambda: resnet34_option("C"),
    "vgg11_lrn": vgg11_lrn,
    "vgg16_c": vgg16_c,
}

# numbers from the papers / issue 7 where no implementation exists to compute them from
PAPER_PARAMS = {
    "alexnet_grouped": 60_965_224,  # Krizhevsky et al. 2012, two towers (groups=2 on conv2/4/5)
    "inception_v2": 11_295_240,     # BN-Inception as Cadene's pretrainedmodels `bninception`
    "plain34": 21_623_848,          # He et al. 2015, plain-34
    "resnet34_a": 21_623_848,       # option A: parameter-free shortcuts, same as plain-34
    "vgg11_lrn": 132_863_336,       # Simonyan & Zisserman 2014, A-LRN
    "vgg16_c": 133_638_952,         # Simonyan & Zisserman 2014, C
    "vgg16_fcn": 138_357_544,       # VGG-D
    "resnet20": 269_722,            # CIFAR ResNet-20 (option A)
    "resnet1202": 19_421_274,       # CIFAR ResNet-1202 (option A)
    "alexnet_fcn": 61_100_840,      # torchvision's alexnet: its FC layers as 6x6 and 1x1 convs hold the same weights
    "googlenet_v1": 13_378_280,     # Szegedy et al. 2014 as the BVLC Caffe model (bvlc_googlenet), aux heads included
}
PAPER_MACS = {
    "resnet50_v1": 3_857_973_248,
    "resnet101_v1": 7_570_194_432,
    "resnet152_v1": 11_282_415_616,
    "vgg16_fcn": 15_470_264_320,    # VGG-D at 224: the FC layers as 7x7 and 1x1 convs cost the same
    "alexnet_fcn": 714_188_480,     # torchvision's alexnet (its GFLOPS 0.71) at 224: the same per position
}
CIFAR_N = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18, "resnet1202": 200}


def reference_of(name, device=None):
    """The reference model of a spec (constructed above, or timm's / torchvision's as its `meta:`
    names), on `device` (None: the default device), or None."""
    if name in CONSTRUCTED:
        with torch.device(device) if device else contextlib.nullcontext():
            return CONSTRUCTED[name]()
    meta = netc.load(name).spec.meta
    source = next((s for s in ("timm", "torchvision") if s in meta), None)
    return reference_model(meta[source], source, device) if source else None


def _meta(name):
    try:
        return netc.load(name).spec.meta
    except netc.NetcError:  # reported by test_spec_checks_and_documents_itself, not at collection
        return {}


REFERENCED = [n for n in NAMES if n in CONSTRUCTED or {"timm", "torchvision"} & set(_meta(n))]


def ref_macs(model, input_shape):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.empty(1, *input_shape, device="meta"))
    return counter.get_total_flops() // 2


# --- every spec -----------------------------------------------------------------------------

def test_catalogue_is_complete():
    # issue 7's list, one spec each (vgg A/B/D/E with and without BN, ResNet v1.5 and v1, ...)
    wanted = {"lenet5", "alexnet", "alexnet_grouped", "alexnet_torchvision", "vgg11", "vgg11_lrn", "vgg13",
              "googlenet", "googlenet_v1", "inception_v3", "vgg16_c", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "vgg16_fcn",
              "inception_v2", "inception_v4", "inception_resnet_v1", "inception_resnet_v2", "xception",
              "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50_v1", "resnet101_v1",
              "resnet152_v1", "resnet34_a", "resnet34_b", "resnet34_c", "plain34", *CIFAR_N,
              # issue 13
              "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
              "densenet121", "shufflenet_v2_x1_0", "convnext_tiny",
              "efficientnet_b0", "efficientnet_v2_s", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_y_400mf",
              # issue 28
              "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
              "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"}
    missing = wanted - set(NAMES)
    assert not missing, f"missing specs: {sorted(missing)}"


@pytest.mark.parametrize("name", NAMES)
def test_spec_checks_and_documents_itself(name):
    net = netc.load(name)  # by bundled name
    assert net.name == name
    desc = net.spec.description
    assert desc and "\n" not in desc.strip() and len(desc) <= 300
    assert "paper" in net.spec.meta
    assert net.params > 0 and net.macs > 0


@pytest.mark.parametrize("name", NAMES)
def test_spec_builds_on_meta(name):
    from netc.backends.torch.module import confirm_shapes

    net = netc.load(name)
    module = net.build(device="meta")
    assert sum(p.numel() for p in module.parameters()) == net.params
    assert confirm_shapes(module, net) > 0


@pytest.mark.parametrize("name", REFERENCED)
def test_matches_reference_model(name):
    """Equal params, MACs at the spec's input, and state_dict keys and shapes (strict load)."""
    net = netc.load(name)
    ref = reference_of(name, "meta")
    assert net.params == sum(p.numel() for p in ref.parameters())
    assert net.macs == ref_macs(ref, net.input_shape)
    ours = net.build(device="meta")
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)  # raises on any missing key or size


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_params_match_paper(name):
    assert netc.load(name).params == PAPER_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PAPER_MACS))
def test_macs_match_paper(name):
    assert netc.load(name).macs == PAPER_MACS[name]


@pytest.mark.parametrize("name", sorted(CIFAR_N))
def test_cifar_resnet_params(name):
    """He et al. 2015, 4.2: 6n+2 layers; 3x3 convs (no bias) with BN, 16/32/64 filters, option A."""
    n = CIFAR_N[name]
    conv = lambda cin, cout: 9 * cin * cout + 2 * cout  # noqa: E731  conv + BN
    expected = conv(3, 16)
    for c_in, c in ((16, 16), (16, 32), (32, 64)):
        expected += conv(c_in, c) + conv(c, c) + (n - 1) * 2 * conv(c, c)
    expected += 64 * 10 + 10
    net = netc.load(name)
    assert net.params == expected
    assert int(re.search(r"\d+", name).group()) == 6 * n + 2 == sum(d.op in ("conv", "linear") for _, d in net.nodes())


def test_googlenet_v1_without_aux_heads():
    # Szegedy et al. 2014, Table 1: the network proper (the BVLC model minus loss1/loss2)
    assert netc.load("googlenet_v1", {"aux_logits": False}).params == 6_998_552


def test_inception_resnet_v1_follows_the_paper():
    # Szegedy et al. 2016: stem 35x35x256 (Fig. 14), 5 x A, Reduction-A to 17x17x896 (Fig. 7, Table 1),
    # 10 x B, Reduction-B to 8x8x1792 (Fig. 12), 5 x C
    net = netc.load("inception_resnet_v1")
    shape = {d.scope: d.shape for _, d in net.nodes()}
    assert shape["conv2d_4b.conv"] == (256, 35, 35)
    assert shape["mixed_6a._cat"] == (896, 17, 17)
    assert shape["mixed_7a._cat"] == (1792, 8, 8)
    blocks = net.graph.blocks
    assert [blocks[s].repeat for s in ("repeat", "repeat_1", "repeat_2")] == [5, 10, 5]
    scales = sorted({d.attrs.factor for _, d in net.nodes() if d.op == "scale"})
    assert scales == [0.1, 0.17, 0.2]


def test_alexnet_grouped_towers():
    net = netc.load("alexnet_grouped")
    groups = [d.attrs.groups for _, d in net.nodes() if d.op == "conv"]
    assert groups == [1, 2, 1, 2, 2]  # conv3 and the FC layers connect both towers
    ungrouped = netc.load("alexnet")
    assert [d.shape for _, d in net.nodes()] == [d.shape for _, d in ungrouped.nodes()]


@pytest.mark.parametrize("size", [224, 256, 384])
def test_vgg16_fcn_accepts_any_input_from_224(size):
    net = netc.load("vgg16_fcn", input_shape=(3, size, size))
    scores = next(d for _, d in net.nodes() if d.scope == "classifier.6")
    assert scores.shape == (1000, (size - 224) // 32 + 1, (size - 224) // 32 + 1)  # the class score map
    assert net.graph.node(net.outputs[0][1]).shape == (1000,)


# --- same outputs as the reference (CPU, eval, batch 2, the smallest valid input) ------------

# spec -> a small input side the reference accepts (the Inception stems need at least 75). The other
# torchvision specs are compared in tests/test_torch_interop.py.
SAME_OUTPUTS = {
    "inception_v4": 75, "inception_resnet_v2": 75, "xception": 71,
    "resnet34_a": 32, "resnet34_b": 32, "resnet34_c": 32, "resnet50_v1": 32, "vgg11_lrn": 32, "vgg16_c": 32,
}


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _outputs(ours, ref, size):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    ours.eval(), ref.eval()
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == b.shape
    return a, b


@pytest.mark.parametrize("name", sorted(SAME_OUTPUTS))
def test_same_outputs_as_reference(name):
    torch.manual_seed(0)
    size = SAME_OUTPUTS[name]
    ref = reference_of(name)
    _randomise_bn(ref)
    ours = netc.load(name, input_shape=(3, size, size)).build(device="cpu", init=False)
    ours.load_state_dict(ref.state_dict(), strict=True)
    a, b = _outputs(ours, ref, size)
    assert (a - b).abs().max().item() <= 1e-5


def test_vgg16_fcn_scores_equal_vgg16_at_224():
    """Dense evaluation (Simonyan & Zisserman 2014, 3.2): VGG-D's FC weights reshaped into convs
    give the same class scores at 224 (up to float summation order)."""
    torch.manual_seed(0)
    ref = reference_model("vgg16")
    state = {k: (v.reshape(v.shape[0], -1, 7, 7) if k == "classifier.0.weight" else
                 v[..., None, None] if k in ("classifier.3.weight", "classifier.6.weight") else v)
             for k, v in ref.state_dict().items()}
    ours = netc.load("vgg16_fcn").build(device="cpu", init=False)
    ours.load_state_dict(state, strict=True)
    a, b = _outputs(ours, ref, 224)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


# --- netc list and the README table --------------------------------------------------------

def test_readme_catalogue_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert catalogue.current_block(readme) == catalogue.block(catalogue.to_markdown(catalogue.entries())), (
        "the README's catalogue table is stale; regenerate it with: "
        ".venv/bin/netc list --format md --update README.md")


def test_list_text_and_markdown(netc_cli):
    code, out, _ = netc_cli("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["spec", "input", "params", "MACs"]
    assert [line.split()[0] for line in lines[1:-1]] == NAMES
    resnet50 = next(line for line in lines if line.startswith("resnet50 "))
    assert "25,557,032" in resnet50 and "4,089,184,256" in resnet50
    code, md, _ = netc_cli("list", "--format", "md")
    assert code == 0 and "| `xception` | 3×299×299 | 22,855,952 |" in md


def test_list_update_rewrites_only_the_block(netc_cli, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{catalogue.BEGIN}\nold table\n{catalogue.END}\n\nafter\n")
    code, out, _ = netc_cli("list", "--update", readme)
    assert code == 0 and "updated" in out
    text = readme.read_text()
    assert text.startswith("# title\n\n") and text.endswith("\n\nafter\n") and "old table" not in text
    assert "| `resnet1202` |" in text
    assert "already current" in netc_cli("list", "--update", readme)[1]
    readme.write_text("no markers\n")
    code, _, err = netc_cli("list", "--update", readme)
    assert code == 2 and "catalogue markers" in err and readme.read_text() == "no markers\n"


def test_list_imports_no_torch():
    assert '"name": "resnet34_c"' in run_without_torch("list", "--format", "json")


def test_check_resolves_bundled_name(netc_cli):
    code, out, _ = netc_cli("check", "-q", "resnet34_a")
    assert code == 0 and "21,623,848" in out
    code, _, err = netc_cli("check", "resnet34_d")
    assert code == 2 and "did you mean" in err and "resnet34_" in err


def test_build_resolves_bundled_name(netc_cli, tmp_path):
    code, out, _ = netc_cli("build", "-q", "resnet20", "--device", "cpu", "--codegen-dir", tmp_path)
    assert code == 0 and "269,722" in out
    assert (tmp_path / "resnet20.py").exists()
