"""`netc list`: the bundled specs with params, MACs and a one-line description (no torch)."""
from __future__ import annotations

from pathlib import Path

import click

from netc.catalogue import FORMATS


@click.command("list")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--update", "update", type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="rewrite the catalogue block between the marker comments of FILE (e.g. README.md) "
                   "with the markdown table, instead of printing")
def list_(fmt, update):
    """List the bundled specs (usable by name: `netc check resnet50`) with their params and MACs."""
    from netc import catalogue

    items = catalogue.entries()
    if update:
        from netc.fsutil import write_atomic

        text = Path(update).read_text(encoding="utf-8")
        new = catalogue.update_block(text, catalogue.to_markdown(items), update)
        if new != text:
            write_atomic(update, new)
        click.echo(f"{update}: catalogue of {len(items)} specs {'updated' if new != text else 'already current'}")
        return
    click.echo(catalogue.render(items, fmt), nl=False)
