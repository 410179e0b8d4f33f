"""`netc schema`: the JSON Schema of the spec language."""
from __future__ import annotations

import click

from netc.cli.output import write_output


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write to a file instead of stdout ('-': stdout)")
def schema(output):
    """Print the JSON Schema of the spec language (for yaml-language-server and other editors)."""
    from netc.api.reports import schema_text

    write_output(output, schema_text())
