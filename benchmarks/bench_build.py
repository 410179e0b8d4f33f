"""Build time: a netc spec to an initialised CPU module, against torchvision's constructor.

Per repetition, in turn (interleaved): `netc.load(spec).build()` (compile the spec, build the
fx module on `meta`, allocate, initialise by the spec's `init:` scheme: everything from the
YAML), `Network.build()` alone from an already loaded spec, and torchvision's constructor
(module tree, allocation, its __init__ initialisation loop). Imports are done once, outside.
Medians; a ratio is the median over repetitions of netc's time / torchvision's time in the same
repetition (< 1 = netc faster); the order rotates. Target: load+build / torchvision <= 1.1 on
resnet152.

    .venv/bin/python benchmarks/bench_build.py [--specs resnet50 ...] [--reps 5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TORCHVISION, interleaved, medians, paired_ratio, target_line, torchvision_model  # noqa: E402

DEFAULT = ["resnet50", "googlenet", "inception_v3", "vgg16_bn", "resnet152"]
TARGET = 1.1  # netc load+build / torchvision constructor, resnet152


def run(spec: str, reps: int) -> dict[str, list[float]]:
    import netc

    network = netc.load(spec)
    return interleaved({
        "netc load+build": lambda: netc.load(spec).build(),
        "netc build": lambda: network.build(),
        "torchvision": lambda: torchvision_model(spec),
    }, reps)


def report(spec: str, times: dict[str, list[float]]) -> None:
    med = medians(times)
    print(f"  {spec:<14}" + "".join(f"{k} {v * 1e3:7.0f} ms   " for k, v in med.items())
          + f"ratio load+build/torchvision {paired_ratio(times, 'netc load+build', 'torchvision'):.2f}, "
          f"build/torchvision {paired_ratio(times, 'netc build', 'torchvision'):.2f}")
    if spec == "resnet152":
        print(target_line("netc load+build / torchvision ctor on resnet152", "<=", TARGET,
                          paired_ratio(times, "netc load+build", "torchvision")))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", default=DEFAULT, choices=sorted(TORCHVISION))
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    import torch  # noqa: F401  (imports outside the timings)
    import torchvision  # noqa: F401

    print(f"build to an initialised CPU float32 module, {args.reps} interleaved reps, medians")
    for spec in args.specs:
        report(spec, run(spec, args.reps))


if __name__ == "__main__":
    main()
