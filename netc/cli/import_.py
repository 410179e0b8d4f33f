"""`netc import SOURCE -o spec.yaml`: an existing nn.Module back to a readable, verified spec."""
from __future__ import annotations

import click

from netc.cli.options import parse_shape
from netc.cli.output import echo, to_stdout, write_output
from netc.cli.progress import progress, quiet_option


@click.command(name="import")
@click.argument("source")
@click.argument("kwargs", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the spec here (default or '-': stdout)")
@click.option("--input", "input_shape", metavar="CxHxW", help="input shape to trace and verify at")
@click.option("--name", help="the spec's name (default: from SOURCE)")
@click.option("--check-only", is_flag=True, help="verify the import, write nothing")
@click.option("--no-verify", is_flag=True, help="write the spec without compiling and comparing it")
@quiet_option
def import_(source, kwargs, output, input_shape, name, check_only, no_verify, quiet):
    """Import SOURCE (torchvision:NAME, timm:NAME or path/to/file.py:ClassOrFactory, called with
    KEY=VALUE arguments) as a netc spec: traced with torch.fx, module paths as scope names,
    repeated submodules as templates and repeats; verified by compiling it, loading the
    source's state_dict strictly and comparing outputs.

    A .py SOURCE is run: netc executes the file (as an import, __name__ is not '__main__') and
    calls ClassOrFactory, so import only files you trust. What it prints goes to stderr; a file
    that exits (sys.exit) is an error."""
    from netc.api import import_spec
    from netc.api.reports import parse_kwargs
    from netc.cli.failures import running_source

    with running_source(source), progress(quiet) as stage:
        text, verdict = import_spec(source, parse_kwargs(kwargs), parse_shape(input_shape), name,
                                    check=check_only or not no_verify, stage=stage)
    if verdict is not None:
        echo(f"{source}: {verdict.summary()}", err=not check_only and to_stdout(output))
    if check_only:
        return
    write_output(output, text)
    if not to_stdout(output):
        echo(f"wrote {output} ({text.count(chr(10))} lines)")
