"""The HTML page of `netc diff --html`: the two diagrams side by side, changed boxes marked, and
the block-by-block table of the diff (`netc.analysis.diff`).

Boxes are marked by adding a class to graphviz's `<g id="n12" class="node">` groups: in the first
diagram the layers the second one changes or removes, in the second the layers it changes or
adds. Ids are prefixed per diagram (`a-n12`, `b-n12`) so the two SVGs can share one page.
"""
from __future__ import annotations

import base64
import hashlib
import re

import jinja2

from netc.analysis.diff import Diff
from netc.analysis.diff_formats import QUANTITIES, _arrow, _layer_text, headline, signed
from netc.backends.render.graphviz import draw
from netc.backends.render.html import TEMPLATES, inline_svg
from netc.backends.render.view import build_view
from netc.ops import fmt_shape

_ID = re.compile(r'\bid="([^"]*)"')


def marked_svg(network, depth, rankdir, marks: dict[int, str], prefix: str) -> tuple[str, int]:
    """The network's SVG with ids prefixed and each marked IR node's box given its class."""
    view = build_view(network.graph, network.order, depth)
    svg = inline_svg(draw(network, view, rankdir, "svg", "--diagram-depth").decode())
    box_class: dict[str, str] = {}
    for nid, cls in marks.items():
        box = view.box_of.get(nid)
        if box is not None:
            box_class.setdefault(box, cls)
    def repl(m):
        cls = box_class.get(m.group(1))
        return f'id="{prefix}-{m.group(1)}"' + (f' data-mark="{cls}"' if cls else "")
    return _ID.sub(repl, svg), len(box_class)


def report(a, b, d: Diff, depth: int | None = None, rankdir: str = "TB") -> str:
    marks_a = {c.a.id: c.status for c in d.layers if c.a is not None and c.status in ("changed", "removed")}
    marks_b = {c.b.id: c.status for c in d.layers if c.b is not None and c.status in ("changed", "added")}
    svg_a, n_a = marked_svg(a, depth, rankdir, marks_a, "a")
    svg_b, n_b = marked_svg(b, depth, rankdir, marks_b, "b")
    blocks = [{"scope": blk.scope, "status": blk.status,
               "deltas": [signed(blk.delta(attr), name, base) for attr, name, base in QUANTITIES],
               "shape": _arrow(blk.a.shape if blk.a else None, blk.b.shape if blk.b else None, fmt_shape),
               "layers": [(c.status, _layer_text(c)) for c in blk.layers]}
              for blk in d.blocks]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    # the page's one script, allowed by its hash alone: nothing injected into the page could run
    script = (TEMPLATES / "first_change.js").read_text(encoding="utf-8")
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return env.get_template("diff.html.j2").render(
        headline=headline(d), a=a.name, b=b.name, svg_a=svg_a, svg_b=svg_b, marked=(n_a, n_b),
        quantities=[name for _, name, _ in QUANTITIES], blocks=blocks, script=script, script_hash=script_hash)
