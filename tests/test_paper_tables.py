"""`netc table --layout paper` against the papers' own architecture tables (numbers typed in
from the papers, cited per table)."""
import pytest

import netc
from netc.analysis.paper import paper_table, render
from tests.conftest import run_without_torch

# Szegedy et al. 2014, "Going Deeper with Convolutions", Table 1: output size, depth, #1×1,
# #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj, params (K), ops (M)
GOOGLENET_TABLE1 = {
    "3a": ("28×28×256", 2, 64, 96, 128, 16, 32, 32, 159, 128),
    "3b": ("28×28×480", 2, 128, 128, 192, 32, 96, 64, 380, 304),
    "4a": ("14×14×512", 2, 192, 96, 208, 16, 48, 64, 364, 73),
    "4b": ("14×14×512", 2, 160, 112, 224, 24, 64, 64, 437, 88),
    "4c": ("14×14×512", 2, 128, 128, 256, 24, 64, 64, 463, 100),
    "4d": ("14×14×528", 2, 112, 144, 288, 32, 64, 64, 580, 119),
    "4e": ("14×14×832", 2, 256, 160, 320, 32, 128, 128, 840, 170),
    "5a": ("7×7×832", 2, 256, 160, 320, 32, 128, 128, 1072, 54),
    "5b": ("7×7×1024", 2, 384, 192, 384, 48, 128, 128, 1388, 71),
}
# the other rows: type, patch size/stride, output size, depth (params/ops checked separately)
GOOGLENET_OTHER_ROWS = [
    ("convolution", "7×7/2", "112×112×64", "1"), ("max pool", "3×3/2", "56×56×64", "0"),
    ("convolution", "3×3/1", "56×56×192", "2"), ("max pool", "3×3/2", "28×28×192", "0"),
    ("max pool", "3×3/2", "14×14×480", "0"), ("max pool", "3×3/2", "7×7×832", "0"),
    ("avg pool", "7×7/1", "1×1×1024", "0"), ("dropout (40%)", "", "1×1×1024", "0"), ("linear", "", "1×1×1000", "1"),
    ("softmax", "", "1×1×1000", "0"),
]


def _num(cell):
    return int(cell.rstrip("KM"))


def test_googlenet_table1():
    t = paper_table([netc.load("googlenet_v1")])
    rows = {r[0]: r for r in t.rows if r[0].startswith("inception")}
    assert list(rows) == [f"inception ({m})" for m in GOOGLENET_TABLE1]
    for module, (out, depth, *widths, params, ops) in GOOGLENET_TABLE1.items():
        r = rows[f"inception ({module})"]
        assert r[2] == out and r[3] == str(depth) and [int(c) for c in r[4:10]] == widths
        # params (weights, no biases, as the paper) and ops within 5% of the paper's rounded figures.
        # The paper contradicts itself twice: 4c's 463K params against its own 100M ops (100M / 196
        # positions = 510K), and 5a's 54M ops against its own 1072K params (x 49 positions = 52.5M).
        if module == "4c":
            assert abs(_num(r[10]) * 1000 * 14 * 14 / 100e6 - 1) < 0.01
        else:
            assert abs(_num(r[10]) / params - 1) < 0.05, (module, r[10], params)
        if module == "5a":
            assert abs(_num(r[11]) / (1072 * 49 / 1000) - 1) < 0.05
        else:
            assert abs(_num(r[11]) / ops - 1) < 0.05, (module, r[11], ops)
    others = [tuple(r[:4]) for r in t.rows if not r[0].startswith("inception")]
    assert others == GOOGLENET_OTHER_ROWS
    conv2 = t.rows[2]  # the 1x1 reduce and the 3x3 in one row, as the paper: 64 | 192, 112K, 360M
    assert (conv2[5], conv2[6]) == ("64", "192") and abs(_num(conv2[10]) / 112 - 1) < 0.05 and conv2[11] == "360M"
    assert t.rows[-2][10:12] == ["1024K", "1M"]  # paper: 1000K, 1M


# the paper's printed params and ops of the rows that are not modules (Table 1)
GOOGLENET_PRINTED_OTHERS = {"convolution 7×7/2": ("2.7K", "34M"), "convolution 3×3/1": ("112K", "360M"),
                            "linear": ("1000K", "1M")}


def test_googlenet_paper_figures_beside_the_exact_ones():
    """Where netc's rounded figure differs from the one Table 1 prints, the printed one stands
    beside it, and each difference the paper explains badly has its note."""
    t = paper_table([netc.load("googlenet_v1")])
    assert t.header[10:14] == ["params", "ops", "paper params", "paper ops"]
    printed = {f"inception ({m})": (f"{v[-2]}K", f"{v[-1]}M") for m, v in GOOGLENET_TABLE1.items()}
    printed.update(GOOGLENET_PRINTED_OTHERS)
    seen = 0
    for r in t.rows:
        key = r[0] if not r[1] or r[0].startswith("inception") else f"{r[0]} {r[1]}"
        if key not in printed:
            assert r[12:14] == ["", ""], r
            continue
        seen += 1
        for ours, paper, shown in zip(r[10:12], printed[key], r[12:14]):
            assert shown == ("" if ours == paper else paper), (key, ours, paper, shown)
    assert seen == len(printed)
    notes = " ".join(t.notes)
    # the stem conv: 7x7x3x64 weights, at 112x112 positions
    assert f"{7 * 7 * 3 * 64 / 1000:.1f}K weights" in notes and f"{7 * 7 * 3 * 64 * 112 * 112 / 1e6:.0f}M" in notes
    assert f"{100e6 / (14 * 14) / 1000:.0f}K" in notes  # 4c's params implied by its ops
    assert f"{1072 * 49 / 1000:.1f}M" in notes  # 5a's ops implied by its params
    assert "1024K weights; the paper prints 1000K" in notes
    # every other module's printed params are 2-5% below the exact ones, as the general note says
    for m, v in GOOGLENET_TABLE1.items():
        if m not in ("4c", "5a"):
            exact = _num(next(r for r in t.rows if r[0] == f"inception ({m})")[10])
            assert 0.02 <= 1 - v[-2] / exact <= 0.05, m
    assert "2-5% below" in notes


def test_torchvision_googlenet_marks_its_3x3_in_the_5x5_column():
    t = paper_table([netc.load("googlenet")])
    row = next(r for r in t.rows if r[0] == "inception (3a)")
    assert row[7:9] == ["16", "32 (3×3)"]


# Simonyan & Zisserman 2014, Table 1: configurations A, A-LRN, B, C, D, E, stage by stage, then FC
VGG_TABLE1 = {
    "vgg11": [["conv3-64"], ["conv3-128"], ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2],
    "vgg11_lrn": [["conv3-64", "LRN"], ["conv3-128"], ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2],
    "vgg13": [["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 2, ["conv3-512"] * 2, ["conv3-512"] * 2],
    "vgg16_c": [["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 2 + ["conv1-256"],
                ["conv3-512"] * 2 + ["conv1-512"], ["conv3-512"] * 2 + ["conv1-512"]],
    "vgg16": [["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 3, ["conv3-512"] * 3, ["conv3-512"] * 3],
    "vgg19": [["conv3-64"] * 2, ["conv3-128"] * 2, ["conv3-256"] * 4, ["conv3-512"] * 4, ["conv3-512"] * 4],
}
VGG_WEIGHT_LAYERS = [11, 11, 13, 16, 16, 19]


VGG_LETTERS = ["A", "A-LRN", "B", "C", "D", "E"]  # the paper's names of the configurations


def test_vgg_table1():
    names = list(VGG_TABLE1)
    t = paper_table([netc.load(n) for n in names])
    assert t.header == VGG_LETTERS and t.rows[0] == names
    assert t.rows[1] == [f"{n} weight layers" for n in VGG_WEIGHT_LAYERS]
    assert t.rows[2] == ["input (224×224 RGB image)"] and t.spans[2] == 0
    assert t.rows[-1] == ["soft-max"] and t.spans[len(t.rows) - 1] == 0
    segments, cur = [], []
    for i, row in enumerate(t.rows[3:-1], 3):
        if row[0] == "maxpool":
            assert t.spans[i] == 0 and len(row) == 1  # across every configuration
            segments.append(cur)
            cur = []
        else:
            cur.append(row)
    segments.append(cur)
    assert len(segments) == 6
    for col, name in enumerate(names):
        stages = [[r[col] for r in seg if r[col]] for seg in segments]
        assert stages[:5] == VGG_TABLE1[name]
        assert stages[5] == ["FC-4096", "FC-4096", "FC-1000"]


# He et al. 2015, Table 1: output size, block bracket and repeat per stage; FLOPs (multiply-adds)
RESNET_TABLE1 = {
    "resnet18": (["[3×3, 64; 3×3, 64] ×2", "[3×3, 128; 3×3, 128] ×2", "[3×3, 256; 3×3, 256] ×2",
                  "[3×3, 512; 3×3, 512] ×2"], 1.8),
    "resnet34": (["[3×3, 64; 3×3, 64] ×3", "[3×3, 128; 3×3, 128] ×4", "[3×3, 256; 3×3, 256] ×6",
                  "[3×3, 512; 3×3, 512] ×3"], 3.6),
    "resnet50_v1": (["[1×1, 64; 3×3, 64; 1×1, 256] ×3", "[1×1, 128; 3×3, 128; 1×1, 512] ×4",
                     "[1×1, 256; 3×3, 256; 1×1, 1024] ×6", "[1×1, 512; 3×3, 512; 1×1, 2048] ×3"], 3.8),
    "resnet101_v1": (["[1×1, 64; 3×3, 64; 1×1, 256] ×3", "[1×1, 128; 3×3, 128; 1×1, 512] ×4",
                      "[1×1, 256; 3×3, 256; 1×1, 1024] ×23", "[1×1, 512; 3×3, 512; 1×1, 2048] ×3"], 7.6),
    "resnet152_v1": (["[1×1, 64; 3×3, 64; 1×1, 256] ×3", "[1×1, 128; 3×3, 128; 1×1, 512] ×8",
                      "[1×1, 256; 3×3, 256; 1×1, 1024] ×36", "[1×1, 512; 3×3, 512; 1×1, 2048] ×3"], 11.3),
}


def test_resnet_table1():
    names = list(RESNET_TABLE1)
    t = paper_table([netc.load(n) for n in names])
    assert t.header == ["layer name", "output size", "18-layer", "34-layer", "50-layer", "101-layer", "152-layer"]
    # rows the paper prints across every depth span them
    assert t.rows[0] == ["conv1", "112×112", "7×7, 64, stride 2"] and t.spans[0] == 2
    assert t.rows[1] == ["conv2_x", "56×56", "3×3 max pool, stride 2"] and t.spans[1] == 2
    assert [r[:2] for r in t.rows[2:6]] == [["", ""], ["conv3_x", "28×28"], ["conv4_x", "14×14"], ["conv5_x", "7×7"]]
    assert t.rows[6] == ["", "1×1", "average pool, 1000-d fc, softmax"] and t.spans[6] == 2
    for col, name in enumerate(names, 2):
        brackets, flops = RESNET_TABLE1[name]
        assert [r[col] for r in t.rows[2:6]] == brackets
        mantissa, exp = t.rows[7][col].split("×10^")
        assert exp == "9" and round(abs(float(mantissa) - flops), 6) <= 0.1  # the paper's one-decimal rounding


@pytest.mark.parametrize("fmt, marks", [("md", ["| type | patch size/stride |", "| inception (3a) |"]),
                                        ("latex", [r"\begin{tabular}", r"inception (3a) &", r"\#1$\times$1"]),
                                        ("html", ["<th>patch size/stride</th>", "<td>inception (3a)</td>"])])
def test_formats_without_torch(fmt, marks):
    out = run_without_torch("table", "googlenet_v1", "--layout", "paper", "--format", fmt)
    assert all(m in out for m in marks)


def test_several_specs_cli(netc_cli):
    code, out, _ = netc_cli("table", "resnet18", "resnet34", "--layout", "paper")
    assert code == 0 and "18-layer" in out and "34-layer" in out and "[3×3, 512; 3×3, 512] ×3" in out


@pytest.mark.parametrize("args, message", [
    (["vgg16", "vgg19", "--format", "csv"], "one csv table holds one spec"),
    (["vgg16", "--format", "latex"], "needs --layout paper"),
    (["vgg16", "--layout", "paper", "--format", "csv"], "text, md, latex or html"),
    (["vgg16", "--format", "html"], "--format html needs --layout paper"),
    (["vgg16", "--layout", "stages"], "error[layout]: vgg16 has no stage of residual blocks"),
    (["googlenet_v1", "googlenet", "--layout", "inception"], "error[layout]: the inception layout shows one"),
])
def test_refusals(netc_cli, args, message):
    code, _, err = netc_cli("table", *args)
    assert code == 2 and message in err


VGG_PAPER = ["vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19"]


def test_full_width_rows_span_every_column_in_each_format():
    """VGG's input, maxpool and soft-max rows, as Table 1 prints them across all six columns."""
    from html.parser import HTMLParser

    t = paper_table([netc.load(n) for n in VGG_PAPER])
    n = len(VGG_PAPER)
    latex = render(t, "latex")
    assert latex.count(rf"\multicolumn{{{n}}}{{c}}{{maxpool}} \\") == 5
    assert rf"\multicolumn{{{n}}}{{c}}{{soft-max}} \\" in latex
    assert rf"\multicolumn{{{n}}}{{c}}{{input (224$\times$224 RGB image)}} \\" in latex

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.in_cell = [], False

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag == "td":
                self.rows[-1].append([dict(attrs).get("colspan", "1"), ""])
                self.in_cell = True

        def handle_endtag(self, tag):
            self.in_cell = self.in_cell and tag != "td"

        def handle_data(self, data):
            if self.in_cell:
                self.rows[-1][-1][1] += data

    parser = Cells()
    parser.feed(render(t, "html"))
    spanned = [r[0][1] for r in parser.rows if len(r) == 1 and r[0][0] == str(n)]
    assert spanned == ["input (224×224 RGB image)"] + ["maxpool"] * 5 + ["soft-max"]
    md_rows = [line.split(" | ") for line in render(t, "md").splitlines() if line.startswith("| maxpool")]
    assert len(md_rows) == 5 and all(len(r) == n for r in md_rows)  # no span in markdown: under every column
    text = render(t, "text").splitlines()
    first_col = len(text[1].split("  ")[0])
    pools = [line for line in text if line.strip() == "maxpool"]
    assert len(pools) == 5 and all(line.index("maxpool") > first_col for line in pools)  # not under A alone


def test_latex_escapes_spec_text():
    t = paper_table([netc.load("vgg16")])
    t.header = ["a_b & {c}"]
    assert r"a\_b \& \{c\}" in render(t, "latex")
