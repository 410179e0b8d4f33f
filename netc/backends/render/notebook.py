"""A network in a notebook cell (`Network._repr_html_`): the summary, the diagram collapsed to
top-level blocks, the bar chart and the block table, as one HTML fragment.

No script and no page-wide CSS (a notebook holds many cells): styles are inline or scoped to the
fragment's class, and SVG ids get a per-fragment prefix. Without graphviz the diagram is left out
with a note; the rest needs neither graphviz nor torch.
"""
from __future__ import annotations

import itertools
import re

from netc.analysis import formats
from netc.analysis.cost import analyse
from netc.analysis.table import build
from netc.backends.render.chart import chart
from netc.backends.render.dot import view_of
from netc.backends.render.graphviz import draw
from netc.backends.render.html import environment, inline_svg
from netc.errors import NetcError
from netc.ops import fmt_shape

_ID = re.compile(r'\bid="')
_fragments = itertools.count()


def notebook_html(network) -> str:
    table = build(analyse(network), 1)
    prefix = f"netc{next(_fragments)}-"
    try:
        svg, note = _ID.sub(f'id="{prefix}', inline_svg(draw(network, view_of(network, 1), "TB", "svg").decode())), ""
    except NetcError as exc:
        svg, note = "", exc.diagnostics[0].message
    outs = ", ".join(f"{name}{' (aux)' if aux else ''}: {fmt_shape(network.graph.node(nid).shape)}"
                     for name, nid, aux in network.outputs)
    return environment().get_template("notebook.html.j2").render(
        name=network.name, description=network.spec.description or "",
        io=f"input {fmt_shape(network.input_shape)} → {outs}", summary=formats.summary(table), svg=svg, note=note,
        chart=chart(table), columns=formats.COLUMNS,
        rows=[{"kind": r.kind, "cells": formats.row_cells(r, "")} for r in table.rows],
        totals=formats.total_rows(table))
