"""`netc table SPEC... --layout paper`: the architecture table in a paper's layout (no torch)."""
from __future__ import annotations

import click

from netc.cli.output import write_output


def paper_layout(networks, layout, fmt, output):
    from netc.api.reports import paper_text

    if layout == "cost":
        raise click.UsageError(f"--format {fmt} needs --layout paper (or inception, configuration, stages)")
    if fmt not in ("text", "md", "latex", "html"):
        raise click.UsageError(f"--layout {layout} writes text, md, latex or html, not {fmt}")
    write_output(output, paper_text(networks, layout, fmt))
