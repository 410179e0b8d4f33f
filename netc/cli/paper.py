"""`netc table SPEC... --layout paper`: the architecture table in a paper's layout (no torch)."""
from __future__ import annotations

import click


def paper_layout(network, more, layout, fmt, output):
    from netc.analysis.paper import paper_table, render
    from netc.api import load

    if layout == "cost":
        what = "several specs" if more else "--format latex"
        raise click.UsageError(f"{what} need --layout paper (or inception, configuration, stages)")
    if fmt not in ("text", "md", "latex"):
        raise click.UsageError(f"--layout {layout} writes text, md or latex, not {fmt}")
    networks = [network] + [load(name) for name in more]
    text = render(paper_table(networks, layout), fmt)
    if output:
        from netc.fsutil import write_atomic

        write_atomic(output, text)
    else:
        click.echo(text, nl=False)
