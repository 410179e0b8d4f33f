"""`netc convert-weights SRC DST --weights W -o OUT`: move trained weights between corresponding specs."""
from __future__ import annotations

import click

from netc.cli.options import compile_options
from netc.cli.output import echo, to_stdout, write_output


@click.command("convert-weights")
@click.argument("src")
@click.argument("dst")
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False),
              help="a state_dict of SRC saved with torch.save (e.g. torchvision's vgg16 weights)")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="where to write DST's state_dict ('-': stdout)")
@compile_options
def convert_weights(src, dst, weights, output, compile_spec):
    """Convert a state_dict of SRC into one of DST: layers matched by DST's `mapping:`, equal
    module paths, then position; FC weights become conv weights over their input's window (and back)."""
    import io

    import torch

    from netc.errors import error

    # --input is DST's: the weights do not depend on it
    source, target = compile_spec(src, shaped=False), compile_spec(dst)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or one holding more than tensors
        raise error("io", f"cannot read a state_dict from '{weights}': {exc}", None,
                    "save it with torch.save(model.state_dict(), path)") from None
    if not isinstance(state, dict):
        raise error("io", f"'{weights}' holds a {type(state).__name__}, not a state_dict", None,
                    "save it with torch.save(model.state_dict(), path)")
    converted = target.weights_from(source, state)
    buf = io.BytesIO()
    torch.save(converted, buf)
    write_output(output, buf.getvalue())
    if not to_stdout(output):
        echo(f"wrote {output}: {len(converted)} tensors of {target.name} from {source.name}")
