"""`netc render SPEC --dot|--svg|--png|--pdf|--html`: draw the network."""
from __future__ import annotations

import re
from pathlib import Path

import click

from netc.cli.options import spec_options
from netc.cli.output import write_output
from netc.cli.paths import transform_options, transformed


def default_path(name: str, fmt: str) -> Path:
    """`<spec name>.<fmt>` in the current directory, with the name reduced to safe filename characters."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "network"
    return Path(f"{stem}.{fmt}")


def pick_format(fmt: str | None, output: str | None) -> str:
    if fmt:
        return fmt
    from netc.api import render_formats

    suffix = Path(output).suffix.lstrip(".").lower() if output and output != "-" else ""
    return suffix if suffix in render_formats() else "dot"


@click.command()
@spec_options
@click.option("--dot", "fmt", flag_value="dot", help="DOT source (default; needs no graphviz binary)")
@click.option("--svg", "fmt", flag_value="svg", help="SVG through graphviz's dot")
@click.option("--png", "fmt", flag_value="png", help="PNG through graphviz's dot")
@click.option("--pdf", "fmt", flag_value="pdf", help="PDF through graphviz's dot")
@click.option("--html", "fmt", flag_value="html", help="one self-contained HTML page: diagram + cost table")
@click.option("-o", "--output", metavar="FILE",
              help="where to write ('-' = stdout); default: stdout for DOT, <name>.<format> otherwise")
@click.option("--depth", type=click.IntRange(1), default=None, metavar="N",
              help="collapse blocks nested N levels deep into one box each (1 = top-level blocks)")
@click.option("--rankdir", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB", show_default=True,
              help="top-to-bottom or left-to-right")
@transform_options
def render(network, fmt, output, depth, rankdir, lesion, reorder):
    """Draw SPEC: blocks as clusters, tensor shapes on edges; the format follows the flag or -o's suffix."""
    network = transformed(network, lesion, reorder)
    fmt = pick_format(fmt, output)
    data = network.render(fmt, depth, rankdir.upper())
    if output is None and fmt != "dot":
        output = str(default_path(network.name, fmt))
    write_output(output, data, announce=True)
