"""`netc export SPEC --onnx out.onnx | --torch-export out.pt2`: deployment files, verified."""
from __future__ import annotations

import click

from netc.cli.options import Opset, spec_options
from netc.cli.output import echo
from netc.cli.progress import progress, quiet_option


@click.command()
@spec_options
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), help="write an ONNX model here")
@click.option("--torch-export", "program_path", type=click.Path(dir_okay=False),
              help="write a saved torch.export.ExportedProgram here (.pt2)")
@click.option("--opset", type=Opset(), default=18, show_default=True,
              help="ONNX opset version (those the installed exporter writes: 18 to its newest)")
@click.option("--dynamic-batch", is_flag=True, help="leave the batch dimension symbolic")
@click.option("--weights", type=click.Path(dir_okay=False), help="load this state_dict (strictly) before exporting")
@click.option("--no-verify", is_flag=True, help="skip the checker, shape and onnxruntime comparison")
@quiet_option
def export(network, onnx_path, program_path, opset, dynamic_batch, weights, no_verify, quiet):
    """Export SPEC's eval forward to ONNX and/or torch.export, after a pre-flight report of the
    spec's export hazards; the ONNX model is checked, its shapes compared with netc's and its
    outputs with torch's (onnxruntime) before it is written."""
    if not onnx_path and not program_path:
        raise click.UsageError("nothing to do: give --onnx PATH and/or --torch-export PATH")
    findings = network.export_hazards()
    for finding in findings:
        echo(finding.format(), err=True)
    with progress(quiet) as stage:
        with stage(f"build {network.name}"):
            module = network.build()
        if onnx_path:
            with stage("export to ONNX" + ("" if no_verify else ", check, compare in onnxruntime")):
                verdict = network.export_onnx(onnx_path, opset=opset, dynamic_batch=dynamic_batch, weights=weights,
                                              verify=not no_verify, module=module)
        if program_path:
            with stage("torch.export"):
                network.export_program(program_path, dynamic_batch=dynamic_batch, weights=weights, module=module)
    if onnx_path:
        echo(f"wrote {onnx_path}" + (f": {verdict.summary()}" if verdict else " (not verified)"))
    if program_path:
        echo(f"wrote {program_path} (torch.export.ExportedProgram; load with torch.export.load)")
