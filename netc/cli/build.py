"""`netc build SPEC`: validate, build on `meta`, confirm shapes, allocate, initialise, summarise."""
from __future__ import annotations

import click

from netc.cli.options import spec_options

DTYPE_CHOICES = ("float32", "float16", "bfloat16")


def available_bytes(device) -> int | None:
    """Free memory on `device` (CUDA: the driver's figure; CPU: MemAvailable), None if unknown."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(network, device, dtype) -> int:
    """Parameter and buffer bytes; a NetcError before allocating if they do not fit."""
    from netc.errors import error

    elems = sum(d["params"] + d["buffers"] for _, d in network.nodes())
    need = elems * dtype.itemsize
    free = available_bytes(device)
    if free is not None and need > free:
        raise error("limit", f"the parameters need {need / 2**30:.2f} GiB on {device}, but only "
                    f"{free / 2**30:.2f} GiB is available", None,
                    "use --dtype bfloat16/float16, a smaller width (--set), or another device")
    return need


@click.command()
@spec_options
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
              help="where to allocate the parameters (auto: CUDA when available)")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="float32", show_default=True)
@click.option("--save", type=click.Path(dir_okay=False), help="write the initialised state_dict here (torch.save)")
@click.option("-q", "--quiet", is_flag=True, help="print only the totals line")
@click.option("--codegen-dir", default="generated", show_default=True, metavar="DIR", envvar="NETC_CODEGEN_DIR",
              help="also write the standalone PyTorch source DIR/<name>.py ('' to skip; env NETC_CODEGEN_DIR)")
@click.option("--optimize", type=click.Choice(["inference"]), default=None,
              help="inference: fold batch norms into convs, drop dropout, channels_last (eval only)")
@click.option("--compile", "compile_", type=click.Choice(["default", "inductor", "onnxruntime"]), is_flag=False,
              flag_value="default", default=None,
              help="with --optimize inference: compile into a cached package (onnxruntime where installed, "
                   "else inductor with freezing; or name one)")
def build(network, device, dtype, save, quiet, codegen_dir, optimize, compile_):
    """Build SPEC as a torch module: confirm the inferred shapes by a forward on the meta device,
    check the parameters fit in memory, allocate and initialise them, print the summary."""
    import io

    import torch

    from netc.backends.torch.init import initialise
    from netc.backends.torch.module import build_meta, confirm_shapes, resolve_device, resolve_dtype

    dev, dt = resolve_device(device), resolve_dtype(dtype)
    module = build_meta(network)
    checked = confirm_shapes(module, network)
    need = check_memory(network, dev, dt)
    module.to_empty(device=dev)
    initialise(module, network, network.spec.init)
    if dt != torch.float32:
        module.to(dt)
    if compile_ and save:
        raise click.UsageError("--compile writes its package to the cache; --save writes a state_dict: use one")
    if optimize or compile_:
        from netc.api import optimize as optimize_module

        module = optimize_module(module, optimize, compile_, network.input_shape, network.name)
    if not quiet:
        click.echo(network.table(depth=1), nl=False)
    n_params = (sum(d["params"] for _, d in network.nodes()) if compile_
                else sum(p.numel() for p in module.parameters()))
    click.echo(f"built {network.name}: {n_params:,} parameters ({need / 2**20:.1f} MiB with buffers) "
               f"on {dev}, {dtype}{', optimized for ' + optimize if optimize else ''}; "
               f"shapes of {checked} ops confirmed on the meta device")
    if compile_:
        how = "loaded from the cache" if module.from_cache else "compiled"
        click.echo(f"{how} ({module.backend}) in {module.compile_seconds:.1f} s: {module.package}")
    if save:
        from netc.fsutil import write_atomic

        buf = io.BytesIO()
        torch.save(module.state_dict(), buf)
        write_atomic(save, buf.getvalue())
        click.echo(f"saved state_dict to {save}")
    if codegen_dir:
        from netc.backends.codegen import write

        path = write(network, codegen_dir)
        if not quiet:
            click.echo(f"wrote {path}")
