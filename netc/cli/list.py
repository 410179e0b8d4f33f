"""`netc list`: the bundled specs with params, MACs and a one-line description (no torch)."""
from __future__ import annotations

import click

from netc.api.reports import catalogue_formats
from netc.cli.output import echo, echo_data


@click.command("list")
@click.option("--format", "fmt", type=click.Choice(catalogue_formats()), default="text", show_default=True)
@click.option("--update", "update", type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="rewrite the catalogue block between the marker comments of FILE (e.g. README.md) "
                   "with the markdown table, instead of printing")
def list_(fmt, update):
    """List the bundled specs (usable by name: `netc check resnet50`) with their params and MACs."""
    from netc.api.reports import catalogue_text, catalogue_update

    if update:
        n, changed = catalogue_update(update)
        echo(f"{update}: catalogue of {n} specs {'updated' if changed else 'already current'}")
        return
    echo_data(catalogue_text(fmt), nl=False)
