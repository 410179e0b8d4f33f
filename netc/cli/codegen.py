"""`netc codegen SPEC [-o DIR]`: write readable standalone PyTorch source to DIR/<name>.py (`-o -`: stdout).

`python -m netc.cli.codegen` (`make generated`) regenerates `generated/` for every bundled
spec: the committed files the staleness test compares against.
"""
from __future__ import annotations

from pathlib import Path

import click

from netc.cli.options import spec_options
from netc.cli.output import echo, write_output
from netc.cli.progress import progress

GENERATED = Path(__file__).resolve().parent.parent.parent / "generated"


def _write(network, out_dir, quiet: bool) -> None:
    with progress(quiet) as stage, stage(f"generate and format {network.codegen_path(out_dir)}"):
        source = network.codegen(out_dir)
    if not quiet:
        echo(f"wrote {network.codegen_path(out_dir)} ({source.count(chr(10))} lines)")


def regenerate_all(out_dir: Path = GENERATED, quiet: bool = False) -> list[Path]:
    """Generate every bundled spec into `out_dir`; every spec compiles before anything is written."""
    from netc.api import SPECS_DIR, load
    from netc.api.reports import write_atomic
    from netc.errors import Collector, NetcError

    errors, sources = Collector(), {}
    for spec in sorted(SPECS_DIR.glob("*.yaml")):
        try:
            net = load(spec)
            sources[net.codegen_path(out_dir)] = net.codegen()
        except NetcError as exc:
            errors.add(exc)
    errors.raise_if_any()
    for path, source in sources.items():
        write_atomic(path, source)
        if not quiet:
            echo(f"wrote {path} ({source.count(chr(10))} lines)")
    return list(sources)


@click.command()
@spec_options
@click.option("-o", "--out-dir", default="generated", show_default=True, type=click.Path(file_okay=False),
              help="directory to write <name>.py into ('-': the source to stdout)")
@click.option("-q", "--quiet", is_flag=True, help="print nothing")
def codegen(network, out_dir, quiet):
    """Write SPEC as standalone PyTorch source: one class per template, a factory function.

    Regenerate the committed generated/ of every bundled spec with `make generated`."""
    if out_dir == "-":
        with progress(quiet) as stage, stage("generate and format"):
            source = network.codegen()
        write_output("-", source)
        return
    _write(network, out_dir, quiet)


if __name__ == "__main__":  # `python -m netc.cli.codegen`: regenerate generated/ (make generated)
    from netc.cli import report
    from netc.errors import NetcError

    try:
        regenerate_all()
    except NetcError as exc:
        report(exc)
        raise SystemExit(2) from None
