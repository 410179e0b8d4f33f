"""netc's fastest inference path against the best of its peers, on the CPU, in one interleaved run.

Per network and batch size (1 and 8), every variant carries the same weights (netc's random init
loaded into the reference model with strict=True) and its output is compared with the
reference's eager output before timing:

- netc `--optimize inference` (BN folded, dropout gone, in-place activations, channels_last);
- netc `--optimize inference --compile inductor` (inductor with freezing, AOTInductor package;
  compile time printed, and whether the package came from the cache);
- netc `--optimize inference --compile onnxruntime` (netc's rewritten graph exported to ONNX; the
  default `--compile` where onnxruntime is installed);
- torch.compile(reference) with default options (static shapes);
- torch.compile(reference) with inductor `freezing=True` and channels_last model and input
  (the input is handed over already in channels_last: the peer's best case);
- onnxruntime on the reference exported to ONNX (all graph optimisations, torch's thread count).
The reference is torchvision's model (resnet50, inception_v3) or timm's (xception, the bundled
depthwise-separable net; mobilenet_v2 is not bundled). One forward per variant per repetition,
in rotating order, under inference_mode; medians. Target: netc's fastest path / the fastest
peer >= 1.10x (a paired ratio per repetition, median).

    PYTHONPATH=.:/work/extra-site .venv/bin/python benchmarks/bench_inference.py [--specs ...] [--reps 9]
        [--batches 1 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, paired_ratio, target_line  # noqa: E402

SPECS = ["resnet50", "inception_v3", "xception"]
BATCHES = (1, 8)
TARGET = 1.10
NETC = ("netc --optimize inference", "netc --compile inductor", "netc --compile onnxruntime")
PEERS = ("torch.compile", "torch.compile freezing+CL", "onnxruntime")


def variants(spec: str, batches=BATCHES):
    import torch
    import torch._inductor.config as inductor_config

    import netc
    from netc.backends.torch.benchmark import onnx_runner, reference_model
    from netc.backends.torch.compile import compile_inference
    from netc.backends.torch.optimize import optimize_for_inference

    network = netc.load(spec)
    weights = network.build().eval()
    reference, what = reference_model(network, weights)
    shape = network.input_shape
    cl = torch.channels_last
    t = time.perf_counter()
    compiled = compile_inference(weights, shape, name=spec, backend="inductor")
    via_ort = compile_inference(weights, shape, name=spec, backend="onnxruntime")
    for label, c in (("--compile inductor", compiled), ("--compile onnxruntime", via_ort)):
        print(f"  {spec}: reference {what}; netc {label} {c.compile_seconds:.0f} s "
              f"({'from the cache' if c.from_cache else 'compiled'})", flush=True)
    eager_default = torch.compile(reference, dynamic=False)
    frozen_model = torch.compile(__import__("copy").deepcopy(reference).to(memory_format=cl), dynamic=False)
    ort = onnx_runner(reference, torch.randn(max(batches), *shape))
    fns = {}
    with torch.inference_mode():
        for batch in batches:
            x = torch.randn(batch, *shape)
            x_cl = x.contiguous(memory_format=cl)
            t = time.perf_counter()
            eager_default(x)
            with inductor_config.patch(freezing=True):
                frozen_model(x_cl)
            print(f"  {spec} batch {batch}: torch.compile variants compiled in {time.perf_counter() - t:.0f} s",
                  flush=True)
            fns[batch] = {
                "eager reference": lambda x=x: reference(x),
                "netc --optimize inference": (lambda m, x=x: lambda: m(x))(optimize_for_inference(weights)),
                "netc --compile inductor": lambda x=x: compiled(x),
                "netc --compile onnxruntime": lambda x=x: via_ort(x),
                "torch.compile": lambda x=x: eager_default(x),
                "torch.compile freezing+CL": lambda x=x_cl: frozen_model(x),
                "onnxruntime": lambda x=x: ort(x)[0],  # the classifier's one output
            }
            ref = reference(x)
            for name, fn in fns[batch].items():
                diff = (fn() - ref).abs().max().item()
                if diff > 1e-3 * max(1.0, ref.abs().max().item()):
                    raise SystemExit(f"{spec}: {name} disagrees with the reference (max abs diff {diff:.3g})")
    return fns


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", default=SPECS)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    args = ap.parse_args(argv)
    import torch

    print(f"inference on the CPU, {torch.get_num_threads()} threads, float32, {args.reps} interleaved reps, medians;"
          " x = paired ratio of the eager reference's time / the variant's")
    for spec in args.specs:
        per_batch = variants(spec, args.batches)
        for batch, fns in per_batch.items():
            with torch.inference_mode():
                times = interleaved(fns, args.reps)
            med = {k: statistics.median(v) for k, v in times.items()}
            for name, t in med.items():
                print(f"  {spec:<13} b{batch:<2} {name:<27}{t * 1e3:9.1f} ms   "
                      f"x{paired_ratio(times, 'eager reference', name):.2f}")
            ours = min(NETC, key=med.get)
            peer = min(PEERS, key=med.get)
            print(target_line(f"{spec} b{batch}: {ours} / {peer}", ">=", TARGET, paired_ratio(times, peer, ours)),
                  flush=True)


if __name__ == "__main__":
    main()
