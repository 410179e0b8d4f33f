"""The learned and rearranging upsamplers: conv_transpose against nn.ConvTranspose2d built here
from the same attributes (outputs on the same weights, parameter counts, MACs as torch's flop
counter counts them), pixel_shuffle / pixel_unshuffle against torch's; the receptive-field table,
generated code, ONNX and import."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import netc
from tests.test_ops_v2 import assert_close, assert_refused, built, load, macs_of, x_of

# (attributes as written in a spec, the same as nn.ConvTranspose2d keywords), on an 8x5x6 input
CASES = [
    ("{out: 4, k: 2, s: 2}", dict(out_channels=4, kernel_size=2, stride=2)),
    ("{out: 6, k: 3, s: 2, p: 1, output_padding: 1}", dict(out_channels=6, kernel_size=3, stride=2, padding=1,
                                                          output_padding=1)),
    ("{out: 4, k: [3, 1], s: [1, 3], p: [1, 0], output_padding: [0, 2], bias: false}",
     dict(out_channels=4, kernel_size=(3, 1), stride=(1, 3), padding=(1, 0), output_padding=(0, 2), bias=False)),
    ("{out: 8, k: 3, s: 2, groups: 4}", dict(out_channels=8, kernel_size=3, stride=2, groups=4)),
    ("{out: 2, k: 3, d: 2, p: 2, s: 3, output_padding: 2}", dict(out_channels=2, kernel_size=3, dilation=2,
                                                                padding=2, stride=3, output_padding=2)),
]


@pytest.mark.parametrize("attrs, kw", CASES)
def test_conv_transpose_is_torch(tmp_path, attrs, kw):
    net = load(tmp_path, f"  - {{name: up, conv_transpose: {attrs}}}\n", "[8, 5, 6]")
    m = built(net)
    ref = nn.ConvTranspose2d(8, **kw)
    ref.load_state_dict(m.up.state_dict(), strict=True)
    x = x_of(8, 5, 6)
    with torch.no_grad():
        want = ref(x)
        assert_close(m(x), want, 0)
    d = net.graph.node(net.outputs[0][1])
    assert d.shape == tuple(want.shape[1:])
    assert d.params == sum(p.numel() for p in ref.parameters())
    assert d.macs == macs_of(ref, x[:1])


def test_receptive_field_runs_on_the_finer_grid(tmp_path):
    """A transposed conv is a stride-1 conv over the input upsampled s-fold: the jump divides by s,
    then the window widens the receptive field by d(k-1) of the finer jump."""
    from netc.analysis.cost import analyse

    net = load(tmp_path, "  - {name: down, conv: {out: 8, k: 3, s: 4, p: 1}}\n"
                         "  - {name: up, conv_transpose: {out: 8, k: 3, s: 2, p: 1, output_padding: 1}}\n"
                         "  - {name: up2, conv_transpose: {out: 8, k: 2, s: 2}}\n", "[3, 16, 16]")
    rows = {r.scope: r for r in analyse(net).rows}
    assert (rows["down"].rf, rows["down"].jump) == ((3, 3), (4, 4))
    assert (rows["up"].rf, rows["up"].jump) == ((3 + 2 * 2, 3 + 2 * 2), (2, 2))
    assert (rows["up2"].rf, rows["up2"].jump) == ((7 + 1, 7 + 1), (1, 1))
    assert net.features(["down", "up", "up2"]).reduction() == [4, 2, 1]


@pytest.mark.parametrize("attrs, words", [
    ("{out: 4, k: 3, s: 2, output_padding: 2}", "output_padding 2 must be smaller than the stride 2"),
    ("{out: 4, k: 3, groups: 3}", "groups=3 does not divide the 8 input channels"),
    ("{out: 6, k: 3, groups: 4}", "groups=4 does not divide the 6 output channels"),
    ("{out: 4, k: 1, p: 3}", "crops the 6×6 input's 6×6 output to nothing"),
    ("{out: 4, k: 3, p: same}", "p"),
    ("{out: 4}", "k"),
])
def test_conv_transpose_errors(tmp_path, attrs, words):
    assert_refused(tmp_path, f"  - {{name: up, conv_transpose: {attrs}}}\n", words)


DECODER = ("params: {c: 8}\nlayers:\n"
           "  - {name: down, conv: {out: $c, k: 3, s: 2, p: 1}}\n"
           "  - {name: up, conv_transpose: {out: '$c // 2', k: 3, s: 2, p: 1, output_padding: 1, groups: 2}}\n"
           "  - {name: skip, from: input, conv: {out: '$c // 2', k: 1}}\n"
           "  - {name: join, from: [up, skip], cat: {}}\n"
           "  - {name: head, conv_transpose: {out: 3, k: [1, 3], p: [0, 1], bias: false}}\n")


def test_conv_transpose_in_generated_code_and_onnx(tmp_path):
    from tests.conftest import pair

    path = tmp_path / "dec.yaml"
    path.write_text("netc: 1\nname: dec\ninput: [3, 8, 10]\n" + DECODER, encoding="utf-8")
    net = netc.load(path)
    ref, gen = pair(net, tmp_path)
    x = x_of(3, 8, 10)
    with torch.no_grad():
        assert_close(gen.eval()(x), ref.eval()(x), 0)
    code = net.codegen()
    assert "nn.ConvTranspose2d(c,c//2,kernel_size=3,stride=2,padding=1,output_padding=1,groups=2)" in "".join(
        code.split())
    verdict = net.export_onnx(tmp_path / "dec.onnx", module=ref, dynamic_batch=True)
    assert max(verdict.max_diff.values()) <= 1e-5


def test_import_maps_conv_transpose(tmp_path):
    from tests.test_import import import_sequential

    text, verdict = import_sequential(tmp_path, "nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), "
                                      "nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, bias=False)",
                                      (3, 8, 8))
    assert "conv_transpose: {out: 4, k: 3, s: 2, p: 1, output_padding: 1, bias: false}" in text
    assert verdict.same_order and verdict.max_diff <= 1e-5


def test_pixel_shuffles_are_torch(tmp_path):
    """ESPCN's sub-pixel step and a space-to-depth stem: outputs, shapes, and the table's jump
    (a shuffle by r divides it by r; an unshuffle is an r x r window at stride r)."""
    from netc.analysis.cost import analyse

    net = load(tmp_path, "  - {name: down, conv: {out: 8, k: 3, s: 2, p: 1}}\n"
                         "  - {name: up, pixel_shuffle: {factor: 2}}\n"
                         "  - {name: s2d, pixel_unshuffle: {factor: 3}, output: s2d}\n"
                         "  - {name: tail, from: up, pixel_unshuffle: {factor: 2}}\n", "[3, 12, 6]")
    m = built(net)
    x = x_of(3, 12, 6)
    with torch.no_grad():
        up = nn.PixelShuffle(2)(m.down(x))
        out = m(x)
    assert_close(out.s2d, nn.functional.pixel_unshuffle(up, 3), 0)
    assert_close(out.out, nn.PixelUnshuffle(2)(up), 0)
    rows = {r.scope: r for r in analyse(net).rows}
    assert rows["up"].shape == (2, 12, 6) and rows["s2d"].shape == (18, 4, 2)
    assert (rows["down"].jump, rows["up"].jump, rows["s2d"].jump, rows["tail"].jump) == ((2, 2), (1, 1), (3, 3), (2, 2))
    assert rows["s2d"].rf == (3 + 2, 3 + 2) and rows["up"].rf == (3, 3)


@pytest.mark.parametrize("layer, words", [
    ("{pixel_shuffle: {factor: 3}}", "pixel_shuffle by 3 needs channels divisible by 9, got 8"),
    ("{pixel_unshuffle: {factor: 4}}", "pixel_unshuffle by 4 needs a height and width divisible by it, got 6×6"),
    ("{pixel_shuffle: {factor: 0}}", "factor"),
    ("pixel_shuffle", "factor"),
])
def test_pixel_shuffle_errors(tmp_path, layer, words):
    assert_refused(tmp_path, f"  - {layer}\n", words)


def test_pixel_shuffles_in_generated_code_onnx_and_import(tmp_path):
    from tests.conftest import pair
    from tests.test_import import import_sequential

    path = tmp_path / "espcn.yaml"
    path.write_text("netc: 1\nname: espcn\ninput: [3, 8, 8]\nparams: {r: 2}\nlayers:\n"
                    "  - {pixel_unshuffle: {factor: 2}}\n  - {conv: {out: 3 * $r * $r * 4, k: 3, p: 1}}\n"
                    "  - {pixel_shuffle: {factor: $r * 2}}\n", encoding="utf-8")
    net = netc.load(path)
    ref, gen = pair(net, tmp_path)
    x = x_of(3, 8, 8)
    with torch.no_grad():
        assert_close(gen.eval()(x), ref.eval()(x), 0)
    assert "nn.PixelShuffle(r * 2)" in net.codegen()
    verdict = net.export_onnx(tmp_path / "espcn.onnx", module=ref, dynamic_batch=True)
    assert max(verdict.max_diff.values()) <= 1e-5
    text, verdict = import_sequential(tmp_path, "nn.PixelUnshuffle(2), nn.Conv2d(12, 12, 1), nn.PixelShuffle(2)",
                                      (3, 8, 8))
    assert "pixel_unshuffle: {factor: 2}" in text and "pixel_shuffle: {factor: 2}" in text and verdict.max_diff <= 1e-6
