"""The `--compile` cache from the command line: two identical
`netc build SPEC --optimize inference --compile [BACKEND] --seed 0` runs in fresh processes, the
first into an empty cache (a miss: export and compile), the second finding the package (a hit).

Per repetition, a new empty cache folder (and inductor's own cache folder, so a miss is cold); both runs are timed wall-clock from the outside
(interpreter start-up, imports, building and initialising the module, the compile step and the
summary: what a user waits for) and each reports its own compile step (`cache miss: ... (BACKEND,
N s)`: folding, hashing, exporting/compiling or verifying the entry, loading the runtime session).
Prints the medians and the ratios hit / miss of both; the target is the whole run's ratio < 10%.

    .venv/bin/python benchmarks/bench_compile_cache.py [--spec resnet50] [--backend onnxruntime|inductor] [--reps 3]
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, target_line  # noqa: E402

NETC = str(ROOT / ".venv" / "bin" / "netc")
REPORT = re.compile(r"cache (hit|miss): [a-z ]+ \((\w+), ([\d.]+) s\) (\S+)")
TARGET = 0.10


def run(spec: str, backend: str, cache: Path) -> tuple[float, str, float, str, float]:
    """One `netc build --compile`: wall seconds, 'hit' or 'miss', the compile step's seconds, the
    package, the process's CPU seconds (user + system, all threads: what load does not inflate)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = [NETC, "build", spec, "--device", "cpu", "--optimize", "inference", "--compile", backend, "--seed", "0", "-q"]
    started = time.perf_counter()
    # inductor's own caches in a fresh folder too: a warm FX-graph cache would make the miss no miss
    env = {**os.environ, "NETC_CACHE_DIR": str(cache), "TORCHINDUCTOR_CACHE_DIR": str(cache.parent / "inductor")}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    found = REPORT.search(out.stdout)
    if found is None:
        raise SystemExit(f"no cache report in netc's output:\n{out.stdout}{out.stderr}")
    return wall, found.group(1), float(found.group(3)), found.group(4), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="resnet50")
    parser.add_argument("--backend", default="default", choices=["default", "onnxruntime", "inductor"])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory(prefix="netc-cache-bench-") as tmp:
            first = run(args.spec, args.backend, Path(tmp) / "cache")
            second = run(args.spec, args.backend, Path(tmp) / "cache")
        if (first[1], second[1]) != ("miss", "hit") or first[3] != second[3]:
            raise SystemExit(f"expected a miss then a hit of the same package, got {first} then {second}")
        rows.append((first, second))
        print(f"  rep {rep + 1}: miss {first[0]:.1f} s (CPU {first[4]:.1f} s, compile step {first[2]:.1f} s), "
              f"hit {second[0]:.1f} s (CPU {second[4]:.1f} s, compile step {second[2]:.1f} s)", flush=True)
    miss = statistics.median(r[0][0] for r in rows)
    hit = statistics.median(r[1][0] for r in rows)
    step_miss = statistics.median(r[0][2] for r in rows)
    step_hit = statistics.median(r[1][2] for r in rows)
    print(f"netc build {args.spec} --compile {args.backend} --seed 0: miss median {miss:.1f} s, hit median {hit:.1f} s")
    print(f"compile step: miss median {step_miss:.1f} s, hit median {step_hit:.2f} s")
    cpu_miss = statistics.median(r[0][4] for r in rows)
    cpu_hit = statistics.median(r[1][4] for r in rows)
    print(f"CPU time (user + system): miss median {cpu_miss:.1f} s, hit median {cpu_hit:.1f} s")
    print(f"ratio hit/miss, whole run: {hit / miss:.3f}; its CPU time: {cpu_hit / cpu_miss:.3f}; "
          f"compile step: {step_hit / step_miss:.3f}")
    print(target_line("hit/miss whole run", "<", TARGET, hit / miss))


if __name__ == "__main__":
    main()
