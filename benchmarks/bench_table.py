"""`netc table` on ResNet-152 vs counting MACs with FlopCounterMode on torchvision's resnet152.

Both sides produce the network's parameter and MAC totals from nothing but the architecture:
  netc    `netc table SPEC` in-process: compile the spec, cost pass, render the text table
  torch   construct torchvision.models.resnet152() and count one forward pass with
          torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2): on the CPU (the usual
          way; the target, >= 20x, is against this) and on the meta device (no allocation and
          no arithmetic: torch's fastest way, shown for context)
Imports happen once before timing. Torch runs one thread by default, like netc: the comparison
is of work, and on this shared 2-core machine extra threads oversubscribe (1.1 s with one
thread, 16 s with two, at load 9). Repetitions are interleaved in rotating order; medians of
wall time and of process CPU time (which a busy machine disturbs less) are printed, and the
speed-ups are medians of per-repetition ratios. Both sides' totals are printed and must agree.
A cold-start line (fresh interpreter, imports included) is printed for context.

    .venv/bin/python benchmarks/bench_table.py [--reps N] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench_check import wall  # wall time of a command in a fresh process
from common import ROOT, interleaved, medians, paired_ratio


def resnet152_spec(tmp: Path) -> Path:
    """specs/resnet152.yaml if present, else resnet50.yaml with ResNet-152's stage depths (3, 8, 36, 3)."""
    bundled = ROOT / "specs" / "resnet152.yaml"
    if bundled.exists():
        return bundled
    text = (ROOT / "specs" / "resnet50.yaml").read_text()
    for old, new in (("name: resnet50", "name: resnet152"), ("{name: layer2, repeat: 4,", "{name: layer2, repeat: 8,"),
                     ("{name: layer3, repeat: 6,", "{name: layer3, repeat: 36,")):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "resnet152.yaml"
    path.write_text(text)
    return path


def run_netc(spec: Path) -> None:
    from netc.cli import main

    main(["table", str(spec), "-o", os.devnull], standalone_mode=False)


def netc_totals(spec: Path) -> tuple[int, int]:
    """The totals `netc table` prints, read from its JSON form (outside the timings)."""
    import json

    import netc

    total = json.loads(netc.load(spec).table(fmt="json"))["total"]
    return total["params"], total["macs"]


def run_torch(device: str) -> tuple[int, int]:
    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device(device):
        model = torchvision.models.resnet152()
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, 224, 224))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (netc uses one)")
    args = ap.parse_args()
    import torch
    import torchvision  # noqa: F401  (imports outside the timings)

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        spec = resnet152_spec(Path(tmp))
        totals = {"netc": netc_totals(spec), "cpu": run_torch("cpu"), "meta": run_torch("meta")}
        fns = {"netc": lambda: run_netc(spec), "cpu": lambda: run_torch("cpu"), "meta": lambda: run_torch("meta")}
        cpu_time = {key: [] for key in fns}

        def measured(key):
            def run():
                t = time.process_time()
                fns[key]()
                cpu_time[key].append(time.process_time() - t)
            return run

        walls = interleaved({key: measured(key) for key in fns}, args.reps, warmup=1)
        cpu_time = {key: v[1:] for key, v in cpu_time.items()}  # drop the warm-up round
        med_wall, med_cpu = medians(walls), medians(cpu_time)
        shown = spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else "resnet50.yaml with depths 3-8-36-3"
        print(f"spec: {shown}; {args.reps} interleaved repetitions, medians; torch threads {args.threads}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"  {'':<46} {'wall':>10} {'CPU time':>10}   totals")
        for key, what in (("netc", "netc table (in-process)"), ("cpu", "torchvision resnet152 + FlopCounterMode, cpu"),
                          ("meta", "torchvision resnet152 + FlopCounterMode, meta")):
            p, m = totals[key]
            print(f"  {what:<46} {med_wall[key] * 1e3:7.1f} ms {med_cpu[key] * 1e3:7.1f} ms   "
                  f"params {p:,}  MACs {m:,}")
        same = totals["netc"] == totals["cpu"] == totals["meta"]
        print(f"totals agree: {same}")
        for key, note in (("cpu", "target >= 20x"), ("meta", "torch's fastest way, for context")):
            print(f"speed-up vs {key}: {paired_ratio(walls, key, 'netc'):.1f}x wall, "
                  f"{paired_ratio(cpu_time, key, 'netc'):.1f}x CPU time   ({note})")

        netc_bin = str(Path(sys.executable).with_name("netc"))
        torch_cmd = [sys.executable, "-c", "import torch, torchvision\nfrom torch.utils.flop_counter import "
                     "FlopCounterMode\ntorch.set_num_threads(1)\nm = torchvision.models.resnet152().eval()\n"
                     "with torch.no_grad(), FlopCounterMode(display=False) as c:\n m(torch.empty(1, 3, 224, 224))\n"
                     "print(c.get_total_flops() // 2)"]
        c_netc = sorted(wall([netc_bin, "table", str(spec)]) for _ in range(3))[1]
        c_torch = sorted(wall(torch_cmd) for _ in range(3))[1]
        print(f"cold start (new interpreter, imports included, median of 3): netc table {c_netc * 1e3:.0f} ms, "
              f"torch cpu {c_torch * 1e3:.0f} ms, {c_torch / c_netc:.1f}x")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
