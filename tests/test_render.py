"""netc render: DOT for every bundled spec, collapsing by depth, escaping, formats and the CLI."""
import os
import shutil
import stat
import subprocess
import threading
import xml.etree.ElementTree as ET

import pytest

import netc
from netc.backends.render.dot import quoted
from netc.backends.render import dot_source, render
from netc.backends.render.view import build_view
from netc.errors import NetcError
from tests.conftest import SPECS, run_without_torch

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
ALL_SPECS = sorted(p.stem for p in SPECS.glob("*.yaml"))
# laying out thousands of boxes takes dot tens of seconds: such specs render collapsed
FULL_RENDER_MAX_BOXES = 1500

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed (make setup)")


def svg_of(source: str) -> ET.Element:
    done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return ET.fromstring(done.stdout)  # also proves the SVG is well-formed XML


def groups(svg: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == cls]


def texts(svg: ET.Element) -> list[str]:
    return [t.text for t in svg.iter(f"{SVG}text")]


@needs_dot
@pytest.mark.parametrize("name", ALL_SPECS)
def test_every_bundled_spec_renders(name):
    net = netc.load(SPECS / f"{name}.yaml")
    depth = None
    view = build_view(net.graph, net.order)
    # uncollapsed, every op is a box, plus the input and one box per named output
    assert len(view.boxes) == len(net.order) + len(net.outputs)
    assert len(view.clusters) == len(net.graph.blocks)
    if len(view.boxes) > FULL_RENDER_MAX_BOXES:
        depth = 2
        view = build_view(net.graph, net.order, depth)
    svg = svg_of(dot_source(net, depth))
    assert {g.get("id") for g in groups(svg, "node")} == set(view.boxes)
    assert {g.get("id") for g in groups(svg, "cluster")} == {c.id for c in view.clusters.values()}
    assert len(groups(svg, "edge")) == len(view.edges)


RESNET50_LAYERS = {"layer1": ("Bottleneck ×3", "256×56×56"), "layer2": ("Bottleneck ×4", "512×28×28"),
                   "layer3": ("Bottleneck ×6", "1024×14×14"), "layer4": ("Bottleneck ×3", "2048×7×7")}


def test_resnet50_collapse_levels():
    net = netc.load(SPECS / "resnet50.yaml")
    blocks = [3, 4, 6, 3]  # bottlenecks per stage (He et al. 2015, Table 1)

    full = build_view(net.graph, net.order)
    # stem conv1/bn1/relu/maxpool (4) + per bottleneck conv,bn,relu ×2 + conv,bn + add + relu (10)
    # + one projection conv,bn per stage (2 each) + avgpool, flatten, fc; then input and output
    assert len(full.boxes) == 4 + 10 * sum(blocks) + 2 * 4 + 3 + 2
    # clusters: 4 stages, 16 bottlenecks, 4 downsample seqs
    assert len(full.clusters) == 4 + sum(blocks) + 4
    assert sum(b.kind == "add" for b in full.boxes.values()) == sum(blocks)

    one = build_view(net.graph, net.order, 1)
    # the four stages become single boxes; nothing is left to cluster
    assert len(one.boxes) == 1 + 4 + 4 + 3 + 1
    assert not one.clusters
    stages = {b.name: b.title for b in one.boxes.values() if b.kind == "block"}
    assert stages == {k: v[0] for k, v in RESNET50_LAYERS.items()}
    # an edge leaving a stage carries the stage's output shape (planes × 4 channels)
    out_of = {one.boxes[e.src].name: e.label for e in one.edges if one.boxes[e.src].kind == "block"}
    assert out_of == {k: v[1] for k, v in RESNET50_LAYERS.items()}

    two = build_view(net.graph, net.order, 2)
    # stages stay clusters, each bottleneck is one box (not merged: a repeat already says ×n)
    assert len(two.boxes) == 1 + 4 + sum(blocks) + 3 + 1
    assert set(two.clusters) == set(RESNET50_LAYERS)
    assert len(build_view(net.graph, net.order, 3).boxes) == len(full.boxes) - 4 * 2 + 4  # downsample seqs


MINI = """\
netc: 1
name: mini
input: [3, 32, 32]
templates:
  Block:
    args: {c: int}
    body:
      residual:
        body: [{name: conv, conv: {out: $c, k: 3, p: 1}}, relu]
  Mix:
    body:
      concat:
        - {name: a, conv: {out: 4, k: 1}}
        - {name: b, seq: [{conv: {out: 4, k: 1}}, {conv: {out: 4, k: 3, p: 1}}]}
layers:
  - {name: stem, conv: {out: 8, k: 3, p: 1}}
  - {name: s1, use: Block, args: {c: 8}}
  - {name: s2, use: Block, args: {c: 8}}
  - {name: s3, use: Block, args: {c: 8}}
  - {name: s4, use: Block, args: {c: 8}, if: $four}
  - {name: mix, use: Mix}
  - {name: head, side: {seq: [gap, flatten, {linear: {out: 10}}]}, output: aux, aux: true}
  - gap
  - flatten
  - {name: fc, linear: {out: 10}}
"""


def mini(four=False):
    return netc.loads(MINI.replace("$four", "true" if four else "false"), "mini.yaml")


def test_mini_depths_merge_identical_instances_and_mark_aux():
    net = mini()
    full = build_view(net.graph, net.order)
    assert len(full.boxes) == 20 + 1 + 2  # 20 ops, input, outputs out and aux
    assert set(full.clusters) == {"s1", "s2", "s3", "mix", "mix.b", "head"}
    assert full.clusters["head"].aux and not full.clusters["mix"].aux
    kinds = [b.kind for b in full.boxes.values()]
    assert kinds.count("add") == 3 and kinds.count("cat") == 1

    one = build_view(net.graph, net.order, 1)
    blocks = {b.name: b for b in one.boxes.values() if b.kind == "block"}
    # s1..s3 instantiate Block with the same args, each feeding the next: one box "Block ×3"
    assert {n: b.title for n, b in blocks.items()} == {"s1–s3": "Block ×3", "mix": "Mix", "head": "side"}
    assert blocks["head"].aux and not blocks["mix"].aux
    assert one.box_of[net.graph.outputs[1][1]] == blocks["head"].id
    # input, stem, s1–s3, mix, head, gap, flatten, fc, out, aux
    assert len(one.boxes) == 10
    assert [e.aux for e in one.edges if e.dst == blocks["head"].id] == [True]

    two = build_view(net.graph, net.order, 2)
    # level-1 blocks are clusters again; mix.b (level 2) is one box
    assert set(two.clusters) == {"s1", "s2", "s3", "mix", "head"}
    assert len(two.boxes) == 1 + 1 + 3 * 3 + 3 + 3 + 3 + 2
    assert two.block_box == {"mix.b": "b4"}


def test_merge_needs_equal_arguments():
    layers = "".join(f"  - {{name: c{i}, use: C, args: {{c: {c}}}}}\n" for i, c in enumerate([8, 8, 16, 16, 16, 8]))
    net = netc.loads("netc: 1\nname: m\ninput: [3, 8, 8]\ntemplates:\n  C:\n    args: {c: int}\n"
                     "    body: {seq: [{conv: {out: $c, k: 1}}, relu]}\nlayers:\n" + layers, "m.yaml")
    view = build_view(net.graph, net.order, 1)
    assert [(b.name, b.title) for b in view.boxes.values() if b.kind == "block"] == [
        ("c0–c1", "C ×2"), ("c2–c4", "C ×3"), ("c5", "C")]


@needs_dot
def test_shapes_and_styles_in_svg():
    net = mini()
    dot = dot_source(net)
    svg = svg_of(dot)
    nodes = {g.get("id"): g for g in groups(svg, "node")}
    adds = [i for i, b in build_view(net.graph, net.order).boxes.items() if b.kind == "add"]
    # residual sums are circles, the concat a trapezium, aux boxes dashed
    for i in adds:
        assert nodes[i].find(f".//{SVG}ellipse") is not None
    assert 'shape=invtrapezium' in dot and dot.count("shape=circle") == 3
    aux_edges = [line for line in dot.splitlines() if "->" in line and "dashed" in line]
    assert len(aux_edges) == 4  # into gap, flatten, linear and the 'aux' output
    assert "8×32×32" in texts(svg) and "conv 3x3, 8" in texts(svg)


# The frontend only admits identifiers as names, but a renderer must not trust that: another
# front end, the Python API or a later relaxation could hand it anything. So the IR of a
# valid spec gets hostile names put in directly.
HOSTILE_NAME = "x\"y<script>alert(1)</script>&amp;\\N\\G ]; n0 -> n1 [x=\"'"
EVIL = {"stem": "a\\b\"c<d>&e\nf]\x01", "s1": "blk\"<&>\\l", "conv": "c\"<1>&", "mix": "r\"}<--",
        "b": "<img src=x onerror=alert(2)>", "head": "</svg><script>alert(3)</script>", "fc": "fc<\""}
EVIL_OUTPUT = "o\"<&>\\"
EVIL_TEMPLATE = "T<\"&>"


def hostile(description="<b>bold</b> & \"quoted\""):
    from dataclasses import replace

    net = mini()
    g = net.graph

    def rename(scope):
        return ".".join(EVIL.get(part, part) for part in scope.split("."))

    for _, d in g.node_items():
        d.scope = rename(d.scope) if d.scope != "input" else "input"
        d.blocks = tuple(rename(b) for b in d.blocks)
    g.blocks = {rename(s): replace(b, scope=rename(s), template=b.template and EVIL_TEMPLATE)
                for s, b in g.blocks.items()}
    g.outputs = [(EVIL_OUTPUT if name == "aux" else name, nid, aux) for name, nid, aux in g.outputs]
    g.name = HOSTILE_NAME
    net.spec = net.spec.model_copy(update={"name": HOSTILE_NAME, "description": description})
    return net


@needs_dot
@pytest.mark.parametrize("depth", [None, 1, 2])
def test_hostile_names_render_as_text(depth):
    net = hostile()
    assert net.name == HOSTILE_NAME
    view = build_view(net.graph, net.order, depth)
    svg = svg_of(dot_source(net, depth))
    # nothing was injected: exactly our boxes, clusters and edges
    assert {g.get("id") for g in groups(svg, "node")} == set(view.boxes)
    assert len(groups(svg, "edge")) == len(view.edges)
    assert len(groups(svg, "cluster")) == len(view.clusters)
    shown = texts(svg)
    assert HOSTILE_NAME in shown  # the title, character for character (\N, \G stayed literal)
    assert EVIL_OUTPUT in shown
    assert "a\\b\"c<d>&e" in shown and "f]\ufffd" in shown  # newline -> line break, control char replaced
    if depth is None:
        assert EVIL["conv"] in shown and EVIL["b"] in shown
    # s1..s3 as clusters, or merged into one box at depth 1
    assert (f"{EVIL_TEMPLATE} ×3" if depth == 1 else EVIL_TEMPLATE) in shown
    # tooltips carry full scopes verbatim, but for backslashes (graphviz unescapes tooltips twice)
    tips = {a.get(f"{XLINK}title") for a in svg.iter(f"{SVG}a")}
    assert (f"{EVIL['s1']}.{EVIL['conv']}".replace("\\", "\uff3c") in tips) == (depth != 1)
    assert not any(el.tag.endswith("script") for el in svg.iter())


def test_quoted_keeps_escapes_literal():
    assert quoted('a"b\\N\nc') == '"a\\"b\\\\N\\nc"'
    assert quoted("\x00") == '"\ufffd"'


def test_depth_must_be_positive():
    net = mini()
    with pytest.raises(ValueError):
        build_view(net.graph, net.order, 0)


def test_graphviz_missing_is_a_clear_error(tmp_path, monkeypatch, netc_cli):
    net = mini()
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' anywhere
    assert render(net, "dot").startswith("digraph")  # DOT needs no binary
    with pytest.raises(NetcError) as exc:
        render(net, "svg")
    assert exc.value.codes == ["graphviz"]
    assert "apt-get install graphviz" in exc.value.diagnostics[0].hint
    out = tmp_path / "m.png"
    code, stdout, stderr = netc_cli("render", SPECS / "lenet5.yaml", "--png", "-o", out)
    assert code == 2 and "error[graphviz]" in stderr and "apt-get install graphviz" in stderr
    assert "Traceback" not in stderr and not out.exists()


@needs_dot
def test_cli_formats(tmp_path, netc_cli):
    code, out, _ = netc_cli("render", SPECS / "lenet5.yaml")
    assert code == 0 and out.startswith("digraph netc {") and "rankdir=TB" in out
    code, out, _ = netc_cli("render", "lenet5", "--dot", "--rankdir", "LR")
    assert code == 0 and "rankdir=LR" in out
    for fmt, magic in (("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF"), ("html", b"<!DOCTYPE html>")):
        path = tmp_path / f"lenet.{fmt}"
        code, _, err = netc_cli("render", "lenet5", f"--{fmt}", "-o", path)
        assert code == 0, err
        assert path.read_bytes().startswith(magic)
    # without a flag the format follows the suffix of -o
    code, _, _ = netc_cli("render", "lenet5", "-o", tmp_path / "x.svg")
    assert code == 0 and (tmp_path / "x.svg").read_bytes().startswith(b"<?xml")
    code, _, err = netc_cli("render", "lenet5", "--depth", "0")
    assert code == 2 and "--depth" in err


def test_output_file_mode_and_pipes(tmp_path, netc_cli):
    path = tmp_path / "l.dot"
    assert netc_cli("render", "lenet5", "-o", path)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    # a pipe (or /dev/null) is written into, not replaced by a regular file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    code = netc_cli("render", "lenet5", "-o", fifo)[0]
    reader.join(30)
    assert code == 0 and got and got[0].startswith(b"digraph netc {")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_api_render(tmp_path):
    net = netc.load("resnet50")
    path = tmp_path / "r.dot"
    text = net.render("dot", depth=1, path=path)
    assert path.read_text() == text and text.count("Bottleneck ×") == 4


def test_render_dot_imports_no_torch():
    assert run_without_torch("render", "specs/resnet50.yaml", "--dot", "--depth", "2").startswith("digraph netc {")
