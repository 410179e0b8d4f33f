"""Eval-mode forward throughput on the CPU: netc's module, the generated code and netc's
inference-optimised module, each against torchvision's model of the same architecture.

All models carry the same weights (torchvision's state_dict loaded with strict=True) and their
outputs are compared before timing. One forward of a batch per variant per repetition, in
turn (interleaved, the order rotating), under torch.inference_mode; medians. A ratio x is the
median over repetitions of torchvision's time / the variant's time in the same repetition
(> 1 = faster than torchvision). `torchvision+channels_last` is torchvision's model with only
the memory-format change, printed so the share of the gain that folding brings is visible.
Targets: netc --optimize inference >= 1.15x torchvision eval on resnet50 at batch 8; the plain
netc module (the fx interpreter of the spec) >= 0.98x torchvision on each of resnet50,
inception_v3, googlenet and vgg16 (no interpretive overhead beyond a hand-written model).

    .venv/bin/python benchmarks/bench_forward.py [--specs resnet50 ...] [--batch 8] [--reps 7]
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (TORCHVISION, generated_model, interleaved, load_weights, medians,  # noqa: E402
                    paired_ratio, target_line, torchvision_model)

TARGET = 1.15
TARGET_NETC = 0.98
SPECS = ["resnet50", "inception_v3", "googlenet", "vgg16"]


def variants(spec: str):
    """name -> eval-mode model, all with torchvision's weights; and the input shape."""
    import torch

    import netc
    from netc.backends.torch.optimize import optimize_for_inference

    tv = torchvision_model(spec).eval()
    network = netc.load(spec)
    net = network.build(init=False).eval()
    models = {"torchvision": tv}
    if load_weights(net, tv):
        models["netc"] = net
        models["netc --optimize inference"] = optimize_for_inference(net)
    gen = generated_model(spec)
    if gen is not None and load_weights(gen, tv):
        models["generated"] = gen.eval()
    models["torchvision+channels_last"] = copy.deepcopy(tv).to(memory_format=torch.channels_last)
    return models, network.input_shape


def run(spec: str, batch: int, reps: int, only: list[str] | None = None) -> dict[str, list[float]]:
    import torch

    models, shape = variants(spec)
    if only:
        models = {k: m for k, m in models.items() if k == "torchvision" or k in only}
    torch.manual_seed(0)
    x = torch.randn(batch, *shape)
    with torch.inference_mode():
        ref = models["torchvision"](x)
        for name, m in models.items():
            diff = (m(x) - ref).abs().max().item()
            if diff > 1e-3 * max(1.0, ref.abs().max().item()):
                raise SystemExit(f"{spec}: {name} disagrees with torchvision (max abs diff {diff:.3g})")
        return interleaved({name: (lambda m=m: m(x)) for name, m in models.items()}, reps)


def report(spec: str, batch: int, times: dict[str, list[float]]) -> None:
    med = medians(times)
    for name, t in med.items():
        ratio = paired_ratio(times, "torchvision", name)
        print(f"  {spec:<14}{name:<28}{t * 1e3:9.1f} ms {batch / t:8.1f} img/s   x{ratio:.2f}   "
              f"(min {min(times[name]) * 1e3:.0f} ms)")
    if "netc" in times:
        ratio = paired_ratio(times, "torchvision", "netc")
        print(target_line(f"netc throughput / torchvision's on {spec}", ">=", TARGET_NETC, ratio))
    if "netc --optimize inference" in times and spec == "resnet50":
        print(target_line("netc --optimize inference throughput / torchvision's on resnet50", ">=", TARGET,
                          paired_ratio(times, "torchvision", "netc --optimize inference")))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", default=SPECS, choices=sorted(TORCHVISION))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--variants", nargs="+", metavar="NAME",
                    help="time only these beside torchvision (e.g. netc): more repetitions in the same time")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"forward, eval, batch {args.batch}, {torch.get_num_threads()} threads, {args.reps} interleaved reps, "
          "medians; x = median of per-repetition torchvision time / time")
    for spec in args.specs:
        report(spec, args.batch, run(spec, args.batch, args.reps, args.variants))


if __name__ == "__main__":
    main()
