"""`netc schema`: the JSON Schema of the spec language."""
from __future__ import annotations

import json

import click


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write to a file instead of stdout")
def schema(output):
    """Print the JSON Schema of the spec language (for yaml-language-server and other editors)."""
    from netc.fsutil import write_atomic
    from netc.schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if output:
        write_atomic(output, text)
    else:
        click.echo(text, nl=False)
