"""`netc table` on ResNet-152 vs counting MACs with FlopCounterMode on torchvision's resnet152.

Both sides produce the network's parameter and MAC totals from nothing but the architecture:
  netc    `netc table SPEC` in-process (compile the spec, cost pass, render the text table)
  torch   construct torchvision.models.resnet152() and count a forward pass with
          torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2), on the meta device
          (no allocation, no arithmetic: torch's fastest way) and on the CPU (the usual way)
Imports are done once before timing on both sides. Repetitions are interleaved; medians are
reported, and the totals of both sides are printed and must agree. Target: netc >= 20x faster.
A cold-start line (fresh interpreter, imports included) is printed for context.

    .venv/bin/python benchmarks/bench_table.py [--reps N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_check import wall  # wall time of a command in a fresh process

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    import torch  # noqa: F401  (imports outside the timings)
    import torchvision  # noqa: F401

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        spec = resnet152_spec(Path(tmp))
        run_netc(spec), run_torch("meta")  # warm-up: first-call caches on both sides
        times = {"netc": [], "meta": [], "cpu": []}
        totals = {"netc": netc_totals(spec)}
        for _ in range(args.reps):
            for key, fn, arg in (("netc", run_netc, spec), ("meta", run_torch, "meta"), ("cpu", run_torch, "cpu")):
                dt, out = timed(fn, arg)
                times[key].append(dt)
                if out is not None:
                    totals[key] = out
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"spec: {spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else 'resnet50.yaml with depths 3-8-36-3'}"
              f", {args.reps} interleaved repetitions, medians; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores")
        for key, what in (("netc", "netc table (in-process)"), ("meta", "torchvision build + FlopCounterMode, meta"),
                          ("cpu", "torchvision build + FlopCounterMode, cpu")):
            p, m = totals[key]
            print(f"  {what:<44} {med[key] * 1e3:9.1f} ms   params {p:,}  MACs {m:,}")
        same = totals["netc"] == totals["meta"] == totals["cpu"]
        print(f"totals agree: {same}")
        print(f"speed-up vs meta: {med['meta'] / med['netc']:.1f}x   vs cpu: {med['cpu'] / med['netc']:.1f}x   "
              f"(target >= 20x)")

        netc_bin = str(Path(sys.executable).with_name("netc"))
        torch_cmd = [sys.executable, "-c", "import torch, torchvision\nfrom torch.utils.flop_counter import "
                     "FlopCounterMode\nwith torch.device('meta'):\n m = torchvision.models.resnet152().eval()\n"
                     " with FlopCounterMode(display=False) as c:\n  m(torch.empty(1, 3, 224, 224))\n"
                     "print(c.get_total_flops() // 2)"]
        c_netc = statistics.median(wall([netc_bin, "table", str(spec)]) for _ in range(3))
        c_torch = statistics.median(wall(torch_cmd) for _ in range(3))
        print(f"cold start (new interpreter, imports included, 3 runs): netc table {c_netc * 1e3:.0f} ms, "
              f"torch meta {c_torch * 1e3:.0f} ms, {c_torch / c_netc:.1f}x")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
