"""`netc paths SPEC`: input-output paths and their lengths (Veit et al. 2016); no torch.

Also the parsing of `netc build --lesion/--reorder`, which transform the compiled network."""
from __future__ import annotations

import click

from netc.cli.options import spec_options
from netc.cli.output import echo_data


def parse_range(text: str | None):
    if text is None:
        return None
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise click.BadParameter(f"expected a range like 19-35, got '{text}'", param_hint="--between")
    if not 0 <= lo <= hi:
        raise click.BadParameter(f"expected 0 <= LO <= HI, got '{text}'", param_hint="--between")
    return lo, hi


def transform_options(fn):
    """--lesion and --reorder, the experiments of Veit et al. 2016."""
    fn = click.option("--reorder", multiple=True, metavar="STAGE[=i,j,...]",
                      help="run a stage's blocks in this order (default: its shape-keeping blocks reversed)")(fn)
    return click.option("--lesion", multiple=True, metavar="SCOPE",
                        help="remove residual block SCOPE's body, or delete a plain layer or block "
                             "(Veit et al. 2016)")(fn)


@click.command()
@spec_options
@click.option("--between", metavar="LO-HI", help="also print the share of paths whose length is in LO..HI")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@transform_options
def paths(network, between, fmt, lesion, reorder):
    """Count SPEC's input-output paths exactly and show their lengths in residual blocks and in
    weighted layers: range, mean, central 95% interval, histogram."""
    from netc.api.reports import paths_text

    echo_data(paths_text(transformed(network, lesion, reorder), parse_range(between), fmt), nl=False)


def transformed(network, lesions, reorders):
    """`network` with each --lesion SCOPE and --reorder STAGE[=i,j,...] applied in turn."""
    for scope in lesions:
        network = network.lesion(scope)
    for text in reorders:
        stage, _, order = text.partition("=")
        try:
            perm = [int(x) for x in order.split(",")] if order else None
        except ValueError:
            raise click.BadParameter(f"expected STAGE or STAGE=i,j,..., got '{text}'", param_hint="--reorder")
        network = network.reorder(stage, perm)
    return network
