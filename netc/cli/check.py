"""`netc check SPEC`: validate and print the compact shape trace and totals."""
from __future__ import annotations

import click

from netc.api.reports import fmt_shape, human
from netc.cli.options import spec_options
from netc.cli.output import echo


@click.command()
@spec_options
@click.option("-q", "--quiet", is_flag=True, help="print only the totals")
def check(network, quiet):
    """Validate SPEC (a file or a bundled spec name): print each op's output shape and the totals."""
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
