"""Where a command's result goes: `-o FILE` (written atomically: a reader never sees half of it), or
stdout with no -o or with `-o -`."""
from __future__ import annotations

import sys

import click

from netc.api.reports import write_atomic


def to_stdout(output: str | None) -> bool:
    return output is None or output == "-"


def write_output(output: str | None, data: str | bytes, announce: bool = False) -> None:
    """`data` to the file `output`, or to stdout (text or bytes); `announce`: say 'wrote FILE' on stderr."""
    if to_stdout(output):
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            click.echo(data, nl=False)
        return
    write_atomic(output, data)
    if announce:
        click.echo(f"wrote {output}", err=True)
