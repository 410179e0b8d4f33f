"""Graphviz layout time against diagram size: the measurement behind render's MAX_BOXES.

A chain of N residual blocks (each a cluster of conv, relu and the sum, as every ResNet draws)
is written as DOT by netc, and `dot -Tsvg` lays it out once per size; the wall time and the
box count are printed. `dot` grows much faster than the boxes, so `netc render`/`diff --html`
refuse diagrams above `netc.backends.render.graphviz.MAX_BOXES` before starting it. Nothing is asserted.

    .venv/bin/python benchmarks/bench_layout.py [--blocks 100 250 333 500]
"""
from __future__ import annotations

import argparse
import subprocess
import time

SPEC = "netc: 1\nname: chain\ninput: [4, 8, 8]\nlayers:\n  - repeat: {n}\n    residual: {{body: [{{conv: {{out: 4, k: 3, p: 1}}}}, relu]}}\n"


def main() -> None:
    from netc.api import loads
    from netc.backends.render.dot import subtitle, to_dot, view_of
    from netc.backends.render.graphviz import MAX_BOXES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, nargs="+", default=[100, 250, 333, 500])
    args = ap.parse_args()
    print(f"MAX_BOXES = {MAX_BOXES:,}")
    print(f"{'blocks':>7} {'boxes':>7} {'dot -Tsvg':>10}")
    for n in args.blocks:
        network = loads(SPEC.format(n=n), "chain.yaml")
        view = view_of(network)
        source = to_dot(view, "TB", network.name, subtitle(network))
        t0 = time.perf_counter()
        subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True)
        print(f"{n:>7} {len(view.boxes):>7} {time.perf_counter() - t0:>9.2f}s", flush=True)


if __name__ == "__main__":
    main()
