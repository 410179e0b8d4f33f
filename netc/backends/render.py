"""The render backend: IR -> DOT text, or SVG/PNG/PDF through graphviz's `dot`, or an HTML report.

DOT is written by netc itself, so `--dot` needs neither the graphviz binary nor torch; the
other formats run `dot` once on that text.
"""
from __future__ import annotations

import shutil
import subprocess

from netc.backends.dot import to_dot
from netc.backends.render_view import View, build_view
from netc.errors import error
from netc.ops import fmt_shape

FORMATS = ("dot", "svg", "png", "pdf", "html")
BINARY = ("png", "pdf")
DOT_TIMEOUT_S = 300


def view_of(network, depth: int | None = None) -> View:
    return build_view(network.graph, network.order, depth)


def subtitle(network) -> str:
    """Input and totals under the diagram's title (MACs: conv + linear, aux heads excluded)."""
    from netc.analysis.formats import human

    return (f"input {fmt_shape(network.input_shape)} · {human(network.params)} params · "
            f"{human(network.macs)} MACs")


def dot_source(network, depth: int | None = None, rankdir: str = "TB") -> str:
    return to_dot(view_of(network, depth), rankdir, network.name, subtitle(network))


def run_dot(source: str, fmt: str) -> bytes:
    """Lay out DOT source with graphviz's `dot` binary; NetcError when it is missing or fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise error("graphviz", f"rendering {fmt.upper()} needs the graphviz 'dot' program, which is not on PATH",
                    None, "install graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
                    "graphviz); 'netc render --dot' needs no binary")
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=source.encode(), capture_output=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise error("graphviz", f"graphviz 'dot' took over {DOT_TIMEOUT_S} s to lay out the diagram", None,
                    "collapse blocks with --depth 1 or 2")
    if done.returncode != 0:
        msg = done.stderr.decode(errors="replace").strip()
        raise error("graphviz", f"graphviz 'dot' failed (exit {done.returncode}): {msg}")
    return done.stdout


def render(network, fmt: str = "dot", depth: int | None = None, rankdir: str = "TB") -> str | bytes:
    """The diagram of `network` in `fmt`: str for dot/svg/html, bytes for png/pdf."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "html":
        from netc.backends.html import report
        return report(network, depth, rankdir)
    source = dot_source(network, depth, rankdir)
    if fmt == "dot":
        return source
    out = run_dot(source, fmt)
    return out if fmt in BINARY else out.decode()
