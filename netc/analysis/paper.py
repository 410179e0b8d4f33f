"""Architecture tables as the papers print them, derived from the IR (no torch).

Three layouts, after the tables that introduced them:
- inception: one row per stem layer or Inception module, the module's branch widths read off
  its concat's branches (Szegedy et al. 2014, "Going Deeper with Convolutions", Table 1);
- configuration: several networks as columns, a row per layer position, `conv3-64` notation
  and the weight-layer count per column (Simonyan & Zisserman 2014, Table 1);
- stages: a row per residual stage with its output size and the block's convs as a bracket
  "[3×3, 64; 3×3, 64] ×2", several depths side by side, a FLOPs row (He et al. 2015, Table 1).
`paper_table` picks the layout from the graph: residual adds -> stages, concats -> inception,
else configuration. Rendered as aligned text, markdown, LaTeX or HTML (`netc.analysis.paper_render`);
the papers' own tables, as printed, are `netc.analysis.paper_figures`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from netc.analysis.paper_figures import (
    GOOGLENET_GENERAL_NOTE,
    GOOGLENET_NOTES,
    GOOGLENET_TABLE1,
    VGG_TABLE1,
)
from netc.analysis.paper_render import render  # noqa: F401  (the layouts' one renderer)
from netc.analysis.paths import count_paths
from netc.errors import error
from netc.ir.transform import is_residual_add, residual_parts
from netc.ops.base import pair

LAYOUTS = ("paper", "inception", "configuration", "stages")
POOLS = {"maxpool": "max pool", "avgpool": "avg pool"}
QUIET = {"relu", "bn", "lrn", "flatten", "identity", "sigmoid", "tanh", "softmax"}  # not rows of their own


@dataclass
class PaperTable:
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    spans: dict[int, int] = field(default_factory=dict)  # row -> the column whose cell spans to the last

    def full(self, cells: list[str], text: str) -> None:
        """A row whose `text` spans every column after `cells`, as a paper's full-width row."""
        self.spans[len(self.rows)] = len(cells)
        self.rows.append([*cells, text])

    def spanned(self, cells: list[str], per_column: list[str]) -> None:
        """A row of `cells` then one cell per column: one spanning cell where they are all the same."""
        if len(per_column) > 1 and len(set(per_column)) == 1:
            self.full(cells, per_column[0])
        else:
            self.rows.append([*cells, *per_column])


def weighted(d: dict) -> bool:
    return d.macs > 0


def main_nodes(network) -> list[dict]:
    return [d for _, d in network.nodes() if not d.aux]


def hwc(shape) -> str:
    """A shape as the papers write it: 112×112×64 (a vector: 1×1×n)."""
    c, h, w = (*shape, 1, 1)[:3]  # a vector (or a C×L tensor) has a 1×1 (1×L) grid
    return f"{h}×{w}×{c}"


def patch(d: dict) -> str:
    k, s = pair(d.attrs.k), pair(d.attrs.s if d.attrs.s is not None else d.attrs.k)
    ks = f"{k[0]}×{k[1]}"
    return f"{ks}/{s[0]}" if s[0] == s[1] else f"{ks}/{s[0]}×{s[1]}"


def kernel(d: dict) -> str:
    k = pair(getattr(d.attrs, "k", 1))  # a linear layer inside a block is a 1×1 (ConvNeXt's pointwise layers)
    return f"{k[0]}×{k[1]}"


# --- Inception style -------------------------------------------------------------------------

INCEPTION_HEADER = ["type", "patch size/stride", "output size", "depth", "#1×1", "#3×3 reduce", "#3×3",
                    "#5×5 reduce", "#5×5", "pool proj", "params", "ops"]


def weights(d: dict) -> int:
    """Parameters without biases: what Table 1 of Szegedy et al. 2014 counts."""
    a = d.attrs
    return d.params - (a.out if d.op in ("conv", "linear") and getattr(a, "bias", False) else 0)


def _k(n: int) -> str:
    return f"{round(n / 1000)}K" if n else ""


def _m(n: int) -> str:
    return f"{round(n / 1e6)}M" if n else ""


def _branch_chain(g, cat_input: int, start: int) -> list[dict]:
    """The ops of one concat branch, in order, back from the concat to the module's input."""
    chain, nid = [], cat_input
    while nid != start:
        d = g.node(nid)
        chain.append(d)
        if len(d.inputs) != 1:
            break
        nid = d.inputs[0]
    return chain[::-1]


def _module_row(network, name: str, nodes: list[dict]) -> list[str]:
    g = network.graph
    cat = next(d for d in reversed(nodes) if d.op == "cat")
    start = next(i for i in nodes[0].inputs)  # the module's input: the first op's input
    cells = {h: "" for h in INCEPTION_HEADER[4:10]}
    reduce_cols = [("#3×3 reduce", "#3×3"), ("#5×5 reduce", "#5×5")]
    other, depth = [], 0
    for src in cat.inputs:
        chain = [d for d in _branch_chain(g, src, start) if d.op not in QUIET]
        convs = [d for d in chain if weighted(d)]
        depth = max(depth, len(convs))
        kinds = [(d.op, kernel(d) if d.op == "conv" else "") for d in chain]
        if kinds == [("conv", "1×1")]:
            cells["#1×1"] = str(convs[0].attrs.out)
        elif len(kinds) == 2 and kinds[0][0] in POOLS and kinds[1] == ("conv", "1×1"):
            cells["pool proj"] = str(convs[0].attrs.out)
        elif len(kinds) == 2 and kinds[0] == ("conv", "1×1") and kinds[1][0] == "conv" and reduce_cols:
            red, col = reduce_cols.pop(0)
            k = kinds[1][1]
            cells[red] = str(convs[0].attrs.out)
            cells[col] = str(convs[1].attrs.out) + ("" if col.endswith(k) else f" ({k})")
        else:
            other.append(" → ".join(f"{kernel(d)} {d.attrs.out}" if d.op == "conv" else d.op for d in chain)
                         or "identity")
    params = sum(weights(d) for d in nodes)
    macs = sum(d.macs for d in nodes)
    short = name[len("inception"):].lstrip("_") if name.lower().startswith("inception") else name
    return [f"inception ({short or name})", "", hwc(cat.shape), str(depth), *cells.values(), _k(params),
            _m(macs), "; ".join(other)]


def _stem_rows(ops: list[dict]) -> list[list[str]]:
    rows, i = [], 0
    empty = [""] * 6  # the branch columns; each row ends with an empty "other branches" cell
    while i < len(ops):
        d = ops[i]
        if d.op == "conv":
            nxt = ops[i + 1] if i + 1 < len(ops) else None
            if kernel(d) == "1×1" and nxt is not None and nxt.op == "conv" and kernel(nxt) != "1×1":
                cells = list(empty)
                cells[1], cells[2] = str(d.attrs.out), str(nxt.attrs.out)
                rows.append(["convolution", patch(nxt), hwc(nxt.shape), "2", *cells,
                             _k(weights(d) + weights(nxt)), _m(d.macs + nxt.macs), ""])
                i += 2
                continue
            rows.append(["convolution", patch(d), hwc(d.shape), "1", *empty, _k(weights(d)), _m(d.macs), ""])
        elif d.op in POOLS:
            rows.append([POOLS[d.op], patch(d), hwc(d.shape), "0", *empty, "", "", ""])
        elif d.op in ("gap", "adaptive_avgpool"):
            rows.append(["avg pool", "", hwc(d.shape), "0", *empty, "", "", ""])
        elif d.op == "dropout":
            rows.append([f"dropout ({round(d.attrs.p * 100)}%)", "", hwc(d.shape), "0", *empty, "", "", ""])
        elif d.op == "linear":
            rows.append(["linear", "", hwc(d.shape), "1", *empty, _k(weights(d)), _m(d.macs), ""])
        i += 1
    return rows


def inception_table(network) -> PaperTable:
    nodes = main_nodes(network)
    modules = {d.blocks[0] for d in nodes if d.op == "cat" and d.blocks}
    t = PaperTable(f"{network.name}: architecture (Szegedy et al. 2014, Table 1 layout)", INCEPTION_HEADER)
    stem: list[dict] = []
    i = 0
    while i < len(nodes):
        d = nodes[i]
        top = d.blocks[0] if d.blocks else None
        if top in modules:
            t.rows += _stem_rows([s for s in stem if s.op not in QUIET])
            stem = []
            j = i
            while j < len(nodes) and nodes[j].blocks and nodes[j].blocks[0] == top:
                j += 1
            t.rows.append(_module_row(network, top, nodes[i:j]))
            i = j
            continue
        stem.append(d)
        i += 1
    t.rows += _stem_rows([s for s in stem if s.op not in QUIET])
    t.rows.append(["softmax", "", hwc(nodes[-1].shape), "0", *[""] * 9])
    if any(r[-1] for r in t.rows):
        t.header = INCEPTION_HEADER + ["other branches"]
    else:
        t.rows = [r[:-1] for r in t.rows]
    t.notes.append("params: weights without biases, as the paper counts them; ops: multiply-accumulates; "
                   "auxiliary heads left out")
    _softmax_note(t, [network])
    _printed_figures(t)
    return t


def _softmax_note(t: PaperTable, networks: list) -> None:
    if not all(main_nodes(n)[-1].op == "softmax" for n in networks):
        t.notes.append("softmax: the paper's last layer; netc's specs end at the logits, which the loss takes")


def _printed_figures(t: PaperTable) -> None:
    """Beside netc's params and ops, the paper's own where it prints a row like this one and its
    figures differ (Szegedy et al. 2015, Table 1), with what is known about each difference."""
    printed = {row[:10]: row[10:] for row in GOOGLENET_TABLE1}
    matches = [printed.get(tuple(r[:10])) for r in t.rows]
    if not any(matches):
        return
    t.header = t.header[:12] + ["paper params", "paper ops"] + t.header[12:]
    general = False
    for r, paper in zip(t.rows, matches):
        shown = [p if paper and p != ours else "" for p, ours in zip(paper or ("", ""), r[10:12])]
        r[12:12] = shown
        if any(shown):
            key = r[0] if not r[1] else f"{r[0]} {r[1]}"
            if key in GOOGLENET_NOTES:
                t.notes.append(GOOGLENET_NOTES[key])
            else:
                general = True
    if general:
        t.notes.append(GOOGLENET_GENERAL_NOTE)


# --- configuration style (VGG) -----------------------------------------------------------

def _notation(d: dict) -> str | None:
    if d.op == "conv":
        k = pair(d.attrs.k)
        return f"conv{k[0] if k[0] == k[1] else f'{k[0]}x{k[1]}'}-{d.attrs.out}"
    if d.op == "linear":
        return f"FC-{d.attrs.out}"
    if d.op == "lrn":
        return "LRN"
    return None


def _segments(network) -> list[list[str]]:
    """Layer notations between the max pools; the part after the last pool is the last segment."""
    segments: list[list[str]] = [[]]
    for d in main_nodes(network):
        if d.op == "maxpool":
            segments.append([])
        elif (n := _notation(d)) is not None:
            segments[-1].append(n)
    return segments


def configuration_table(networks: list) -> PaperTable:
    names = [n.name for n in networks]
    segments = [_segments(n) for n in networks]
    # the paper's configuration letter where a network's layers are exactly one of Table 1's
    letters = [next((k for k, v in VGG_TABLE1.items() if v == seg), name) for seg, name in zip(segments, names)]
    t = PaperTable("ConvNet configuration (Simonyan & Zisserman 2014, Table 1 layout)", letters)
    if letters != names:
        t.rows.append(names)
    t.rows.append([f"{sum(weighted(d) for d in main_nodes(n))} weight layers" for n in networks])
    inputs = {n.input_shape for n in networks}
    rgb = " RGB" if {s[0] for s in inputs} == {3} else ""
    t.full([], f"input ({' / '.join('×'.join(map(str, s[1:])) for s in sorted(inputs))}{rgb} image)")
    for i in range(max(len(s) for s in segments)):
        if i:
            t.full([], "maxpool")
        cols = [s[i] if i < len(s) else [] for s in segments]
        for line in range(max(len(c) for c in cols)):
            t.rows.append([c[line] if line < len(c) else "" for c in cols])
    t.full([], "soft-max")
    t.notes.append("full-width rows (input, maxpool, soft-max) apply to every column")
    _softmax_note(t, networks)
    return t


# --- stage style (ResNet) ----------------------------------------------------------------

def _stages(network) -> list[tuple[str, int, list[dict]]]:
    """(scope, repeat, nodes) of each top-level named repeat holding residual blocks, in order."""
    blocks = network.graph.blocks
    out: dict[str, list[dict]] = {}
    for d in main_nodes(network):
        for b in d.blocks:
            if blocks[b].kind == "repeat":
                out.setdefault(b, []).append(d)
                break
    return [(s, blocks[s].repeat, nodes) for s, nodes in out.items() if any(is_residual_add(d) for d in nodes)]


def _bracket(network, stage: str, repeat: int, nodes: list[dict]) -> str:
    last = f"{stage}.{repeat - 1}"  # a block of the stage's steady state (the first may downsample)
    body_add = next(d for d in nodes if last in d.blocks and is_residual_add(d))
    g = network.graph
    body, todo = set(), [residual_parts(body_add)[0]]
    while todo:  # back from the add's body input, inside the block
        nid = todo.pop()
        d = g.node(nid)
        if last in d.blocks and id(d) not in body:
            body.add(id(d))
            todo.extend(d.inputs)
    convs = [d for d in nodes if id(d) in body and weighted(d)]  # in execution order
    inner = "; ".join(f"{kernel(d)}, {d.attrs.out}" for d in convs)
    return f"[{inner}] ×{repeat}"


def _outside(d: dict) -> str | None:
    if d.op == "conv":
        s = pair(d.attrs.s)[0]
        return f"{kernel(d)}, {d.attrs.out}" + (f", stride {s}" if s > 1 else "")
    if d.op in POOLS:
        s = pair(d.attrs.s if d.attrs.s is not None else d.attrs.k)[0]
        return f"{kernel(d)} {POOLS[d.op]}" + (f", stride {s}" if s > 1 else "")
    if d.op in ("gap", "adaptive_avgpool"):
        return "average pool"
    if d.op == "linear":
        return f"{d.attrs.out}-d fc"
    return None


def flops(n: int) -> str:
    """1.8×10^9, 11.3×10^9, as the paper writes them (the exponent a multiple of 3)."""
    e = (len(str(n)) - 1) // 3 * 3
    return f"{n / 10 ** e:.1f}×10^{e}"


def _size(shape) -> str:
    return f"{shape[1]}×{shape[2]}" if len(shape) == 3 else "1×1"


def stages_table(networks: list) -> PaperTable:
    cols = []
    for n in networks:
        stages = _stages(n)
        if not stages:
            raise error("layout", f"{n.name} has no stage of residual blocks (a named repeat); the stage layout "
                                  "is ResNet's", None, "use --layout configuration or inception")
        first = {id(d) for _, _, nodes in stages for d in nodes}
        nodes = main_nodes(n)
        i0 = next(i for i, d in enumerate(nodes) if id(d) in first)
        i1 = max(i for i, d in enumerate(nodes) if id(d) in first)
        cols.append((n, nodes[:i0], stages, nodes[i1 + 1:]))
    header = ["layer name", "output size"] + [f"{count_paths(n).layers.lengths[-1]}-layer" for n, *_ in cols]
    t = PaperTable("Architectures (He et al. 2015, Table 1 layout)", header)
    stem_cells = [[p for d in stem if (p := _outside(d))] for _, stem, _, _ in cols]
    pool_first = all(p and "pool" in p[-1] for p in stem_cells)
    stem_out = next(d for d in cols[0][1] if weighted(d)).shape
    t.spanned(["conv1", _size(stem_out)], ["; ".join(p[:-1] if pool_first else p) for p in stem_cells])
    for i in range(max(len(c[2]) for c in cols)):
        name = f"conv{i + 2}_x" if i < len(cols[0][2]) else ""  # the paper's names for the stages
        cells = [_bracket(n, *stages[i]) if i < len(stages) else "" for n, _, stages, _ in cols]
        size = _size(cols[0][2][i][2][-1].shape) if i < len(cols[0][2]) else ""
        if i == 0 and pool_first:  # the paper's max pool: a row of its own, across the depths
            t.spanned([name, size], [p[-1] for p in stem_cells])
            name = size = ""
        t.spanned([name, size], cells)
    tails = [", ".join(filter(None, map(_outside, c[3]))) for c in cols]
    t.spanned(["", _size(cols[0][3][-1].shape)], [f"{tail}, softmax" for tail in tails])
    t.rows.append(["FLOPs", ""] + [flops(n.macs) for n, *_ in cols])
    stages = [s for s, _, _ in cols[0][2]]
    t.notes.append(f"conv2_x … conv{len(stages) + 1}_x: the paper's names for {', '.join(stages)}")
    t.notes.append("FLOPs as the paper counts them: multiply-adds of conv and fc layers")
    _softmax_note(t, [n for n, *_ in cols])
    return t


# --- choice and rendering ----------------------------------------------------------------

def paper_table(networks: list, layout: str = "paper") -> PaperTable:
    if layout == "paper":
        nodes = [d for n in networks for d in main_nodes(n)]
        layout = ("stages" if any(is_residual_add(d) for d in nodes) else
                  "inception" if any(d.op == "cat" for d in nodes) else "configuration")
    if layout == "inception":
        if len(networks) > 1:
            raise error("layout", "the inception layout shows one network", None, "give one spec")
        return inception_table(networks[0])
    return configuration_table(networks) if layout == "configuration" else stages_table(networks)
