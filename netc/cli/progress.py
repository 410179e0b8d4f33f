"""Progress on stderr for slow commands: a line per stage with a spinner or, where the amount is
known, a bar, and its elapsed time (rich). Shown only when stderr is a terminal, never with -q, so
a pipe, a log file or a script sees exactly the command's output.

    with progress(quiet) as stage:
        with stage("build"):
            ...
        with stage("lint", total=len(names)) as advance:
            for name in names: ...; advance()
"""
from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator

import click


def quiet_option(fn):
    """`-q/--quiet`: no progress display."""
    return click.option("-q", "--quiet", is_flag=True, help="no progress display on stderr")(fn)


def _nothing(n: int = 1) -> None:
    return None


class Stages:
    """Opens a stage of the display: `with stages("what", total=None) as advance`."""

    def __init__(self, display=None):
        self._display = display

    @contextlib.contextmanager
    def __call__(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        display = self._display
        if display is None:
            yield _nothing
            return
        task = display.add_task(description, total=total, unknown=total is None)
        try:
            yield functools.partial(display.advance, task)
        finally:
            if total is None:  # a stage of unknown amount: its bar ends full when it is done
                display.update(task, total=1, completed=1)
            display.stop_task(task)  # its elapsed time stops here


@contextlib.contextmanager
def progress(quiet: bool = False, stdout_above: bool = False) -> Iterator[Stages]:
    """The stages of one command, on stderr if it is a terminal and not `quiet`. `stdout_above`:
    what is printed to stdout meanwhile (a log streamed as it comes) goes above the display when
    stdout is the same terminal, not through it."""
    from rich.console import Console

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield Stages()
        return
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class Count(ProgressColumn):  # "3/12" where the amount is known, nothing for a stage of unknown amount
        def render(self, task):
            return Text("" if task.fields.get("unknown") else f"{task.completed:g}/{task.total:g}")

    columns = (SpinnerColumn(finished_text="✓"), TextColumn("{task.description}"), BarColumn(), Count(),
               TimeElapsedColumn())
    above = stdout_above and sys.stdout.isatty()  # else stdout stays the output, wherever it goes
    with Progress(*columns, console=console, redirect_stdout=above) as display:
        yield Stages(display)
