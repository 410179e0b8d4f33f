"""`netc diff` on catalogue pairs whose differences the papers state: ResNet shortcut options A vs
C (He et al. 2015 §4.1), ResNet-50 v1 vs v1.5 (stride on the first 1x1 or on the 3x3), and VGG
configuration C vs D (1x1 vs 3x3 as the last conv of stages 3-5, Simonyan & Zisserman 2014 Table 1).
The expected deltas are computed here from the layer formulas, not taken from netc."""
import json
import re

import pytest

import netc
from netc.analysis.diff import diff
from tests.conftest import SPECS, run_without_torch

STAGES34 = [("layer1", 3, 64), ("layer2", 4, 128), ("layer3", 6, 256), ("layer4", 3, 512)]


def load(name):
    return netc.load(SPECS / f"{name}.yaml")


def test_resnet34_option_a_vs_c_is_exactly_the_projection_shortcuts():
    d = diff(load("resnet34_a"), load("resnet34_c"))
    grid = {"layer1": 56, "layer2": 28, "layer3": 14, "layer4": 7}
    expected = {}
    c_in = 64
    for stage, n, planes in STAGES34:
        for i in range(n):
            # a 1x1 projection (planes x c_in weights) and its batch norm (2 x planes), on the output grid
            expected[f"{stage}.{i}"] = (planes * c_in + 2 * planes, grid[stage] ** 2 * planes * c_in)
            c_in = planes
    assert [b.scope for b in d.blocks] == list(expected)
    for b in d.blocks:
        assert (b.delta("params"), b.delta("macs")) == expected[b.scope], b.scope
        assert b.a.shape == b.b.shape
        added = [c.scope for c in b.layers if c.status == "added"]
        assert added == [f"{b.scope}.downsample.0", f"{b.scope}.downsample.1"]
        # option A's zero-padding shortcut is what C's projection replaces where dimensions grow
        removed = [c.a.op for c in b.layers if c.status == "removed"]
        assert removed == (["pad_channels"] if b.scope in ("layer2.0", "layer3.0", "layer4.0") else [])
        assert not [c for c in b.layers if c.status == "changed"]
    assert sum(p for p, _ in expected.values()) == d.b.total.params - d.a.total.params


def test_resnet50_v15_vs_v1_moves_the_stride():
    d = diff(load("resnet50"), load("resnet50_v1"))
    assert [b.scope for b in d.blocks] == ["layer2.0", "layer3.0", "layer4.0"]
    for b, (h, c_in, planes) in zip(d.blocks, [(56, 256, 128), (28, 512, 256), (14, 1024, 512)]):
        # v1's conv1 (1x1, c_in -> planes) runs on the strided grid; the 3x3 has the same output either way
        assert b.delta("macs") == -((h * h - (h // 2) ** 2) * c_in * planes)
        assert b.delta("params") == 0 and b.a.shape == b.b.shape
        changed = {c.scope.rsplit(".", 1)[1]: c for c in b.layers}
        assert changed["conv1"].a.label == f"conv 1x1, {planes}" and changed["conv1"].b.label == f"conv 1x1/2, {planes}"
        assert changed["conv2"].a.label == f"conv 3x3/2, {planes}" and changed["conv2"].b.label == f"conv 3x3, {planes}"
        assert all(c.status == "changed" for c in b.layers)
        assert b.b.rf[0] > b.a.rf[0]  # striding earlier widens the receptive field of what follows


def test_vgg_c_vs_d_is_three_1x1_convs_becoming_3x3():
    d = diff(load("vgg16_c"), load("vgg16"))
    (b,) = d.blocks
    assert b.scope == "features"
    convs = [c for c in b.layers]
    assert [c.status for c in convs] == ["changed"] * 3
    # stages 3, 4, 5 end with c -> c convs on 56, 28, 14 grids: 3x3 has 8 c² more weights than 1x1
    for c, (ch, h) in zip(convs, [(256, 56), (512, 28), (512, 14)]):
        assert (c.a.label, c.b.label) == (f"conv 1x1, {ch}", f"conv 3x3, {ch}")
        assert c.b.cost.params - c.a.cost.params == 8 * ch * ch
        assert c.b.cost.macs - c.a.cost.macs == 8 * ch * ch * h * h
    assert b.delta("params") == 8 * (256 ** 2 + 2 * 512 ** 2)
    assert b.delta("activation_bytes") == 0


def test_one_spec_under_two_parameter_sets(netc_cli):
    code, out, _ = netc_cli("diff", "resnet18", "resnet18", "--set-b", "num_classes=10", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and [b["scope"] for b in doc["blocks"]] == ["(top level)"]
    (fc,) = doc["blocks"][0]["layers"]
    assert fc["a"]["scope"] == "fc" and fc["fields"] == ["label", "shape", "params", "MACs"]
    assert doc["blocks"][0]["delta"]["params"] == 10 * 513 - 1000 * 513


def test_identical_specs_have_no_difference(netc_cli):
    code, out, _ = netc_cli("diff", "resnet18", "resnet18")
    assert code == 0 and "0 blocks differ; layers: no layer changes" in out


def test_text_and_markdown(netc_cli):
    code, out, _ = netc_cli("diff", "resnet50", "resnet50_v1")
    assert code == 0
    assert out.splitlines()[0] == "resnet50 → resnet50_v1"
    assert re.search(r"^~ layer2\.0 \(Bottleneck\) +params 0 +MACs -77\.07 M", out, re.MULTILINE)
    code, md, _ = netc_cli("diff", "resnet50", "resnet50_v1", "--format", "md")
    assert "| ~ | `layer2.0` | 0 | -77.07 M |" in md


def test_bad_inputs_exit_2(netc_cli):
    code, out, err = netc_cli("diff", "resnet18", "resnet1")
    assert code == 2 and "did you mean" in err and out == ""
    code, _, err = netc_cli("diff", "resnet18", "resnet18", "--set-b", "nope=1")
    assert code == 2 and "no parameter 'nope'" in err


def test_diff_imports_no_torch():
    assert run_without_torch("diff", "resnet34_a", "resnet34_c", "--format", "json").strip().endswith("ok")


@pytest.mark.skipif(__import__("shutil").which("dot") is None, reason="graphviz 'dot' not installed")
def test_html_marks_the_changed_boxes(netc_cli, tmp_path):
    from netc.backends.render.view import build_view

    out = tmp_path / "d.html"
    code, _, _ = netc_cli("diff", "resnet50", "resnet50_v1", "--html", "-o", out)
    html = out.read_text()
    # one script (opening each diagram at its first change), allowed by its hash alone
    assert code == 0 and html.count("<svg") == 2 and html.count("<script") == 1
    assert "script-src 'sha256-" in html and "'unsafe-inline'; img-src" not in html.split("script-src")[1][:60]
    marked = re.findall(r'id="([ab])-(n\d+)" data-mark="(\w+)"', html)
    a = load("resnet50")
    view = build_view(a.graph, a.order)
    scopes_a = {a.graph.node(int(box[1:])).scope for side, box, _ in marked if side == "a" and box in view.boxes}
    # the 4 changed layers of each of the 3 downsampling blocks, marked in both diagrams
    assert len([m for m in marked if m[0] == "a"]) == len([m for m in marked if m[0] == "b"]) == 12
    assert {s.rsplit(".", 1)[1] for s in scopes_a} == {"conv1", "bn1", "2", "conv2"}
    assert {m[2] for m in marked} == {"changed"}
