"""An inline-SVG bar chart of MACs, params and activation memory per top-level block.

Three columns of horizontal bars, one row per top-level block or layer of the cost table at
depth 1, each bar's length its share of the column's largest value. Text is escaped by the
caller's Jinja autoescaping (`chart.svg.j2` is included by the report and the notebook view).
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.analysis.formats import human
from netc.analysis.table import Table

COLUMNS = (("MACs", "macs", 1000, ""), ("params", "params", 1000, ""), ("activation memory", "activation_bytes", 1024, "B"))
NAME_W, BAR_W, ROW_H, GAP = 150, 150, 16, 70


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    text: str
    value: int


@dataclass(frozen=True)
class ChartRow:
    name: str
    y: float
    bars: list[Bar]
    box: str  # the diagram box the row belongs to ('' for none)


def chart(table: Table, boxes: list[str] | None = None) -> dict:
    """The geometry of the chart for the rows of a depth-1 table (`boxes`: their diagram ids)."""
    rows = [r for r in table.rows if r.level == 0 and not r.aux]
    boxes = boxes or [""] * len(table.rows)
    box_of = {id(r): b for r, b in zip(table.rows, boxes)}
    top = [max((getattr(r.cost, attr) for r in rows), default=0) or 1 for _, attr, _, _ in COLUMNS]
    out = []
    for i, r in enumerate(rows):
        bars = []
        for j, (_, attr, base, unit) in enumerate(COLUMNS):
            v = getattr(r.cost, attr)
            x = NAME_W + j * (BAR_W + GAP)
            bars.append(Bar(x, round(BAR_W * v / top[j], 1), human(v, unit, base) if v else "-", v))
        out.append(ChartRow(r.scope, 20 + i * ROW_H, bars, box_of.get(id(r), "")))
    heads = [(NAME_W + j * (BAR_W + GAP), name) for j, (name, _, _, _) in enumerate(COLUMNS)]
    return {"rows": out, "heads": heads, "width": NAME_W + 3 * (BAR_W + GAP), "height": 24 + len(out) * ROW_H,
            "bar_h": ROW_H - 4}
