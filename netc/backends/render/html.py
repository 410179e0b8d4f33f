"""The HTML report: one self-contained page with the SVG diagram beside the cost table.

The table is the analysis pass's (`netc.analysis`), at the same depth as the diagram, so each
row belongs to one drawn box (a layer, a collapsed block) or one cluster (a block subtotal);
`data-box` on the row names that SVG element and the page's script links them both ways.
Nothing is fetched when the page is viewed: the SVG, CSS and script are inline, and a
Content-Security-Policy forbids any request.
"""
from __future__ import annotations

import re
from pathlib import Path

import jinja2

from netc.analysis import formats
from netc.analysis.cost import analyse
from netc.analysis.table import build
from netc.backends.render.graphviz import check_size, draw, fits
from netc.backends.render.view import View, build_view
from netc.ops import fmt_shape

TEMPLATES = Path(__file__).resolve().parent / "templates"
# graphviz's XML prolog, doctype and comments are not wanted inside an HTML body
_SVG_START = re.compile(r"<svg\b")
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def inline_svg(svg: str) -> str:
    m = _SVG_START.search(svg)
    if m is None:
        raise ValueError("graphviz gave no <svg> element")
    return _COMMENT.sub("", svg[m.start():]).strip()


def row_boxes(network, view: View, rows) -> list[str]:
    """The SVG element id each table row belongs to: a box, a collapsed block's box, or a cluster."""
    node_of_scope = {d.scope: nid for nid, d in network.nodes()}
    out = []
    for row in rows:
        if row.kind == "layer":
            out.append(view.box_of[node_of_scope[row.scope]])
        elif row.scope in view.block_box:
            out.append(view.block_box[row.scope])
        else:
            out.append(view.clusters[row.scope].id if row.scope in view.clusters else "")
    return out


MAX_VIEWS = 5  # depths 1..4 and the full diagram: each is one graphviz layout
_ID = re.compile(r'\bid="')


def depth_views(network, depth: int | None) -> tuple[list[int | None], int | None]:
    """The depths the page can switch between (1, 2, … the deepest nesting, then every layer)
    and the one it opens at."""
    deepest = max((len(d.blocks) for _, d in network.nodes()), default=0)
    depths: list[int | None] = list(range(1, min(deepest, MAX_VIEWS - 1) + 1))
    if depth is not None and depth <= deepest and depth not in depths:
        depths.append(depth)
    depths.append(None)
    return depths, (depth if depth in depths else None)


def drawable(network, depths: list[int | None]) -> dict[int | None, View]:
    """The views at `depths` that graphviz can lay out in bounded time: a page of a network too
    large to draw every layer collapses to the depths that fit (error[limit] when none does)."""
    views = {d: build_view(network.graph, network.order, d) for d in depths}
    drawn = {d: v for d, v in views.items() if fits(v)}
    if not drawn:
        check_size(network, views[depths[0]])
    return drawn


def key(depth: int | None) -> str:
    return "all" if depth is None else str(depth)


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def one_view(network, report, depth: int | None, view: View, rankdir: str, prefix: str) -> dict:
    """The diagram (SVG, ids prefixed so several share a page) and the table rows at one depth."""
    svg = inline_svg(draw(network, view, rankdir, "svg").decode())
    table = build(report, depth)
    boxes = [prefix + box if box else "" for box in row_boxes(network, view, table.rows)]
    rows = [{"kind": row.kind, "level": row.level, "aux": row.aux, "box": box, "cells": formats.row_cells(row, "")}
            for row, box in zip(table.rows, boxes)]
    return {"key": key(depth), "svg": _ID.sub(f'id="{prefix}', svg), "rows": rows, "table": table, "boxes": boxes}


def report(network, depth: int | None = None, rankdir: str = "TB") -> str:
    """The page: a diagram and table per depth (a switch shows one pair), a bar chart per block."""
    from netc.backends.render.chart import chart

    cost = analyse(network)
    depths, start = depth_views(network, depth)
    drawn = drawable(network, depths)
    if start not in drawn:
        start = next(reversed(drawn))
    views = [one_view(network, cost, d, view, rankdir, f"d{key(d)}-") for d, view in drawn.items()]
    depths = list(drawn)
    top = views[0] if depths[0] == 1 else None
    bars = chart(top["table"], top["boxes"]) if top else chart(build(cost, 1))
    table = views[-1]["table"]
    outs = ", ".join(f"{name}{' (aux)' if aux else ''}: {fmt_shape(network.graph.node(nid).shape)}"
                     for name, nid, aux in network.outputs)
    return environment().get_template("report.html.j2").render(
        name=network.name, description=network.spec.description or "",
        io=f"input {fmt_shape(network.input_shape)} → {outs}", start=key(start), views=views,
        convention=formats.convention(table), summary=formats.summary(table),
        columns=formats.COLUMNS, totals=formats.total_rows(table), chart=bars)
