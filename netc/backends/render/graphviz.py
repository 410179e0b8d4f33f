"""Lays out DOT source with graphviz's `dot` binary (the one render step that needs it)."""
from __future__ import annotations

import shutil
import subprocess

from netc.errors import error

DOT_TIMEOUT_S = 300


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
