"""`netc build SPEC`: validate, build on `meta`, confirm shapes, allocate, initialise, summarise."""
from __future__ import annotations

import click

from netc.cli.options import spec_options

DTYPE_CHOICES = ("float32", "float16", "bfloat16")


@click.command()
@spec_options
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
              help="where to allocate the parameters (auto: CUDA when available)")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="float32", show_default=True)
@click.option("--save", type=click.Path(dir_okay=False), help="write the initialised state_dict here (torch.save)")
@click.option("-q", "--quiet", is_flag=True, help="print only the totals line")
@click.option("--codegen-dir", default=None, metavar="DIR",
              help="also write the standalone PyTorch source DIR/<name>.py ('' to skip) "
                   "[default: env NETC_CODEGEN_DIR if set, '' included; else generated]")
@click.option("--optimize", type=click.Choice(["inference"]), default=None,
              help="inference: fold batch norms into convs, drop dropout, channels_last (eval only)")
@click.option("--compile", "compile_", type=click.Choice(["default", "inductor", "onnxruntime"]), is_flag=False,
              flag_value="default", default=None,
              help="with --optimize inference: compile into a cached package (onnxruntime where installed, "
                   "else inductor with freezing; or name one)")
@click.option("--lesion", multiple=True, metavar="SCOPE", help="remove residual block SCOPE's body (Veit et al. 2016)")
@click.option("--reorder", multiple=True, metavar="STAGE[=i,j,...]",
              help="run a stage's blocks in this order (default: its shape-keeping blocks reversed)")
def build(network, device, dtype, save, quiet, codegen_dir, optimize, compile_, lesion, reorder):
    """Build SPEC as a torch module: confirm the inferred shapes by a forward on the meta device,
    check the parameters fit in memory, allocate and initialise them, print the summary."""
    import os

    from netc.api import build as build_network

    if codegen_dir is None:  # read here: click drops an empty environment value, which means "skip"
        codegen_dir = os.environ.get("NETC_CODEGEN_DIR", "generated")
    if lesion or reorder:  # the source would be the spec's, not the transformed network's
        from netc.cli.paths import transformed

        network, codegen_dir = transformed(network, lesion, reorder), ""
    if compile_ and save:
        raise click.UsageError("--compile writes its package to the cache; --save writes a state_dict: use one")
    built = build_network(network, device, dtype, optimize=optimize, confirm=True, compile=compile_)
    module = built.module
    if not quiet:
        click.echo(network.table(depth=1), nl=False)
    n_params = (sum(d.params for _, d in network.nodes()) if compile_
                else sum(p.numel() for p in module.parameters()))
    click.echo(f"built {network.name}: {n_params:,} parameters ({built.bytes / 2**20:.1f} MiB with buffers) "
               f"on {built.device}, {dtype}{', optimized for ' + optimize if optimize else ''}; "
               f"shapes of {built.confirmed} ops confirmed on the meta device")
    if compile_:
        how = "loaded from the cache" if module.from_cache else "compiled"
        click.echo(f"{how} ({module.backend}) in {module.compile_seconds:.1f} s: {module.package}")
    if save:
        built.save(save)
        click.echo(f"saved state_dict to {save}")
    if codegen_dir:
        network.codegen(codegen_dir)
        if not quiet:
            click.echo(f"wrote {network.codegen_path(codegen_dir)}")
