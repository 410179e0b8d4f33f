"""`netc check` / `netc table` time against spec size: ResNet-18 ... ResNet-1202 and synthetic specs
of 2,500 to 20,000 nodes, printed as time per node to show the growth is linear.

In-process timings are CPU time of this (single-threaded) process, which the load of a shared
machine does not inflate as it does wall time; imports are done once, outside. `check` =
`netc.load(spec)` (parse, validate, expand, structure and shape passes: everything `netc check`
computes), `table` = load plus the cost pass and the text table. The specs are timed
round-robin (one of each per repetition); medians are printed. The synthetic spec is a flat
list of N/5 written-out residual blocks (conv, bn, relu, add, relu), so the YAML loader scales
too, not only template expansion. Cold `netc check` times (fresh process, imports included)
follow for ResNet-1202 and the 20,000-node spec: wall, and CPU (user + system), which is what
the wall time would be on an idle machine.
Targets: resnet1202 `netc check` < 1 s wall, 20,000 nodes < 5 s wall. Nothing is asserted.

    .venv/bin/python benchmarks/bench_scale.py [--reps N] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_check import NETC, timed  # noqa: E402  (wall and CPU time of a fresh process)

BUNDLED = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20", "resnet56", "resnet110",
           "resnet1202"]
SYNTHETIC = [2_500, 5_000, 10_000, 20_000]
BLOCK = ("  - {{name: b{i}, residual: {{body: [{{name: conv, conv: {{out: 8, k: 3, p: 1, bias: false}}}}, "
         "{{name: bn, bn: {{}}}}, relu], then: relu}}}}")


def synthetic_spec(nodes: int) -> str:
    """A spec of exactly `nodes` ops: a stem conv, then (nodes - 1) // 5 residual blocks, padded with relus."""
    blocks, extra = divmod(nodes - 1, 5)
    lines = ["netc: 1", f"name: synthetic{nodes}", "input: [8, 8, 8]", "layers:",
             "  - {name: stem, conv: {out: 8, k: 3, p: 1}}"]
    lines += [BLOCK.format(i=i) for i in range(blocks)]
    lines += ["  - relu"] * extra
    return "\n".join(lines) + "\n"


def check(path: Path):
    import netc

    return netc.load(path)


def table(path: Path) -> str:
    return check(path).table()


def cold(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of `netc check -q PATH` in a fresh process."""
    return timed([str(NETC), "check", "-q", str(path)])


def run(reps: int, quick: bool) -> list[dict]:
    """One result row per spec: nodes, median check and table seconds, cold CLI wall where timed."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: ROOT / "specs" / f"{name}.yaml" for name in BUNDLED}
        for n in SYNTHETIC if not quick else SYNTHETIC[::3]:
            paths[f"synthetic{n}"] = Path(tmp) / f"synthetic{n}.yaml"
            paths[f"synthetic{n}"].write_text(synthetic_spec(n))
        nodes = {name: len(check(p).order) - 1 for name, p in paths.items()}  # also warms caches
        times = {name: {"check": [], "table": []} for name in paths}
        for _ in range(reps):
            for name, p in paths.items():
                for what, fn in (("check", check), ("table", table)):
                    t = time.process_time()
                    fn(p)
                    times[name][what].append(time.process_time() - t)
        big = max((k for k in paths if k.startswith("synthetic")), key=nodes.get)
        walls = {}
        for name in ("resnet1202", big):
            runs = [cold(paths[name]) for _ in range(3)]
            walls[name] = tuple(statistics.median(r[i] for r in runs) for i in (0, 1))
    return [{"spec": name, "nodes": nodes[name], "check": statistics.median(times[name]["check"]),
             "table": statistics.median(times[name]["table"]), "cold": walls.get(name)} for name in paths]


def report(rows: list[dict]) -> None:
    print(f"{'spec':<16}{'nodes':>8}{'check ms':>11}{'us/node':>9}{'table ms':>11}{'us/node':>9}"
          f"{'cold check wall / cpu':>24}")
    for r in rows:
        cold_s = f"{r['cold'][0]:.2f} s / {r['cold'][1]:.2f} s" if r["cold"] is not None else ""
        print(f"{r['spec']:<16}{r['nodes']:>8,}{r['check'] * 1e3:>11.1f}{r['check'] / r['nodes'] * 1e6:>9.1f}"
              f"{r['table'] * 1e3:>11.1f}{r['table'] / r['nodes'] * 1e6:>9.1f}{cold_s:>24}")
    syn = [r for r in rows if r["spec"].startswith("synthetic")]
    lo, hi = syn[0], syn[-1]
    growth = (hi["check"] / hi["nodes"]) / (lo["check"] / lo["nodes"])
    print(f"linearity: time per node at {hi['nodes']:,} nodes / at {lo['nodes']:,} nodes = {growth:.2f} "
          "(1.00 = linear)")
    r1202 = next(r for r in rows if r["spec"] == "resnet1202")
    for what, r, bound in (("resnet1202", r1202, 1), (f"{hi['nodes']:,} nodes", hi, 5)):
        wall, cpu = r["cold"]
        print(f"target {what} netc check < {bound} s wall: {wall:.2f} s, {'met' if wall < bound else 'NOT met'}; "
              f"cpu {cpu:.2f} s, {'met' if cpu < bound else 'NOT met'}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="synthetic sizes 2,500 and 20,000 only")
    args = ap.parse_args(argv)
    print(f"{args.reps} round-robin repetitions, medians; in-process CPU time (imports excluded) unless 'cold'")
    report(run(args.reps, args.quick))


if __name__ == "__main__":
    main()
