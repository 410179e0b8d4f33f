"""DOT text of a `View`, written directly (no graphviz binary, no torch).

Every piece of user text (spec, block, layer and output names) goes through `html_text`
(for HTML-like labels) or `quoted` (for "..." strings), so quotes, angle brackets,
ampersands, backslashes, newlines and control characters can neither break the DOT syntax
nor inject markup into the SVG graphviz makes from it. DOT ids are generated (`n12`, `b3`,
`cluster_2`), never taken from names.
"""
from __future__ import annotations

import re

from netc.backends.render.view import Box, Cluster, View, block_name, build_view
from netc.ops import REGISTRY, Op, fmt_shape

FONT = "Helvetica,Arial,sans-serif"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

CLUSTER_FILL = ("#f7f9fc", "#eef2f8", "#e6ecf5", "#dde5f1")


def clean(text: str) -> str:
    """Drop control characters: graphviz would copy them into SVG, where XML forbids them."""
    return _CONTROL.sub("\ufffd", str(text))


def html_text(text: str) -> str:
    """Text for a graphviz HTML-like label: entities for markup characters, <BR/> for newlines.

    graphviz still expands \\G, \\N, ... inside HTML-like labels, so backslashes are doubled."""
    text = clean(text).replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace('"', "&quot;").replace("'", "&#39;")
    return text.replace("\n", "<BR/>")


def quoted(text: str) -> str:
    """A DOT double-quoted string whose label escapes (\\N, \\l, ...) stay literal text."""
    text = clean(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n") + '"'


def tooltip(text: str) -> str:
    """A tooltip string. graphviz unescapes tooltips twice (2.43: "\\\\N" shows the node name), so a
    backslash is shown as a fullwidth reverse solidus rather than trusting any escaping."""
    return quoted(str(text).replace("\\", "\uff3c"))


def box_label(box: Box) -> str:
    op = REGISTRY.get(box.kind)  # the op's own diagram style: fill, sign or shape (see netc.ops.base.Op)
    if op is not None and op.diagram_sign:
        return f"<<B>{op.diagram_sign}</B>>"
    title, sub = box.title, box.name
    if box.kind == "block":
        title, sub = box.name, box.title
    lines = [f"<B>{html_text(title)}</B>"] if box.kind == "block" else [html_text(title)]
    if sub and sub != title:
        lines.append(f'<FONT POINT-SIZE="8" COLOR="#555555">{html_text(sub)}</FONT>')
    return "<" + "<BR/>".join(lines) + ">"


def box_attrs(box: Box) -> dict[str, str]:
    style = ["filled"]
    a = {"id": quoted(box.id), "label": box_label(box), "tooltip": tooltip(box.scope)}
    op = REGISTRY.get(box.kind)
    if op is not None and op.diagram_sign:
        a.update(shape="circle", fillcolor=quoted(op.fill), width="0.3", fixedsize="true", penwidth="1.5")
    elif op is not None and op.diagram_shape:
        a.update(shape=op.diagram_shape, fillcolor=quoted(op.fill), penwidth="1.5")
    elif box.kind == "block":
        a.update(shape="box", fillcolor='"#e4dcf3"', peripheries="2")
    elif box.kind in ("input", "output"):
        a.update(shape="oval", fillcolor='"#ffffff"')
    else:
        style.append("rounded")
        a.update(fillcolor=quoted(op.fill if op is not None else Op.fill))
    if box.aux:
        style.append("dashed")
    a["style"] = quoted(",".join(style))
    return a


def attr_list(attrs: dict[str, str]) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in attrs.items()) + "]"


def to_dot(view: View, rankdir: str = "TB", title: str | None = None, subtitle: str = "") -> str:
    """DOT source of `view`, laid out top-to-bottom or left-to-right; `title` (and a smaller
    `subtitle`) head the graph."""
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be TB or LR, not {rankdir!r}")
    out = ["digraph netc {"]
    graph = {"rankdir": rankdir, "newrank": "true", "fontname": quoted(FONT), "fontsize": "11",
             "nodesep": "0.2", "ranksep": "0.25", "labelloc": "t"}
    if title is not None:
        sub = f'<BR/><FONT POINT-SIZE="9" COLOR="#555555">{html_text(subtitle)}</FONT>' if subtitle else ""
        graph["label"] = f"<<B>{html_text(title)}</B>{sub}>"
    out.append(f"  graph {attr_list(graph)};")
    out.append(f'  node [fontname={quoted(FONT)}, fontsize="10", shape=box, height="0.3", margin="0.08,0.03"];')
    out.append(f'  edge [fontname={quoted(FONT)}, fontsize="8", fontcolor="#666666", color="#555555", '
               f'arrowsize="0.6"];')

    children: dict[str | None, list[str]] = {}
    for scope, c in view.clusters.items():
        children.setdefault(c.parent, []).append(scope)
    members: dict[str | None, list[Box]] = {}
    for box in view.boxes.values():
        members.setdefault(box.cluster, []).append(box)

    def emit(scope: str | None, level: int) -> None:
        pad = "  " * (level + 1)
        if scope is not None:
            c: Cluster = view.clusters[scope]
            name = block_name(scope, c.parent)
            label = f"<<B>{html_text(name)}</B>"
            if c.block.label != name:
                label += f' <FONT COLOR="#555555">{html_text(c.block.label)}</FONT>'
            style = "rounded,filled" + (",dashed" if c.aux else "")
            attrs = {"id": quoted(c.id), "label": label + ">", "labeljust": "l", "style": quoted(style),
                     "fillcolor": quoted(CLUSTER_FILL[(level - 1) % len(CLUSTER_FILL)]), "color": '"#9aa7bb"',
                     "tooltip": tooltip(scope)}
            out.append(f"{pad[:-2]}subgraph {c.id} {{")
            out.append(f"{pad}graph {attr_list(attrs)};")
        for box in members.get(scope, ()):
            out.append(f"{pad}{box.id} {attr_list(box_attrs(box))};")
        for child in children.get(scope, ()):
            emit(child, level + 1)
        if scope is not None:
            out.append(f"{pad[:-2]}}}")

    emit(None, 0)
    for e in view.edges:
        attrs = {"label": quoted(e.label)}
        if e.aux:
            attrs["style"] = "dashed"
        out.append(f"  {e.src} -> {e.dst} {attr_list(attrs)};")
    out.append("}")
    return "\n".join(out) + "\n"


def view_of(network, depth: int | None = None) -> View:
    return build_view(network.graph, network.order, depth)


def subtitle(network) -> str:
    """Input and totals under the diagram's title (MACs: conv + linear, aux heads excluded)."""
    from netc.analysis.formats import human

    return (f"input {fmt_shape(network.input_shape)} · {human(network.params)} params · "
            f"{human(network.macs)} MACs")


def dot_source(network, depth: int | None = None, rankdir: str = "TB") -> str:
    return to_dot(view_of(network, depth), rankdir, network.name, subtitle(network))

