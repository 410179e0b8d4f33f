"""Where a command's result goes: `-o FILE` (written atomically: a reader never sees half of it), or
stdout with no -o or with `-o -`; and `echo`, the one way a command prints a message.

Everything netc prints or writes as text passes one escaper (`netc.errors`): messages through
`echo` (`printable_lines`: `\\x1b`, `\\xff` for a file name's non-UTF-8 byte), data through
`write_output` (`inert`: `\\u001b`, still the same value inside a JSON, YAML or Python string).
So no path, name or value reaches a terminal as a control character, and a file name that is
not UTF-8 is written escaped rather than failing to encode.
"""
from __future__ import annotations

import sys

import click

from netc.api.reports import write_atomic
from netc.errors import inert, printable_lines


def to_stdout(output: str | None) -> bool:
    return output is None or output == "-"


def echo(message: str, err: bool = False, nl: bool = True) -> None:
    """Print a message (a path, a name, a verdict) with its control characters escaped."""
    click.echo(printable_lines(message), err=err, nl=nl)


def echo_data(data: str, nl: bool = True) -> None:
    """Print a report or JSON document to stdout, `inert` as `write_output` writes it."""
    click.echo(inert(data), nl=nl)


def write_output(output: str | None, data: str | bytes, announce: bool = False) -> None:
    """`data` to the file `output`, or to stdout (text or bytes); `announce`: say 'wrote FILE' on stderr."""
    if isinstance(data, str):
        data = inert(data)
    if to_stdout(output):
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            click.echo(data, nl=False)
        return
    write_atomic(output, data)
    if announce:
        echo(f"wrote {output}", err=True)
