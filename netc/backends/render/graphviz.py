"""Lays out DOT source with graphviz's `dot` binary (the one render step that needs it).

`dot`'s layout is super-linear in the boxes it places (a diff page of two 1,000-block networks ran
past 300 s), so a diagram of more than MAX_BOXES boxes is refused before `dot` starts, with the
collapsing depth that would fit as the hint; `--dot` writes the DOT text at any size.
"""
from __future__ import annotations

import shutil
import subprocess

from netc.backends.render.dot import subtitle, to_dot
from netc.backends.render.view import View, build_view
from netc.errors import error

DOT_TIMEOUT_S = 300
MAX_BOXES = 1000  # benchmarks/bench_layout.py: dot 2.43 takes ~6 s for 1,000 boxes of residual clusters, 20 s for 1,500
HINT_DEPTHS = 4  # collapsing depths tried for the hint


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


def fits(view: View) -> bool:
    return len(view.boxes) <= MAX_BOXES


def check_size(network, view: View, option: str = "--depth") -> None:
    """error[limit] at the spec's top when `view` has more boxes than graphviz lays out in bounded time."""
    if fits(view):
        return
    hint = "'netc render --dot' writes the DOT text without laying it out"
    for depth in range(1, HINT_DEPTHS + 1):
        boxes = len(build_view(network.graph, network.order, depth).boxes)
        if boxes <= MAX_BOXES:
            hint = f"collapse blocks: {option} {depth} draws {boxes:,} boxes; or {hint}"
            break
    raise error("limit", f"the diagram of '{network.name}' has {len(view.boxes):,} boxes; graphviz lays out at most "
                f"{MAX_BOXES:,} (its layout time grows faster than the boxes)", network.source.start_loc(), hint)


def draw(network, view: View, rankdir: str, fmt: str, option: str = "--depth") -> bytes:
    """`view` of `network` laid out by graphviz in `fmt`, after the size check."""
    check_size(network, view, option)
    return run_dot(to_dot(view, rankdir, network.name, subtitle(network)), fmt)
