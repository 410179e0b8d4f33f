"""`netc verify SPEC SOURCE`: is a hand-written spec the source model? Exit 0 verified, 1 differs."""
from __future__ import annotations

import click

from netc.cli.options import compile_options
from netc.cli.output import echo


@click.command()
@click.argument("spec")
@click.argument("source")
@click.argument("kwargs", nargs=-1, metavar="[KEY=VALUE]...")
@compile_options
@click.option("--strict-order", is_flag=True, help="state_dict keys in another order than the source's fail too")
def verify(spec, source, kwargs, compile_spec, strict_order):
    """Compare SPEC with SOURCE (torchvision:NAME, timm:NAME, path/to/file.py:ClassOrFactory called
    with KEY=VALUE arguments, or a state_dict file .pt/.pth): strict state_dict load and key
    order, parameter counts, MACs against torch's FlopCounterMode, and outputs in eval and
    training mode at the input size and a quarter larger, with every parameter and buffer of the
    source randomised (so a branch whose weights start at zero cannot hide). Exit 0 when
    verified, 1 when they differ (naming the first module whose output differs), 2 on bad input."""
    from netc.api import verify as run
    from netc.api.reports import parse_kwargs

    def compile_at(shape=None):
        return compile_spec(spec) if shape is None else compile_spec(spec, shape=shape)

    from netc.cli.failures import running_source

    with running_source(source):  # a .py source is run
        report = run(compile_at, source, parse_kwargs(kwargs), strict_order)
    echo(f"{spec} vs {source}: {report.summary()}")
    if not report.verified or report.refused_sizes:
        raise SystemExit(1)
