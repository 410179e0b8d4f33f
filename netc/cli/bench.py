"""`netc bench SPEC`: throughput and latency of the built model on this machine."""
from __future__ import annotations

import json

import click

from netc.cli.options import BATCH, ITERATIONS, THREADS, spec_options
from netc.cli.output import echo, echo_data
from netc.cli.progress import progress, quiet_option


@click.command()
@spec_options
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
              help="where to run (auto: CUDA when available)")
@click.option("--batch", type=BATCH, default=8, show_default=True, help="images per forward")
@click.option("--iters", type=ITERATIONS, default=20, show_default=True, help="timed forwards")
@click.option("--warmup", type=click.IntRange(0, ITERATIONS.max), default=3, show_default=True, help="untimed forwards first")
@click.option("--amp", is_flag=True, help="autocast: float16 on CUDA, bfloat16 on the CPU")
@click.option("--optimize", type=click.Choice(["inference"]), default=None,
              help="benchmark the inference-optimised module (BN folded, channels_last)")
@click.option("--compile", "compile_", type=click.Choice(["default", "inductor", "onnxruntime"]), is_flag=False,
              flag_value="default", default=None,
              help="with --optimize inference: compile into a cached package (onnxruntime where installed, "
                   "else inductor with freezing; or name one)")
@click.option("--vs", type=click.Choice(["torchvision", "compile", "onnxruntime"]), default=None,
              help="instead: time against the reference implementation (same weights) under that runtime, "
                   "at batch 1 and --batch; outputs are compared first")
@click.option("--threads", type=THREADS, default=None, help=f"CPU threads, at most this machine's {THREADS.max} (default: torch's)")
@click.option("--json", "as_json", is_flag=True, help="print the figures as one JSON object")
@quiet_option
def bench(network, device, batch, iters, warmup, amp, optimize, compile_, vs, threads, as_json, quiet):
    """Measure images/s and per-batch latency percentiles of SPEC's forward in eval mode, after
    warm-up; report achieved FLOP/s from the conv/linear MAC count (FLOPs = 2 x MACs)."""
    from netc.api.reports import human

    if vs:
        if device not in ("auto", "cpu"):
            raise click.UsageError("--vs compares on the CPU; drop --device")
        with progress(quiet or as_json) as stage, stage(f"{network.name} vs {vs}: build, compare, time"):
            what, results = network.versus(vs, optimize, compile_, tuple(dict.fromkeys((1, batch))), iters,
                                           warmup, threads)
        return _versus(network, what, results, optimize, compile_, iters, warmup, as_json)
    with progress(quiet or as_json) as stage, stage("build, warm up", total=warmup) as warm, \
            stage(f"time {network.name} x{batch}", total=iters) as timed:
        advance = {"warmup": warm, "timed": timed}
        result = network.bench(device, batch, iters, warmup, amp, optimize, threads,
                               tick=lambda phase: advance[phase](), compile=compile_)

    dev, where, precision, timing = result.device, result.where, result.precision, result.timing
    p = {q: timing.percentile(q) for q in (50, 90, 99)}
    flops = result.flops_per_s
    if as_json:
        echo_data(json.dumps({
            "spec": network.name, "device": str(dev), "where": where, "batch": batch, "iters": iters,
            "warmup": warmup, "precision": precision, "optimize": optimize,
            "images_per_s": timing.images_per_s, "latency_ms": {f"p{q}": v * 1e3 for q, v in p.items()},
            "latency_min_ms": min(timing.latencies) * 1e3, "macs_per_image": network.macs,
            "achieved_flops_per_s": flops}))
        return
    opt = f", optimized for {optimize}" if optimize else ""
    echo(f"{network.name} on {dev} ({where}), batch {batch}, {precision}{opt}; "
         f"{iters} timed forwards after {warmup} warm-up")
    echo(f"  throughput  {timing.images_per_s:,.1f} images/s")
    echo(f"  latency     p50 {p[50] * 1e3:.2f} ms   p90 {p[90] * 1e3:.2f} ms   p99 {p[99] * 1e3:.2f} ms   "
         f"min {min(timing.latencies) * 1e3:.2f} ms  (per batch of {batch})")
    unit, scale = ("TFLOP/s", 1e12) if dev.type == "cuda" else ("GFLOP/s", 1e9)
    echo(f"  compute     {human(network.macs, 'MACs')}/image -> {flops / scale:,.2f} {unit} achieved "
         "(2 x conv/linear MACs at p50 latency)")



def _versus(network, what, results, optimize, compile_, iters, warmup, as_json):
    mode = "plain" if not optimize else f"--optimize {optimize}" + (f" --compile {compile_}" if compile_ else "")
    if as_json:
        echo_data(json.dumps({"spec": network.name, "netc": mode, "peer": what, "results": [
            {"batch": r.batch, "netc_ms": r.netc_s * 1e3, "peer_ms": r.peer_s * 1e3, "speedup": r.speedup,
             "max_abs_diff": r.max_diff} for r in results]}))
        return
    echo(f"{network.name}: netc ({mode}) vs {what}, same weights, on the CPU; "
         f"{iters} interleaved forwards each after {warmup} warm-up, medians")
    for r in results:
        echo(f"  batch {r.batch:<4} netc {r.netc_s * 1e3:9.2f} ms   peer {r.peer_s * 1e3:9.2f} ms   "
             f"x{r.speedup:.2f}   (outputs agree: max abs diff {r.max_diff:.2g})")
