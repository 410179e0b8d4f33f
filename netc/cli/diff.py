"""`netc diff A B`: two specs, or one spec under two parameter sets, compared block by block."""
from __future__ import annotations

import click

from netc.analysis.diff_formats import FORMATS
from netc.cli.options import parse_shape


@click.command()
@click.argument("spec_a")
@click.argument("spec_b")
@click.option("--set", "overrides", multiple=True, metavar="K=V", help="override a parameter of both specs")
@click.option("--set-a", "overrides_a", multiple=True, metavar="K=V", help="override a parameter of A only")
@click.option("--set-b", "overrides_b", multiple=True, metavar="K=V", help="override a parameter of B only")
@click.option("--input", "input_shape", metavar="CxHxW", help="input shape of both, e.g. 3x320x320")
@click.option("--depth", type=click.IntRange(1), default=None, metavar="N",
              help="compare blocks at nesting level N (default: the innermost template instance, e.g. layer1.0)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--html", "html", is_flag=True, help="a page with both diagrams side by side, changed boxes marked")
@click.option("--diagram-depth", type=click.IntRange(1), default=None, metavar="N",
              help="with --html: collapse blocks nested N levels deep in the diagrams")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write to a file instead of stdout")
def diff(spec_a, spec_b, overrides, overrides_a, overrides_b, input_shape, depth, fmt, html, diagram_depth, output):
    """Compare SPEC_A with SPEC_B block by block: added, removed and changed layers (matched by
    scope name), and per block the change in params, MACs, activation memory, output shape and
    receptive field. `netc diff resnet50 resnet50 --set-b num_classes=10` compares parameter sets."""
    from netc import api
    from netc.spec.load import parse_overrides

    shape = parse_shape(input_shape)
    a = api.load(spec_a, parse_overrides(list(overrides) + list(overrides_a)), input_shape=shape)
    b = api.load(spec_b, parse_overrides(list(overrides) + list(overrides_b)), input_shape=shape)
    if html:
        text = api.diff_html(a, b, diagram_depth, depth)
        output = output or f"{a.name}-vs-{b.name}.html"
    else:
        from netc.analysis.diff import diff as compare
        from netc.analysis.diff_formats import RENDER

        text = RENDER[fmt](compare(a, b, depth))
    if output and output != "-":
        from netc.fsutil import write_atomic

        write_atomic(output, text)
        if html:
            click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
