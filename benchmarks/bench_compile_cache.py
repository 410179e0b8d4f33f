"""The `--compile` cache from the command line: two identical
`python -m netc build SPEC --device cpu --optimize inference --compile [BACKEND] --seed 0 -q` runs
in fresh processes, the first into an empty cache (a miss: build, initialise, export, compile),
the second finding the package (a hit: keyed before building, so it builds nothing).

Per repetition, a new empty cache folder (and inductor's own cache folder, so a miss is cold);
both runs are timed wall-clock from the outside (interpreter start-up, imports, loading the spec,
the key, building or finding, the summary: what a user waits for) with the process's CPU time,
and each reports its own compile step (`cache miss: ... (BACKEND, N s)`: folding, exporting and
compiling on a miss; verifying the entry's digest and opening it on a hit). Prints the medians
and the ratios hit / miss; the target is the whole run's ratio < 10%.

Bytecode as an installed netc has it (pip writes .pyc files at install): this machine's
environment sets PYTHONDONTWRITEBYTECODE=1, which would make every run compile netc's ~150
modules from source, so the runs go without it, their .pyc files in a temp folder
(PYTHONPYCACHEPREFIX, the work tree stays clean) warmed by one untimed seeded compile of lenet5.
`--source-only` keeps the environment's setting instead.

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

REPORT = re.compile(r"cache (hit|miss): [a-z ]+ \((\w+), ([\d.]+) s\) (\S+)")
TARGET = 0.10


def run(spec: str, backend: str, cache: Path, env: dict) -> tuple[float, str, float, str, float]:
    """One `python -m netc build --compile`: wall seconds, 'hit' or 'miss', the compile step's
    seconds, the package, the process's CPU seconds (user + system, all threads: what load does
    not inflate)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = [sys.executable, "-m", "netc", "build", spec, "--device", "cpu", "--optimize", "inference",
            "--compile", backend, "--seed", "0", "-q"]
    started = time.perf_counter()
    # inductor's own caches in a fresh folder too: a warm FX-graph cache would make the miss no miss
    env = {**env, "NETC_CACHE_DIR": str(cache), "TORCHINDUCTOR_CACHE_DIR": str(cache.parent / "inductor")}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    found = REPORT.search(out.stdout)
    if found is None:
        raise SystemExit(f"no cache report in netc's output:\n{out.stdout}{out.stderr}")
    return wall, found.group(1), float(found.group(3)), found.group(4), cpu


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    """Wall and CPU seconds of a command run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def environment(pycache: Path, source_only: bool) -> dict:
    """The runs' environment: bytecode written to and read from `pycache` (warmed here), unless `source_only`."""
    if source_only:
        return dict(os.environ)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    warm = pycache.parent / "warm"
    for _ in range(2):  # a miss, then a hit: every module either path imports has its .pyc
        run("lenet5", "onnxruntime", warm / "cache", env)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="resnet50")
    parser.add_argument("--backend", default="default", choices=["default", "onnxruntime", "inductor"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--source-only", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is set")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="netc-cache-bench-pyc-") as pyc:
        env = environment(Path(pyc) / "pycache", args.source_only)
        for rep in range(args.reps):
            rows.append(repetition(args, env, rep))
    report(args, rows)


def repetition(args, env: dict, rep: int):
    with tempfile.TemporaryDirectory(prefix="netc-cache-bench-") as tmp:
        first = run(args.spec, args.backend, Path(tmp) / "cache", env)
        second = run(args.spec, args.backend, Path(tmp) / "cache", env)
    floor = timed([sys.executable, "-m", "netc", "check", args.spec], env)
    if (first[1], second[1]) != ("miss", "hit") or first[3] != second[3]:
        raise SystemExit(f"expected a miss then a hit of the same package, got {first} then {second}")
    print(f"  rep {rep + 1}: miss {first[0]:.2f} s (CPU {first[4]:.2f} s, compile step {first[2]:.1f} s), "
          f"hit {second[0]:.2f} s (CPU {second[4]:.2f} s, compile step {second[2]:.1f} s), "
          f"netc check {floor[0]:.2f} s (CPU {floor[1]:.2f} s)", flush=True)
    return first, second, floor


def report(args, rows) -> None:
    miss = statistics.median(r[0][0] for r in rows)
    hit = statistics.median(r[1][0] for r in rows)
    step_miss = statistics.median(r[0][2] for r in rows)
    step_hit = statistics.median(r[1][2] for r in rows)
    print(f"netc build {args.spec} --compile {args.backend} --seed 0: miss median {miss:.2f} s, hit median {hit:.2f} s"
          f" ({'sources compiled every run' if args.source_only else 'bytecode cached'}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"compile step: miss median {step_miss:.1f} s, hit median {step_hit:.2f} s")
    cpu_miss = statistics.median(r[0][4] for r in rows)
    cpu_hit = statistics.median(r[1][4] for r in rows)
    print(f"CPU time (user + system): miss median {cpu_miss:.2f} s, hit median {cpu_hit:.2f} s")
    print(f"netc check {args.spec} (start-up and loading the spec, which any command pays): median "
          f"{statistics.median(r[2][0] for r in rows):.2f} s wall, {statistics.median(r[2][1] for r in rows):.2f} s CPU")
    print(f"ratio hit/miss, whole run: {hit / miss:.3f}; its CPU time: {cpu_hit / cpu_miss:.3f}; "
          f"compile step: {step_hit / step_miss:.3f}")
    print(target_line("hit/miss whole run", "<", TARGET, hit / miss))


if __name__ == "__main__":
    main()
