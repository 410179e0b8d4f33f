"""`netc table SPEC... --layout paper`: the architecture table in a paper's layout (no torch)."""
from __future__ import annotations

import click

from netc.cli.output import write_output


def paper_layout(network, more, layout, fmt, output):
    from netc.api import load
    from netc.api.reports import paper_text

    if layout == "cost":
        what = "several specs" if more else "--format latex"
        raise click.UsageError(f"{what} need --layout paper (or inception, configuration, stages)")
    if fmt not in ("text", "md", "latex"):
        raise click.UsageError(f"--layout {layout} writes text, md or latex, not {fmt}")
    write_output(output, paper_text([network] + [load(name) for name in more], layout, fmt))
