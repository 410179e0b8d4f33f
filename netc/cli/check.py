"""`netc check SPEC...`: validate and print the compact shape trace and totals."""
from __future__ import annotations

import click

from netc.api.reports import fmt_shape, human
from netc.cli.options import compile_options
from netc.cli.output import echo
from netc.cli.spec_files import expand_specs


@click.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@compile_options
@click.option("-q", "--quiet", is_flag=True, help="print only the totals")
def check(specs, compile_spec, quiet):
    """Validate SPECs (files, folders, glob patterns or bundled spec names): print each op's output
    shape and the totals. Every spec is checked; the errors of all are reported, exit status 2."""
    from netc.errors import Collector, NetcError

    errors = Collector()
    for name in expand_specs(specs):
        try:
            network = compile_spec(name)
        except NetcError as exc:
            errors.add(exc)
            continue
        for warning in network.warnings:
            echo(warning.format(), err=True)
        _summary(network, quiet)
    errors.raise_if_any()


def _summary(network, quiet: bool) -> None:
    if not quiet:
        rows = [(d.scope, d.op, fmt_shape(d.shape), f"{d.params:,}" if d.params else "")
                for _, d in network.nodes()]
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        for scope, op, shape, params in rows:
            echo(f"{scope:<{width[0]}}  {op:<{width[1]}}  {shape:<{width[2]}}  {params}".rstrip())
    outs = ", ".join(f"{name}{' (aux)' if aux else ''}: {fmt_shape(network.graph.node(nid).shape)}"
                     for name, nid, aux in network.outputs)
    echo(f"{network.name}: input {fmt_shape(network.input_shape)} -> {outs}")
    echo(f"params: {network.params:,}  MACs: {network.macs:,} ({human(network.macs)}, conv+linear, "
         f"aux heads excluded)  ops: {len(network.order) - 1}")
