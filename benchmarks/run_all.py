"""Run every benchmark and print one results table (`make bench`).

Each benchmark runs in its own fresh interpreter, one after the other (so they never compete
for the 2 cores); its full output is streamed as it runs. Every figure in the final table is a
ratio or time that the benchmark itself measured side by side in one run, with interleaved
repetitions and medians (see each script's docstring for what exactly is timed).

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import COMPARE  # noqa: E402

from netc.cli.progress import progress  # noqa: E402


@dataclass(frozen=True)
class Figure:
    """One row of the results table, read from a benchmark's output by `pattern`."""

    label: str
    pattern: str  # a regex whose first group is the figure (and a 'status' group if it has one)
    target: str = ""


# script, arguments (full, --quick), the figures read from its output
BENCHMARKS = [
    ("bench_check", [], ["--reps", "5"], [
        Figure("CLI start-up: netc check resnet50, wall", r"netc check \S+: median (\d+ ms)", "< 500 ms"),
        Figure("  same, cpu time (load-independent)", r"netc check CPU time:\s+median (\d+ ms)", "< 500 ms"),
        Figure("  same / python -c pass", r"ratio check/python ([\d.]+x)"),
    ]),
    ("bench_scale", [], ["--reps", "1", "--quick"], [
        Figure("check time/node, 20k-node / 2.5k-node spec", r"linearity: .* = ([\d.]+)", "~1.00 (linear)"),
        Figure("netc check resnet1202, wall", r"resnet1202 netc check < 1 s wall: ([\d.]+ s), (?P<status>met|NOT met)",
               "< 1 s"),
        Figure("  same, cpu time (load-independent)", r"resnet1202 netc check .*; cpu ([\d.]+ s), (?P<status>met|NOT met)",
               "< 1 s"),
        Figure("netc check 20,000 nodes, wall", r"20,000 nodes netc check < 5 s wall: ([\d.]+ s), (?P<status>met|NOT met)",
               "< 5 s"),
        Figure("  same, cpu time (load-independent)", r"20,000 nodes netc check .*; cpu ([\d.]+ s), (?P<status>met|NOT met)",
               "< 5 s"),
    ]),
    ("bench_table", [], ["--reps", "3"], [
        Figure("netc table resnet152 vs torchvision build+FlopCounter (cpu), wall", r"speed-up vs cpu: ([\d.]+x) wall",
               ">= 20x"),
        Figure("  same, cpu time (load-independent)", r"speed-up vs cpu: .* wall, ([\d.]+x) CPU time", ">= 20x"),
        Figure("  same vs torchvision on the meta device, wall", r"speed-up vs meta: ([\d.]+x) wall"),
    ]),
    ("bench_render", [], ["--reps", "3"], [
        Figure("netc render --svg, wall", r"--svg: median ([\d.]+ s) wall", "< 3 s"),
        Figure("  same / graphviz dot alone", r"ratio render/dot-alone ([\d.]+x)"),
    ]),
    ("bench_build", [], ["--reps", "3", "--specs", "resnet50", "resnet152"], [
        Figure(f"build {s}: netc load+build / torchvision ctor", rf"{s} .*ratio load\+build/torchvision ([\d.]+)",
               "<= 1.1" if s == "resnet152" else "")
        for s in ("resnet50", "googlenet", "inception_v3", "vgg16_bn", "resnet152")
    ]),
    ("bench_forward", ["--reps", "5"], ["--specs", "resnet50", "--batch", "8", "--reps", "3"], [
        Figure("forward resnet50 b8: --optimize inference / tv", r"resnet50\s+netc --optimize inference\s+.*x([\d.]+)",
               ">= 1.15"),
        Figure("forward resnet50 b8: tv channels_last / tv", r"resnet50\s+torchvision\+channels_last\s+.*x([\d.]+)"),
        *(Figure(f"forward {s} b8: {v} / torchvision", rf"{s}\s+{v}\s{{2,}}.*x([\d.]+)", ">= 0.98" if v == "netc" else "")
          for s in ("resnet50", "inception_v3", "googlenet", "vgg16") for v in ("netc", "generated")),
    ]),
    ("bench_train_memory", [], ["--specs", "resnet50", "--batch", "4"], [
        *(Figure(f"train memory {s}: predicted / measured peak", rf"{s}\s+predicted .* ratio ([\d.]+)", "0.90-1.10")
          for s in ("resnet50", "inception_v3", "vgg16", "xception")),
        Figure("  batch-size solver's answer, measured", r"solver: .*: (fits|DOES NOT fit)", "fits"),
    ]),
    ("bench_compile_cache", [], ["--reps", "1"], [
        Figure("build resnet50 --compile --seed 0: cache hit / miss, wall", r"ratio hit/miss, whole run: ([\d.]+)",
               "< 0.10"),
        Figure("  same, cpu time (load-independent)", r"ratio hit/miss, .*; its CPU time: ([\d.]+)", "< 0.10"),
    ]),
]


def run(script: str, args: list[str]) -> tuple[str, float, int]:
    """Run one benchmark, echoing its output; (output, seconds, exit status)."""
    print(f"\n=== {script} {' '.join(args)}", flush=True)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / f"{script}.py"), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    return "".join(lines), time.perf_counter() - t, proc.wait()


def number(text: str) -> float:
    """'123 ms' -> 0.123, '1.06 s' -> 1.06, '12.3x' -> 12.3 (times in seconds)."""
    value = float(re.match(r"[\d.]+", text).group())
    return value / 1000 if text.endswith("ms") else value


def extract(fig: Figure, output: str) -> tuple[str, str]:
    """(figure, status) from a benchmark's output; the status judged from the target when it has a bound."""
    m = re.search(fig.pattern, output)
    if not m:
        return "n/a", ""
    value, status = m.group(1), m.groupdict().get("status") or ""
    if not status and fig.target.startswith((">", "<")):
        op, bound = fig.target.split(" ", 1)
        met = COMPARE[op](number(value), number(bound))
        status = "met" if met else "NOT met"
    return value, status


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (a few minutes)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (e.g. bench_scale)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress display on stderr")
    args = ap.parse_args(argv)
    rows, failed = [], []
    chosen = [b for b in BENCHMARKS if not args.only or b[0] in args.only]
    with progress(args.quiet, stdout_above=True) as stage, stage("benchmarks", total=len(chosen)) as advance:
        for script, full, quick, figures in chosen:
            with stage(script):
                output, seconds, code = run(script, quick if args.quick else full)
            advance()
            if code:
                failed.append(script)
            for fig in figures:
                value, status = extract(fig, output)
                if value != "n/a" or code:
                    rows.append((script, fig.label, value, fig.target, status))
            print(f"--- {script}: {seconds:.0f} s, exit {code}", flush=True)
    _table(rows, failed)


def _table(rows, failed) -> None:
    width = max(len(r[1]) for r in rows) if rows else 10
    print(f"\n{'benchmark':<14}{'figure':<{width + 2}}{'measured':>12}  {'target':<16}status")
    for script, label, value, target, status in rows:
        print(f"{script:<14}{label:<{width + 2}}{value:>12}  {target:<16}{status}")
    if failed:
        print(f"failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
