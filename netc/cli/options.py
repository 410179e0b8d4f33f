"""Options shared by the commands that compile a spec."""
from __future__ import annotations

import functools

import click

from netc.spec.expand import Limits


def parse_shape(text: str | None):
    if text is None:
        return None
    try:
        dims = tuple(int(x) for x in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise click.BadParameter(f"expected a shape like 3x224x224, got '{text}'", param_hint="--input")
    if not 1 <= len(dims) <= 3 or any(d <= 0 for d in dims):
        raise click.BadParameter(f"expected 1 to 3 positive sizes like 3x224x224, got '{text}'", param_hint="--input")
    return dims


def spec_options(fn):
    """SPEC argument plus --set, --input and the limits; passes `network_args` to the command."""

    @click.argument("spec")
    @click.option("--set", "overrides", multiple=True, metavar="K=V", help="override a spec parameter")
    @click.option("--input", "input_shape", metavar="CxHxW", help="input shape, e.g. 3x320x320")
    @click.option("--max-nodes", type=click.IntRange(1), default=Limits.max_nodes, show_default=True,
                  help="limit on expanded nodes")
    @click.option("--max-depth", type=click.IntRange(1), default=Limits.max_depth, show_default=True,
                  help="limit on nesting of blocks and templates")
    @click.option("--max-param-bytes", type=click.IntRange(1), default=Limits.max_param_bytes, show_default=True,
                  help="limit on float32 parameter memory")
    @click.option("--max-file-bytes", type=click.IntRange(1), default=Limits.max_file_bytes, show_default=True,
                  help="limit on the size of each spec file (imports included)")
    @click.option("--max-work", type=click.IntRange(1), default=Limits.max_work, show_default=True,
                  help="limit on the work of compiling (about a microsecond a unit): repeats, expressions, values")
    @functools.wraps(fn)
    def wrapper(spec, overrides, input_shape, max_nodes, max_depth, max_param_bytes, max_file_bytes, max_work,
                **kwargs):
        from netc.api import load
        from netc.spec.load import parse_overrides

        network = load(spec, parse_overrides(list(overrides)),
                       Limits(max_nodes=max_nodes, max_depth=max_depth, max_param_bytes=max_param_bytes,
                              max_file_bytes=max_file_bytes, max_work=max_work),
                       parse_shape(input_shape))
        return fn(network, **kwargs)

    return wrapper
