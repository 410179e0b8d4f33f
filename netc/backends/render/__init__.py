"""The render backend: IR -> DOT text, or SVG/PNG/PDF through graphviz's `dot`, or an HTML report.

Consumes a compiled `Network` (its graph, execution order and costs); produces text (DOT, SVG,
HTML) or bytes (PNG, PDF). DOT is written by netc itself (`dot.py`, from the box-and-cluster
view in `view.py`), so `--dot` needs neither the graphviz binary nor torch; the other formats
run `dot` once on that text (`graphviz.py`); `html.py` puts the SVG beside the cost table.
"""
from __future__ import annotations

from netc.backends.render.dot import dot_source, view_of
from netc.backends.render.graphviz import draw

FORMATS = ("dot", "svg", "png", "pdf", "html")
BINARY = ("png", "pdf")


def render(network, fmt: str = "dot", depth: int | None = None, rankdir: str = "TB") -> str | bytes:
    """The diagram of `network` in `fmt`: str for dot/svg/html, bytes for png/pdf."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "html":
        from netc.backends.render.html import report

        return report(network, depth, rankdir)
    if fmt == "dot":
        return dot_source(network, depth, rankdir)
    out = draw(network, view_of(network, depth), rankdir, fmt)
    return out if fmt in BINARY else out.decode()
