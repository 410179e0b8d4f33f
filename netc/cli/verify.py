"""`netc verify SPEC SOURCE`: is a hand-written spec the source model? Exit 0 verified, 1 differs."""
from __future__ import annotations

import click

from netc.cli.options import parse_shape


@click.command()
@click.argument("spec")
@click.argument("source")
@click.argument("kwargs", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--set", "overrides", multiple=True, metavar="K=V", help="override a spec parameter")
@click.option("--input", "input_shape", metavar="CxHxW", help="input shape to compare at (and a second, larger one)")
@click.option("--strict-order", is_flag=True, help="state_dict keys in another order than the source's fail too")
def verify(spec, source, kwargs, overrides, input_shape, strict_order):
    """Compare SPEC with SOURCE (torchvision:NAME, timm:NAME, path/to/file.py:ClassOrFactory called
    with KEY=VALUE arguments, or a state_dict file .pt/.pth): strict state_dict load and key
    order, parameter counts, MACs against torch's FlopCounterMode, and outputs in eval and
    training mode at two input sizes with every parameter and buffer of the source randomised
    (so a branch whose weights start at zero cannot hide). Exit 0 when verified, 1 when they
    differ (naming the first module whose output differs), 2 on bad input."""
    from netc.api import verify as run
    from netc.interop.source import parse_kwargs
    from netc.spec.load import parse_overrides

    report = run(spec, source, parse_kwargs(kwargs), parse_overrides(list(overrides)), parse_shape(input_shape),
                 strict_order)
    click.echo(f"{spec} vs {source}: {report.summary()}")
    if not report.verified or report.refused_sizes:
        raise SystemExit(1)
