"""Predicted vs measured peak memory of one training step on the CPU, and the batch-size solver.

The prediction is `netc table SPEC --train` (netc/analysis/train.py: from the IR alone, no
torch). The measurement is a real step of netc's built module (netc/backends/torch/train_memory.py:
the CPU allocator's running total under torch.profiler(profile_memory=True), plus the bytes
already held — parameters, buffers, optimizer state, the batch). The step: SGD with momentum
(or --optimizer), cross-entropy over every output (aux heads included), after one warm-up step.
Target: |predicted / measured - 1| <= 10% for each network. Then the solver: for a budget of
1.25x the measured peak at the first batch, the largest batch it answers is run and its measured
peak must fit in the budget.

    .venv/bin/python benchmarks/bench_train_memory.py [--specs resnet50 ...] [--batch 8] [--amp] [--isa avx2]

The prediction models the oneDNN kernels of this CPU's instruction set (netc/analysis/onednn.py);
`--isa` runs a weaker one than the CPU's (oneDNN capped by ONEDNN_MAX_CPU_ISA), so one machine
measures each rule it can run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402,F401  (puts the repository on the path)
from netc.analysis.onednn import ISAS, ONEDNN_NAMES, detect_isa  # noqa: E402

# the bundled networks, and the test suite's conv cases that oneDNN's reorders treat apart
CONVS = str(Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "train" / "convs.yaml")
SPECS = ["resnet50", "inception_v3", "vgg16", "xception", "densenet121", "efficientnet_b0", CONVS]
TARGET = 0.10


def measure(spec: str, batch: int, optimizer: str, amp: bool) -> tuple[float, int, int, str]:
    import netc
    from netc.backends.torch.train_memory import measure_training_peak

    network = netc.load(spec)
    t = time.perf_counter()
    measured = measure_training_peak(network.build(init=False), network.input_shape, batch, optimizer, amp)
    cost = network.train_cost(batch, optimizer, amp)
    return time.perf_counter() - t, cost.peak, measured, cost.peak_at


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", default=SPECS)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast (the prediction is an estimate)")
    ap.add_argument("--solver-spec", default="resnet50")
    ap.add_argument("--isa", choices=ISAS, help="the CPU ISA to run and model [default: this CPU's]")
    args = ap.parse_args(argv)
    if args.isa and args.isa != detect_isa():
        if ISAS.index(args.isa) > ISAS.index(detect_isa()):
            sys.exit(f"this CPU runs {detect_isa()} kernels at most, not {args.isa}")
        os.environ["ONEDNN_MAX_CPU_ISA"] = ONEDNN_NAMES[args.isa]  # read once, at oneDNN's first use
        os.execv(sys.executable, [sys.executable, *sys.argv])
    import torch

    import netc

    print(f"training step on the CPU with {detect_isa()} kernels ({torch.backends.cpu.get_cpu_capability()} "
          f"to ATen), {args.optimizer}, {'bf16 autocast' if args.amp else 'float32'}, batch {args.batch}, "
          f"{torch.get_num_threads()} threads; peak bytes, predicted / measured")
    worst = 0.0
    for spec in args.specs:
        secs, predicted, measured, where = measure(spec, args.batch, args.optimizer, args.amp)
        ratio = predicted / measured
        worst = max(worst, abs(ratio - 1))
        print(f"  {Path(spec).stem:<15} predicted {predicted / 2**20:9.1f} MiB   measured {measured / 2**20:9.1f} MiB   "
              f"ratio {ratio:.3f}   peak at {where}   ({secs:.0f} s)", flush=True)
    print(f"  target |predicted/measured - 1| <= {TARGET:.0%}: worst {worst:.1%}, "
          f"{'met' if worst <= TARGET else 'NOT met'}")

    spec = args.solver_spec
    network = netc.load(spec)
    budget = int(1.25 * network.train_cost(args.batch, args.optimizer, args.amp).peak)
    cost = network.max_batch(budget, args.optimizer, args.amp)
    _, _, measured, _ = measure(spec, cost.batch, args.optimizer, args.amp)
    fits = measured <= budget
    print(f"  solver: {spec} in {budget / 2**20:.0f} MiB -> batch {cost.batch} (predicted {cost.peak / 2**20:.1f} MiB);"
          f" measured {measured / 2**20:.1f} MiB: {'fits' if fits else 'DOES NOT fit'}")


if __name__ == "__main__":
    main()
