"""`netc build SPEC`: validate, build on `meta`, confirm shapes, allocate, initialise, summarise."""
from __future__ import annotations

import contextlib

import click

from netc.api.building import build as build_network
from netc.api.building import load_compiled
from netc.cli.options import spec_options
from netc.cli.output import echo, echo_data
from netc.cli.paths import transform_options
from netc.cli.progress import progress

DTYPE_CHOICES = ("float32", "float16", "bfloat16")
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


@click.command()
@spec_options
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
              help="where to allocate the parameters (auto: CUDA when available; the CPU with --compile)")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="float32", show_default=True,
              help="element type of the parameters and buffers")
@click.option("--save", type=click.Path(dir_okay=False), help="write the initialised state_dict here (torch.save)")
@click.option("--weights", metavar="FILE", help="load this state_dict (torch.save) into the module; every key must match")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="seed the initialisation: the same seed gives the same weights (and a --compile cache hit)")
@click.option("-q", "--quiet", is_flag=True, help="print only the totals line and the files written")
@click.option("--codegen-dir", default=None, metavar="DIR",
              help="also write the standalone PyTorch source DIR/<name>.py ([default: env NETC_CODEGEN_DIR if set "
                   "and not empty, else nothing])")
@click.option("--optimize", type=click.Choice(["inference"]), default=None,
              help="inference: fold batch norms into convs, drop dropout, channels_last (eval only)")
@click.option("--compile", "compile_", type=click.Choice(["default", "inductor", "onnxruntime"]), is_flag=False,
              flag_value="default", default=None,
              help="with --optimize inference: compile into a cached package (onnxruntime where installed, "
                   "else inductor with freezing; or name one); cached in $NETC_CACHE_DIR, see 'netc cache'")
@transform_options
def build(network, device, dtype, save, weights, seed, quiet, codegen_dir, optimize, compile_, lesion, reorder):
    """Build SPEC as a torch module: confirm the inferred shapes by a forward on the meta device,
    check the parameters fit in memory, allocate and initialise them, print the summary.
    Nothing is written unless asked (--save, --codegen-dir, --compile's cache). With --compile
    and --seed or --weights, the cache is looked up first: a hit builds nothing."""
    import os

    if codegen_dir is None:  # read here: click drops an empty environment value, which means "skip"
        codegen_dir = os.environ.get("NETC_CODEGEN_DIR", "")
    if lesion or reorder:  # the source would be the spec's, not the transformed network's
        from netc.cli.paths import transformed

        network, codegen_dir = transformed(network, lesion, reorder), ""
    if compile_ and save:
        raise click.UsageError("--compile writes its package to the cache; --save writes a state_dict: use one")
    if compile_ and device == "auto":  # compiled packages run on the CPU
        device = "cpu"
    with cache_warnings(), progress(quiet) as stage, \
            stage(f"build {network.name}" + (f", compile ({compile_})" if compile_ else "")):
        # the package is opened to check that it loads; nothing runs on it here, so one thread
        package = load_compiled(network, device, dtype, True, optimize, compile_, seed, weights, threads=1) \
            if compile_ else None
        built = None if package else build_network(network, device, dtype, optimize=optimize, confirm=True,
                                                     compile=compile_, seed=seed, weights=weights)
    if not quiet:
        echo_data(network.table(depth=1), nl=False)
    if package:
        summarise_hit(network, dtype, optimize, package)
    else:
        summarise_build(network, dtype, optimize, compile_, built)
    if save:
        built.save(save)
        echo(f"wrote state_dict {save}")
    if codegen_dir:
        network.codegen(codegen_dir)
        echo(f"wrote {network.codegen_path(codegen_dir)}")


@contextlib.contextmanager
def cache_warnings():
    """A compile-cache entry that is not loaded warns in one line on stderr; other warnings as Python shows them."""
    import warnings

    from netc.api.cache import CacheWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, CacheWarning):
                    echo(f"warning: {w.message}", err=True)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def summarise_build(network, dtype: str, optimize: str | None, compile_: str | None, built) -> None:
    module = built.module
    n_params = (network.params if compile_ else sum(p.numel() for p in module.parameters()))
    echo(f"built {network.name}: {n_params:,} parameters ({built.bytes / 2**20:.1f} MiB with buffers) "
         f"on {built.device}, {dtype}{', optimized for ' + optimize if optimize else ''}; "
         f"shapes of {built.confirmed} ops confirmed on the meta device")
    if compile_:
        how = ("cache hit: loaded" if module.from_cache else "cache miss: compiled and wrote")
        echo(f"{how} ({module.backend}, {module.compile_seconds:.1f} s) {module.package}")


def summarise_hit(network, dtype: str, optimize: str, package) -> None:
    """What a hit found: the package of a build made before, found by what it is built from."""
    elems = sum(d.params + d.buffers for _, d in network.nodes())
    confirmed = package.note.get("confirmed")
    shapes = (f"shapes of {confirmed} ops confirmed on the meta device when it was compiled"
              if confirmed is not None else "shapes not confirmed when it was compiled")
    echo(f"{network.name}: {network.params:,} parameters ({elems * ITEMSIZE[dtype] / 2**20:.1f} MiB with buffers) "
         f"on cpu, {dtype}, optimized for {optimize}; not built: the cache holds this build's compiled package "
         f"({shapes})")
    echo(f"cache hit: loaded ({package.backend}, {package.seconds:.1f} s) {package.path}")
