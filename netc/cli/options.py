"""The options of every command that compiles a spec: --set, --input and the limits on compiling."""
from __future__ import annotations

import functools
import os

import click

from netc.api.reports import Limits, parse_overrides


MAX_INT64 = 2**63 - 1  # what a limit is compared with; a larger one is a typo, not a setting
LIMIT = click.IntRange(1, MAX_INT64)
BATCH = click.IntRange(1, 2**31 - 1)  # torch indexes a dimension with int64, but no batch that large fits
ITERATIONS = click.IntRange(1, 1_000_000)
THREADS = click.IntRange(1, os.cpu_count() or 1)  # this machine's: beyond, OpenMP fails to start them


class Size(click.ParamType):
    """A size in bytes written like 24GiB, 512MiB or 8GB (kept as written; checked here)."""

    name = "size"

    def convert(self, value, param, ctx):
        from netc.api.reports import parse_size

        try:
            parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return value


class Opset(click.ParamType):
    """An ONNX opset the installed exporter can write (asked when the option is used)."""

    name = "opset"

    def convert(self, value, param, ctx):
        from netc.api.reports import onnx_opsets

        opsets = onnx_opsets()
        try:
            n = int(value)
        except (TypeError, ValueError):
            self.fail(f"'{str(value)[:40]}' is not an opset number", param, ctx)
        if n not in opsets:
            self.fail(f"{str(value)[:40]} is not an opset the exporter writes: {opsets[0]} to {opsets[-1]}", param, ctx)
        return n


def parse_shape(text: str | None):
    if text is None:
        return None
    try:
        dims = tuple(int(x) for x in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise click.BadParameter(f"expected a shape like 3x224x224, got '{text}'", param_hint="--input")
    if not 1 <= len(dims) <= 3 or any(not 0 < d <= MAX_INT64 for d in dims):
        raise click.BadParameter(f"expected 1 to 3 positive sizes like 3x224x224 (each below 2^63), "
                                 f"got '{text[:40]}'", param_hint="--input")
    return dims


def compile_options(fn):
    """--set, --input and the limits; passes `compile_spec`, which compiles a spec (a file or a bundled
    name) under them: `compile_spec(name, more=("k=v",), shaped=False)` adds overrides for that spec
    alone and leaves --input out (a spec whose weights only are read); `shape=` compiles it at
    another input shape than --input's."""

    @click.option("--set", "overrides", multiple=True, metavar="K=V", help="override a spec parameter (every SPEC)")
    @click.option("--input", "input_shape", metavar="CxHxW", help="input shape, e.g. 3x320x320 (every SPEC)")
    @click.option("--max-nodes", type=LIMIT, default=Limits.max_nodes, show_default=True,
                  help="limit: expanded nodes")
    @click.option("--max-depth", type=LIMIT, default=Limits.max_depth, show_default=True,
                  help="limit: nesting of blocks and templates")
    @click.option("--max-param-bytes", type=LIMIT, default=Limits.max_param_bytes, show_default=True,
                  help="limit: float32 parameter memory")
    @click.option("--max-file-bytes", type=LIMIT, default=Limits.max_file_bytes, show_default=True,
                  help="limit: the size of each spec file (imports included)")
    @click.option("--max-work", type=LIMIT, default=Limits.max_work, show_default=True,
                  help="limit: the work of compiling (about a microsecond a unit): repeats, expressions, values")
    @click.option("--lib", "lib_path", multiple=True, metavar="DIR",
                  help="a folder of template libraries that 'imports: [{lib: NAME}]' may name (before $NETC_PATH)")
    @functools.wraps(fn)
    def wrapper(overrides, input_shape, max_nodes, max_depth, max_param_bytes, max_file_bytes, max_work, lib_path,
                **kwargs):
        from netc.api import load

        values, shape = parse_overrides(list(overrides)), parse_shape(input_shape)
        limits = Limits(max_nodes=max_nodes, max_depth=max_depth, max_param_bytes=max_param_bytes,
                        max_file_bytes=max_file_bytes, max_work=max_work, lib_path=tuple(lib_path))

        def compile_spec(name: str, more=(), shaped: bool = True, shape: tuple | None = shape):
            return load(name, {**values, **parse_overrides(list(more))}, limits, shape if shaped else None)

        return fn(compile_spec=compile_spec, **kwargs)

    limits = [p for p in wrapper.__click_params__ if p.name.startswith("max_")]
    # click lists options in the reverse of this list: the limits, rarely changed, end the help
    wrapper.__click_params__[:] = limits + [p for p in wrapper.__click_params__ if p not in limits]
    return wrapper


def spec_options(fn):
    """The SPEC argument and `compile_options`; passes the compiled `network` to the command."""

    @click.argument("spec")
    @compile_options
    @functools.wraps(fn)
    def wrapper(spec, compile_spec, **kwargs):
        return fn(compile_spec(spec), **kwargs)

    return wrapper
