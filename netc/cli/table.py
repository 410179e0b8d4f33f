"""`netc table SPEC`: per-layer and per-block parameters, MACs, shapes, memory and receptive field."""
from __future__ import annotations

import sys

import click

from netc.api import CPU_ISAS
from netc.api.reports import dtypes, paper_layouts, table_formats
from netc.cli.options import BATCH, Size, compile_options
from netc.cli.output import write_output
from netc.cli.paths import transform_options, transformed
from netc.cli.progress import progress
from netc.cli.spec_files import expand_specs


@click.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@compile_options
@click.option("--depth", type=click.IntRange(0), default=None,
              help="collapse blocks nested deeper than N into one subtotal row (1: one row per top-level block)")
@click.option("--format", "fmt", type=click.Choice([*table_formats(), "latex", "html"]), default="text",
              show_default=True, help="latex and html: with --layout paper")
@click.option("--dtype", type=click.Choice(dtypes()), default="float32", show_default=True,
              help="element type for activation memory")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write to a file instead of stdout ('-': stdout)")
@click.option("--layout", type=click.Choice(["cost", *paper_layouts()]), default="cost", show_default=True,
              help="paper: the architecture table as the paper prints it (Inception, VGG or ResNet style, "
                   "chosen from the graph; or name one); several SPECs become columns")
@click.option("--train", is_flag=True, help="instead: predicted peak memory and FLOPs of one training step")
@click.option("--batch", type=BATCH, default=32, show_default=True, help="with --train: images per step")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), default="sgd", show_default=True,
              help="with --train: sgd is SGD with momentum")
@click.option("--amp", is_flag=True, help="with --train: autocast (half-precision activations)")
@click.option("--device", "train_device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="with --train: the device whose kernels are modelled")
@click.option("--isa", type=click.Choice(CPU_ISAS), default=None,
              help="with --train on the CPU: the instruction set whose oneDNN kernels are modelled "
                   "[default: this CPU's]")
@click.option("--budget", type=Size(), metavar="SIZE",
              help="with --train: find the largest batch whose peak fits, e.g. 24GiB")
@transform_options
def table(specs, compile_spec, depth, fmt, dtype, output, layout, train, batch, optimizer, amp, train_device, isa,
          budget, lesion, reorder):
    """Cost table of SPEC: output shape, params, BN buffers, MACs (conv+linear), other FLOPs,
    activation memory, receptive field and jump per layer, with block subtotals and totals.
    SPECs may be files, folders, glob patterns or bundled names: with --layout paper they become
    the columns of one table, else each gets its cost table in turn."""
    names = expand_specs(specs)
    with progress(len(names) < 2) as stage, stage("compile", total=len(names)) as advance:
        networks = [transformed(_compiled(compile_spec, name, advance), lesion, reorder) for name in names]
    network, more = networks[0], networks[1:]
    if train or budget:
        if layout != "cost" or more:
            raise click.UsageError("--train predicts one SPEC's training step; it takes no --layout or further SPECs")
        if isa and train_device != "cpu":
            raise click.UsageError("--isa names a CPU's instruction set; it takes no --device cuda")
        from netc.api.reports import train_text

        text = train_text(network, fmt, batch, optimizer, amp, train_device, isa, budget)
    elif layout != "cost" or fmt in ("latex", "html"):
        from netc.cli.paper import paper_layout

        return paper_layout(networks, layout, fmt, output)
    elif more:
        if fmt not in ("text", "md"):
            raise click.UsageError(f"one {fmt} table holds one spec: give one SPEC, or --layout paper")
        text = "\n".join(n.table(depth=depth, fmt=fmt, dtype=dtype) for n in networks)
    elif fmt == "text" and not output and sys.stdout.isatty():
        from netc.api.reports import print_table

        return print_table(network, depth, dtype)
    else:
        text = network.table(depth=depth, fmt=fmt, dtype=dtype)
    write_output(output, text)


def _compiled(compile_spec, name, advance):
    network = compile_spec(name)
    advance()
    return network
