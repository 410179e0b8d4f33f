"""`netc lint SPEC...`: check specs against the design rules of the catalogue's papers (no torch)."""
from __future__ import annotations

import click

from netc.api.reports import lint_formats, lint_severities
from netc.cli.options import compile_options
from netc.cli.output import echo, write_output
from netc.cli.progress import progress, quiet_option
from netc.cli.spec_files import expand_specs


@click.command()
@click.argument("specs", nargs=-1)
@compile_options
@click.option("--catalogue", is_flag=True, help="lint every bundled spec (besides any SPEC given)")
@click.option("--severity", type=click.Choice(lint_severities()), default="warning", show_default=True,
              help="report findings of this severity and above; exit status 1 if any")
@click.option("--format", "fmt", type=click.Choice(lint_formats()), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write to a file instead of stdout ('-': stdout)")
@click.option("--rules", "show_rules", is_flag=True, help="list the rules and exit")
@click.option("--catalogue-doc", is_flag=True,
              help="write the calibration document (every rule and what it finds in the catalogue; docs/lint.md)")
@quiet_option
def lint(specs, compile_spec, catalogue, severity, fmt, output, show_rules, catalogue_doc, quiet):
    """Check SPECs (files, folders, glob patterns or bundled names) against design rules from the papers: representational
    bottlenecks, factorisable kernels, needless projections, redundant layers. Findings point at
    the spec layer that causes them; `lint: {ignore: [NL102]}` in a spec or on a layer silences a rule."""
    from netc.api import reports

    if show_rules or catalogue_doc:
        return write_output(output, reports.lint_rules_text() if show_rules else reports.lint_calibration())
    if not specs and not catalogue:
        raise click.UsageError("give at least one SPEC, or --catalogue")
    names = expand_specs(specs) + (reports.bundled_spec_names() if catalogue else [])
    with progress(quiet) as stage, stage("lint", total=len(names)) as advance:
        text, summary, found = reports.lint_report(_compiled(names, compile_spec, advance), severity, fmt)
    write_output(output, text)
    if fmt == "text":
        echo(summary, err=True)
    if found:
        raise SystemExit(1)


def _compiled(names, compile_spec, advance):
    for name in names:
        yield compile_spec(name)
        advance()
