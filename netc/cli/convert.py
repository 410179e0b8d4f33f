"""`netc convert-weights SRC DST --weights W -o OUT`: move trained weights between corresponding specs."""
from __future__ import annotations

import click

from netc.cli.options import compile_options
from netc.cli.output import echo, to_stdout, write_output


@click.command("convert-weights")
@click.argument("src")
@click.argument("dst")
@click.option("--weights", required=True, type=click.Path(),
              help="a state_dict of SRC saved with torch.save (e.g. torchvision's vgg16 weights)")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="where to write DST's state_dict ('-': stdout)")
@compile_options
def convert_weights(src, dst, weights, output, compile_spec):
    """Convert a state_dict of SRC into one of DST: layers matched by DST's `mapping:`, equal
    module paths, then position; FC weights become conv weights over their input's window (and back)."""
    from netc.api.reports import convert_weights as convert

    # --input is DST's: the weights do not depend on it
    source, target = compile_spec(src, shaped=False), compile_spec(dst)
    data, count = convert(source, target, weights)
    write_output(output, data)
    if not to_stdout(output):
        echo(f"wrote {output}: {count} tensors of {target.name} from {source.name}")
