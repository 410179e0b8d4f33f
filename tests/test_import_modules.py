"""Imports of the modules timm's CNN families build from, each verified exact against the module
built here from timm's/torch's own classes (outputs, parameters, state_dict keys in order) at an odd
and an even input size: TF-"same" padding (conv and pooling), weight-standardised convs, BatchNorm1d,
layer norms without a bias, hgnet's learned affine, ConvNeXt-V2's global response norm, ECA's 1-D
conv over the channels (and expand_as), BlurPool2d, torchvision's FrozenBatchNorm2d, and the functions
sub, truediv and pow, and layer scales kept in a module of their own."""
from __future__ import annotations

import math

import pytest
import torch

import netc
from netc.api import import_spec
from tests.conftest import pair
from tests.test_ops_v2 import assert_refused, load

TIMM = ("from timm.layers import (BlurPool2d, Conv2dSame, EcaModule, ScaledStdConv2d, ScaledStdConv2dSame, StdConv2d,\n"
        "                         StdConv2dSame, create_conv2d)\n"
        "from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame\n"
        "from timm.layers.grn import GlobalResponseNorm\nfrom timm.models.hgnet import LearnableAffineBlock\n"
        "from timm.models.metaformer import LayerNorm2dNoBias, LayerNormNoBias\n"
        "from torchvision.ops.misc import FrozenBatchNorm2d\nfrom timm.layers import LayerScale, LayerScale2d\n"
        "from timm.models.metaformer import Scale\n")
ODD = (3, 33, 31)  # verify also runs at an even size (a quarter larger, a multiple of 8: 48x40)


def import_layers(tmp_path, modules: str, input_shape=ODD, forward: str = ""):
    """import_spec of an nn.Sequential of `modules` (Python source, timm's layers imported), with
    `forward`'s body instead of the sequence's where given."""
    source = tmp_path / "layers.py"
    body = f"\n    def forward(self, x):\n{forward}" if forward else ""
    source.write_text(f"import torch\nimport torch.nn as nn\n{TIMM}\n\nclass Net(nn.Sequential):\n"
                      f"    def __init__(self):\n        super().__init__({modules})\n{body}", encoding="utf-8")
    return import_spec(f"{source}:Net", {}, input_shape)


GRN_FORWARD = ("        x = self[0](x).permute(0, 2, 3, 1)\n        x = self[1](x).permute(0, 3, 1, 2)\n"
               "        return self[2](x)\n")
ARITHMETIC = ("        a, b = self[0](x), self[1](x)\n        y = (a - b) / (torch.sigmoid(b) + torch.sigmoid(a)) + b.pow(2)\n"
              "        y = y.sub(a ** 3).div(torch.sigmoid(b) + torch.sigmoid(a * b))\n        return (y + a) / 2\n")
SCALES = ("        x = self[2](self[1](self[0](x))).permute(0, 2, 3, 1)\n"
          "        return self[4](self[3](x)).permute(0, 3, 1, 2)\n")
# (what, the nn.Sequential's modules, words the spec must hold, the forward's body where not the sequence's)
CASES = [
    ("tf_same", "Conv2dSame(3, 8, 3, 2), nn.ReLU(), MaxPool2dSame(3, 2), "
                "create_conv2d(8, 8, 5, stride=2, padding='same', depthwise=True), "
                "AvgPool2dSame(3, 2, count_include_pad=False), Conv2dSame(8, 4, (1, 4), 3)",
     ("conv: {out: 8, k: 3, s: 2, p: tf_same}", "maxpool: {k: 3, s: 2, p: tf_same}", "p: tf_same, groups: 8",
      "avgpool: {k: 3, s: 2, p: tf_same, count_include_pad: false}", "conv: {out: 4, k: [1, 4], s: 3, p: tf_same}"), ""),
    ("weight standardised", "StdConv2d(3, 8, 3, 2, eps=1e-5), nn.ReLU(), "
                            "ScaledStdConv2d(8, 16, 3, gamma=1.7015043497085571, eps=1e-6), "
                            "StdConv2dSame(16, 16, 3, 2, groups=4), ScaledStdConv2dSame(16, 8, 3, 2, bias=True, gamma=2.0)",
     ("ws: {eps: 1e-05}", "ws: {gain: true, gamma: 1.70150434970855", "p: tf_same, groups: 4, bias: false, ws: {}",
      "ws: {gain: true, gamma: 2.0}"), ""),
    ("norms and affine", "nn.Conv2d(3, 8, 3, 2), FrozenBatchNorm2d(8, eps=1e-3), LayerNorm2dNoBias(8), "
                         "LearnableAffineBlock(1.5, 0.2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), "
                         "nn.BatchNorm1d(8), LayerNormNoBias(8, eps=1e-5), nn.Linear(8, 4)",
     ("bn: {eps: 0.001, frozen: true}", "layernorm: {eps: 1e-06, bias: false}", "affine: {scale: 1.5, bias: 0.2}",
      "  - flatten\n  - bn\n", "layernorm: {over: last, bias: false}"), ""),
    # ConvNeXt-V2's GRN on a channels-last map (timm's blocks) and on an N×C×H×W one
    ("grn", "nn.Conv2d(3, 8, 3, 2), GlobalResponseNorm(8), GlobalResponseNorm(8, eps=1e-5, channels_last=False)",
     ('name: "1", grn: {}', "grn: {over: channels, eps: 1e-05}"), GRN_FORWARD),
    # timm's EcaModule: the mean over H, W viewed as 1×C, a 1-D conv along C, a sigmoid gate expanded onto the map
    ("eca", "nn.Conv2d(3, 16, 3, 2), EcaModule(16), EcaModule(kernel_size=5)",
     ("conv1d: {out: 1, k: $k", "use: EcaModule, args: {k: 5}, first: {k: 3}", "expand_as"), ""),
    ("blurpool", "nn.Conv2d(3, 8, 3), BlurPool2d(8), BlurPool2d(8, filt_size=5), "
                 "BlurPool2d(None, filt_size=4, stride=1, pad_mode='constant')",
     ("  - blurpool\n", "blurpool: {k: 5}", "blurpool: {k: 4, s: 1, pad_mode: constant}"), ""),
    # layer scale in its modules' spellings: timm's LayerScale2d, LayerScale (channels last), MetaFormer's Scale
    ("layer scales", "nn.Conv2d(3, 8, 3, 2), LayerScale2d(8, 1e-6), Scale(8), Scale(8, init_value=0.5, use_nchw=False), "
                     "LayerScale(8, 0.1)",
     ("channel_scale: {init: 1e-06}", "channel_scale: {init: 1.0, param: scale}",
      "channel_scale: {init: 0.5, over: last, param: scale}", "channel_scale: {init: 0.1, over: last}"), SCALES),
    ("sub truediv pow", "nn.Conv2d(3, 8, 3, 2), nn.Conv2d(3, 8, 3, 2)",
     ("sub: {}", "div: {}", "pow: {exponent: 2.0}", "pow: {exponent: 3.0}", "scale: {factor: 0.5}"), ARITHMETIC),
]


@pytest.mark.parametrize("modules, words, forward", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_imports_exact(tmp_path, modules, words, forward):
    """Verified exact at an odd and an even size, keys in order; the generated code agrees too."""
    text, verdict = import_layers(tmp_path, modules, forward=forward)
    for w in words:
        assert w in text, (w, text)
    assert verdict.verified and verdict.same_order, verdict.summary()
    assert [s[1:] for s in verdict.sizes] == [(33, 31), (48, 40)]
    net = netc.loads(text, "imported.yaml", input_shape=(3, 29, 35))
    ref, gen = pair(net, tmp_path, (3, 29, 35))
    x = torch.randn(2, 3, 29, 35, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (gen.eval()(x) - ref.eval()(x)).abs().max().item() <= 1e-5


# ResNeSt's split attention (`B, RC, H, W = x.shape; x.reshape(B, r, RC // r, H, W)`) and TResNet's
# space-to-depth (`x.view(N, C, H // bs, bs, W // bs, bs)`): sizes read off a map, passed on or divided
SIZES_READ = ("        x = self[0](x)\n        B, C, H, W = x.shape\n"
              "        y = x.reshape(B, 2, C // 2, H, W).sum(1)\n"
              "        s = self[1](x).view(B, C, H // 2, 2, W // 2, 2).permute(0, 3, 5, 1, 2, 4)\n"
              "        return s.reshape(B, C * 4, H // 2, W // 2) * self[2](nn.functional.avg_pool2d(y, 2))\n")


def test_reshapes_to_sizes_read_off_a_map_follow_the_input_size(tmp_path):
    """The heights and widths a forward reads off a map and passes to a reshape, as they are or
    through + - * // with a number, are expressions of the input size in the spec: the spec is
    exact at the second size too, where the traced numbers would not hold its elements."""
    text, verdict = import_layers(tmp_path, "nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(4, 32, 1)",
                                  (3, 36, 44), SIZES_READ)
    assert verdict.verified and verdict.same_order, verdict.summary()
    assert [s[1:] for s in verdict.sizes] == [(36, 44), (48, 56)]
    assert "$in_h + 1) // 2" in text and "// 2 // 2" not in text, text
    reshapes = [line for line in text.splitlines() if "reshape:" in line]
    assert len(reshapes) == 3 and all("$in_h" in r and "$in_w" in r for r in reshapes), reshapes


# MobileViT-v2's unfold and fold, then a strided conv whose output size is read again
FOLDED = ("        x = self[0](x)\n        B, C, H, W = x.shape\n"
          "        x = x.reshape(B, C, H // 2, 2, W // 2, 2).permute(0, 1, 3, 5, 2, 4)\n"
          "        x = self[1](x.reshape(B, C, H // 2 * 2, W // 2 * 2))\n"
          "        B, C, H, W = x.shape\n        return x.reshape(B, 2, C // 2, H, W).sum(1)\n")


def test_a_map_a_reshape_sized_keeps_following_the_input_size(tmp_path):
    """A map whose size a reshape set from sizes read off maps has that size as its grid, so a
    convolution after it and a size read from that follow the input too (MobileViT-v2's stages
    after its first fold)."""
    text, verdict = import_layers(tmp_path, "nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2)", (3, 36, 44), FOLDED)
    assert verdict.verified and verdict.same_order, verdict.summary()
    assert [s[1:] for s in verdict.sizes] == [(36, 44), (48, 56)]
    # the 3x3/2 conv without padding after the fold: (n - 3) // 2 + 1 of the fold's size n
    assert '"((((($in_h + 1) // 2) // 2) * 2) - 1) // 2"' in text, text


def test_size_arithmetic_keeps_the_expression():
    """A size read off a map stays a size through + - * // with a number and through the ceiling or
    floor of its true division (MobileViT-v2's `math.ceil(H / patch) * patch`): its expression gives
    the number plain integers give, at every input size; anything else is a plain number."""
    from netc.interop.concrete import InputSize

    def computed(h):
        return (h // 2, h * 4, 3 + h, h - 1, 2 * (h // 2), math.ceil(h / 3) * 3, math.floor(h / 2), h * (h // 2))

    for in_h in (45, 46, 47, 100, 224):
        plain = computed((in_h + 1) // 2)
        sizes = computed(InputSize((in_h + 1) // 2, "($in_h + 1) // 2"))
        assert all(isinstance(v, InputSize) for v in sizes)
        assert [int(v) for v in sizes] == list(plain)
        assert [eval(v.expr.replace("$in_h", str(in_h))) for v in sizes] == list(plain)
    h = InputSize(23, "$in_h")
    assert [type(v) for v in (h % 3, -h, h // 2.0, h * True, h / h, int(h / 2))] == [int, int, float, int, float, int]


def test_scaled_std_conv_keys_and_parameters(tmp_path):
    """The gain is a parameter per filter after weight and bias, as timm's."""
    from timm.layers import ScaledStdConv2d

    net = netc.loads("netc: 1\nname: ws\ninput: [3, 9, 9]\nlayers:\n"
                     "  - {name: c, conv: {out: 8, k: 3, ws: {gain: true}}}\n", "ws.yaml")
    built = net.build()
    source = ScaledStdConv2d(3, 8, 3, padding=0)
    assert [(k, tuple(v.shape)) for k, v in built.state_dict().items()] == [
        (f"c.{k}", tuple(v.shape)) for k, v in source.state_dict().items()]
    assert net.params == sum(p.numel() for p in source.parameters())
    assert torch.equal(built.state_dict()["c.gain"], torch.ones(8, 1, 1, 1))  # initialised as timm's


def test_a_subclass_computing_something_else_is_refused(tmp_path):
    source = tmp_path / "odd.py"
    source.write_text("import torch.nn as nn\n\n\nclass Doubled(nn.Conv2d):\n    def forward(self, x):\n"
                      "        return super().forward(x) * 2\n\n\nclass Net(nn.Sequential):\n"
                      "    def __init__(self):\n        super().__init__(Doubled(3, 8, 3, 2))\n", encoding="utf-8")
    with pytest.raises(netc.NetcError) as e:
        import_spec(f"{source}:Net", {}, ODD)
    assert "Doubled (a Conv2d with its own forward that computes something else)" in str(e.value)


@pytest.mark.parametrize("layer, words", [
    ("{name: c, sepconv: {out: 4, k: 3, p: tf_same}}", "p"),
    ("{name: c, conv: {out: 4, k: 3, ws: {eps: 0.0}}}", "eps"),
    ("{name: c, conv: {out: 4, k: 3, ws: {gains: true}}}", "gains"),
    ("{name: c, maxpool: {k: 3, p: same}}", "p"),
    ("{name: c, layernorm: {affine: false, bias: false}}", "bias: false goes with affine: true"),
    ("{name: c, grn: {over: rows}}", "over"),
    ("{name: c, affine: {scale: x}}", "scale"),
    ("{name: c, conv1d: {out: 4, k: 3}}", "conv1d needs a C×L input"),
    ("{name: c, pow: {}}", "exponent"),
    ("{name: c, sub: {}}", "sub"),
    ("{name: c, blurpool: {k: 1}}", "k"),
    ("{name: c, bn: {frozen: true, affine: false}}", "frozen: true keeps weight and bias buffers"),
    ("{name: c, channel_scale: {param: weight}}", "param"),
])
def test_bad_uses_are_located(tmp_path, layer, words):
    assert_refused(tmp_path, f"  - {layer}\n", words)


def test_grn_of_a_vector_is_located(tmp_path):
    with pytest.raises(netc.NetcError) as e:
        load(tmp_path, "  - {name: c, flatten: {}}\n  - {name: g, grn: {}}\n")
    assert "probe.yaml:6:5: error[shape]: 'g' (grn): grn needs a 3-d input" in str(e.value)
