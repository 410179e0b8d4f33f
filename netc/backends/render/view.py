"""What a diagram shows: the IR seen at a nesting depth, as boxes, clusters and edges.

Every drawing format (DOT, and through it SVG/PNG/PDF and the HTML report) is written from
one `View`, so collapsing, clustering and edge labelling are decided once. With `depth=N`,
a named block nested N levels deep becomes a single box ("layer1 · Bottleneck ×3") and the
blocks above it stay clusters; `depth=None` shows every op.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from netc.ir.graph import Block, Graph
from netc.ops import REGISTRY, fmt_shape


@dataclass
class Box:
    """One drawn node: an op, a collapsed block, the input, or a named output."""

    id: str  # DOT node id; also the SVG element id
    kind: str  # 'input' | 'output' | 'block' | an op name ('conv', 'add', 'cat', ...)
    title: str  # main text: op label or block label
    name: str  # secondary text: module name, block scope or output name ('' for none)
    scope: str
    cluster: str | None  # innermost enclosing block drawn as a cluster
    aux: bool
    members: list[int] = field(default_factory=list)  # IR node ids it stands for


@dataclass
class Cluster:
    id: str  # DOT subgraph id (must start with 'cluster'); also the SVG element id
    scope: str
    block: Block
    parent: str | None
    aux: bool


@dataclass
class Edge:
    src: str
    dst: str
    label: str  # tensor shape
    aux: bool


@dataclass
class View:
    name: str
    boxes: dict[str, Box]
    clusters: dict[str, Cluster]
    edges: list[Edge]
    box_of: dict[int, str]  # IR node id -> id of the box that shows it
    block_box: dict[str, str]  # scope of a collapsed block -> id of the box that shows it


def local_name(scope: str, prefix: str | None) -> str:
    """The part of a scope below its enclosing block (`layer1.0.conv1` in `layer1.0` -> `conv1`)."""
    if prefix and scope.startswith(prefix + "."):
        return scope[len(prefix) + 1:]
    return scope


def block_name(scope: str, parent: str | None) -> str:
    """A block's name as shown inside its parent: `layer1`, `branch3x3`, but `layer1.0`, not `0`."""
    name = local_name(scope, parent)
    return scope if name.isdigit() else name


def op_name(scope: str, prefix: str | None) -> str:
    """The module name worth showing under an op's label: not positions or generated names."""
    name = local_name(scope, prefix)
    last = name.rsplit(".", 1)[-1]
    return "" if last.isdigit() or last.startswith("_") else name


def build_view(g: Graph, order: list[int], depth: int | None = None) -> View:
    """The boxes, clusters and edges of IR `g` (ops in `order`), blocks at level `depth` collapsed."""
    if depth is not None and depth < 1:
        raise ValueError("depth counts block levels from 1")
    blocks: dict[str, Block] = g.blocks
    boxes: dict[str, Box] = {}
    clusters: dict[str, Cluster] = {}
    box_of: dict[int, str] = {}
    block_ids = {scope: f"b{i}" for i, scope in enumerate(blocks)}

    for nid in order:
        d = g.node(nid)
        chain = d.blocks
        if nid == 0:
            boxes["n0"] = Box("n0", "input", "input", fmt_shape(d.shape), "input", None, False, [0])
            box_of[0] = "n0"
            continue
        shown = chain if depth is None else chain[:depth - 1]
        for i, scope in enumerate(shown):
            if scope not in clusters:
                parent = shown[i - 1] if i else None
                clusters[scope] = Cluster(f"cluster_{len(clusters)}", scope, blocks[scope], parent, True)
            clusters[scope].aux &= d.aux
        parent = shown[-1] if shown else None
        if depth is not None and len(chain) >= depth:
            scope = chain[depth - 1]
            bid = block_ids[scope]
            if bid not in boxes:
                boxes[bid] = Box(bid, "block", blocks[scope].label, block_name(scope, parent), scope, parent,
                                 True)
            box = boxes[bid]
            box.aux &= d.aux
        else:
            bid = f"n{nid}"
            box = boxes[bid] = Box(bid, d.op, REGISTRY[d.op].label(d.attrs), op_name(d.scope, parent),
                                   d.scope, parent, d.aux)
        box.members.append(nid)
        box_of[nid] = bid

    block_box = {box.scope: box.id for box in boxes.values() if box.kind == "block"}
    merge_runs(g, order, boxes, box_of, block_box)

    edges: list[Edge] = []
    seen: set[tuple[int, str]] = set()
    for nid in order:
        d = g.node(nid)
        dst = box_of[nid]
        for src in d.inputs:
            # one edge per tensor entering a box, however many ops inside take it
            if box_of[src] == dst or (src, dst) in seen:
                continue
            seen.add((src, dst))
            edges.append(Edge(box_of[src], dst, fmt_shape(g.node(src).shape), d.aux))
    for i, (name, nid, aux) in enumerate(g.outputs):
        oid = f"o{i}"
        boxes[oid] = Box(oid, "output", "output", name, name, None, aux)
        edges.append(Edge(box_of[nid], oid, fmt_shape(g.node(nid).shape), aux))
    return View(g.name, boxes, clusters, edges, box_of, block_box)


def merge_runs(g: Graph, order: list[int], boxes: dict[str, Box], box_of: dict[int, str],
               block_box: dict[str, str]) -> None:
    """Draw a chain of identical collapsed template instances as one box, as papers do ("InceptionA ×4").

    Boxes merge when they are consecutive siblings instantiating the same template with the
    same arguments, each feeding only the next. Inside a `repeat` cluster nothing merges: the
    cluster already says "×n", and its first instance usually differs (stride, projection).
    """
    blocks = g.blocks
    succ: dict[str, set[str]] = {}
    pred: dict[str, set[str]] = {}
    for nid in order:
        for src in g.node(nid).inputs:
            a, b = box_of[src], box_of[nid]
            if a != b:
                succ.setdefault(a, set()).add(b)
                pred.setdefault(b, set()).add(a)

    def same_kind(a: Box, b: Box) -> bool:
        x, y = blocks[a.scope], blocks[b.scope]
        return (x.kind == y.kind == "use" and x.template is not None and x.template == y.template
                and x.args == y.args and a.cluster == b.cluster and a.aux == b.aux)

    runs: list[list[Box]] = []
    for box in list(boxes.values()):
        if box.kind != "block" or (box.cluster is not None and blocks[box.cluster].kind == "repeat"):
            continue
        last = runs[-1][-1] if runs else None
        if (last is not None and same_kind(last, box) and succ.get(last.id) == {box.id}
                and pred.get(box.id) == {last.id}):
            runs[-1].append(box)
        else:
            runs.append([box])
    for run in runs:
        if len(run) < 2:
            continue
        head = run[0]
        head.title = f"{blocks[head.scope].template} ×{len(run)}"
        last = run[-1].scope.rsplit(".", 1)[-1]
        head.name, head.scope = f"{head.name}–{last}", f"{head.scope}–{last}"
        for box in run[1:]:
            del boxes[box.id]
            block_box[box.scope] = head.id
            head.members += box.members
            for nid in box.members:
                box_of[nid] = head.id
