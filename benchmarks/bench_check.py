"""Wall time of `netc check specs/resnet50.yaml`, process start to exit, next to `python -c pass`.

Each repetition runs both commands in fresh processes, interleaved (check, baseline, check, …),
so machine load affects both alike; medians are printed, with netc's own share (check minus the
interpreter's start-up), and the CPU time of check, which load on a shared machine does not
inflate. Target: check < 0.5 s wall. With --lint, `netc lint --catalogue` instead (every bundled
spec compiled and linted; issue 14's target: < 3 s). Nothing is asserted.

    .venv/bin/python benchmarks/bench_check.py [--reps N] [--spec PATH | --lint]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETC = Path(sys.executable).parent / "netc"


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of `cmd` in a fresh process. netc is single-threaded,
    so on an idle machine the two agree; on a loaded one the CPU time is what load does not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def wall(cmd: list[str]) -> float:
    return timed(cmd)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--spec", default="specs/resnet50.yaml")
    ap.add_argument("--lint", action="store_true", help="time `netc lint --catalogue` (target < 3 s)")
    args = ap.parse_args()
    check = [str(NETC), "lint", "--catalogue"] if args.lint else [str(NETC), "check", args.spec]
    what, target = ("lint --catalogue", 3.0) if args.lint else (f"check {args.spec}", 0.5)
    base = [sys.executable, "-c", "pass"]
    wall(check), wall(base)  # warm the file cache
    times = {"check": [], "base": []}
    cpu = []
    for _ in range(args.reps):
        w, c = timed(check)
        times["check"].append(w)
        cpu.append(c)
        times["base"].append(wall(base))
    c, b = statistics.median(times["check"]), statistics.median(times["base"])
    print(f"netc {what}: median {c * 1000:.0f} ms wall over {args.reps} runs "
          f"(min {min(times['check']) * 1000:.0f}, max {max(times['check']) * 1000:.0f})")
    print(f"python -c pass:        median {b * 1000:.0f} ms wall")
    print(f"netc's own share:      {(c - b) * 1000:.0f} ms;  ratio netc/python {c / b:.1f}x;  "
          f"target < {target * 1000:.0f} ms: {'met' if c < target else 'NOT met'}")
    u = statistics.median(cpu)
    print(f"netc CPU time:         median {u * 1000:.0f} ms (user + system; the wall time on an idle machine);  "
          f"target < {target * 1000:.0f} ms: {'met' if u < target else 'NOT met'}")

if __name__ == "__main__":
    main()
