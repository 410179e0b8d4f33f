"""`netc lint SPEC...`: check specs against the design rules of the catalogue's papers (no torch)."""
from __future__ import annotations

import click

from netc.analysis.lint import RULES, SEVERITIES
from netc.analysis.lint.output import FORMATS
from netc.cli.options import parse_shape


def rule_list() -> str:
    width = max(len(r.title) for r in RULES.values())
    return "".join(f"{r.id}  {r.severity:<7}  {r.title:<{width}}  {r.source}\n" for r in RULES.values())


@click.command()
@click.argument("specs", nargs=-1)
@click.option("--catalogue", is_flag=True, help="lint every bundled spec (besides any SPEC given)")
@click.option("--set", "overrides", multiple=True, metavar="K=V", help="override a spec parameter (every SPEC)")
@click.option("--input", "input_shape", metavar="CxHxW", help="input shape, e.g. 3x320x320 (every SPEC)")
@click.option("--severity", type=click.Choice(SEVERITIES), default="warning", show_default=True,
              help="report findings of this severity and above; exit status 1 if any")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write to a file instead of stdout")
@click.option("--rules", "show_rules", is_flag=True, help="list the rules and exit")
@click.option("--catalogue-doc", is_flag=True,
              help="write the calibration document (every rule and what it finds in the catalogue; docs/lint.md)")
def lint(specs, catalogue, overrides, input_shape, severity, fmt, output, show_rules, catalogue_doc):
    """Check SPECs (files or bundled names) against design rules from the papers: representational
    bottlenecks, factorisable kernels, needless projections, redundant layers. Findings point at
    the spec layer that causes them; `lint: {ignore: [NL102]}` in a spec or on a layer silences a rule."""
    from netc.analysis.lint import at_least
    from netc.analysis.lint import lint as run_rules
    from netc.analysis.lint import output as out
    from netc.api import load
    from netc.spec.load import parse_overrides

    if show_rules or catalogue_doc:
        if show_rules:
            text = rule_list()
        else:
            from netc.analysis.lint.calibration import document

            text = document()
        return emit(text, output)
    if not specs and not catalogue:
        raise click.UsageError("give at least one SPEC, or --catalogue")
    names = list(specs)
    if catalogue:
        from netc.catalogue import spec_files

        names += [shown(p) for p in spec_files()]
    values, shape = parse_overrides(list(overrides)), parse_shape(input_shape)
    findings, silenced = [], 0
    for name in names:
        found, n = run_rules(load(name, values, input_shape=shape))
        findings += [f for f in found if at_least(f.severity, severity)]
        silenced += n
    text = out.text(findings) if fmt == "text" else out.RENDER[fmt](findings, silenced)
    emit(text, output)
    if fmt == "text":
        click.echo(out.summary(findings, silenced, len(names)), err=True)
    if findings:
        raise SystemExit(1)


def shown(path) -> str:
    """A bundled spec's path as locations show it: relative to the current directory when below it."""
    import os

    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def emit(text: str, output: str | None) -> None:
    if output:
        from netc.fsutil import write_atomic

        write_atomic(output, text)
    else:
        click.echo(text, nl=False)
