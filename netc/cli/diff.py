"""`netc diff A B`: two specs, or one spec under two parameter sets, compared block by block."""
from __future__ import annotations

import click

from netc.api.reports import diff_formats
from netc.cli.options import compile_options
from netc.cli.output import write_output


@click.command()
@click.argument("spec_a")
@click.argument("spec_b")
@compile_options
@click.option("--set-a", "overrides_a", multiple=True, metavar="K=V", help="override a parameter of A only")
@click.option("--set-b", "overrides_b", multiple=True, metavar="K=V", help="override a parameter of B only")
@click.option("--depth", type=click.IntRange(1), default=None, metavar="N",
              help="compare blocks at nesting level N (default: the innermost template instance, e.g. layer1.0)")
@click.option("--format", "fmt", type=click.Choice(diff_formats()), default="text", show_default=True)
@click.option("--html", "html", is_flag=True, help="a page with both diagrams side by side, changed boxes marked")
@click.option("--diagram-depth", type=click.IntRange(1), default=None, metavar="N",
              help="with --html: collapse blocks nested N levels deep in the diagrams")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write to a file instead of stdout ('-': stdout)")
def diff(spec_a, spec_b, compile_spec, overrides_a, overrides_b, depth, fmt, html, diagram_depth, output):
    """Compare SPEC_A with SPEC_B block by block: added, removed and changed layers (matched by
    scope name), and per block the change in params, MACs, activation memory, output shape and
    receptive field. `netc diff resnet50 resnet50 --set-b num_classes=10` compares parameter sets."""
    from netc import api
    from netc.api.reports import diff_text

    a, b = compile_spec(spec_a, overrides_a), compile_spec(spec_b, overrides_b)
    if html:
        text = api.diff_html(a, b, diagram_depth, depth)
        output = output or f"{a.name}-vs-{b.name}.html"
    else:
        text = diff_text(a, b, depth, fmt)
    write_output(output, text, announce=html)
