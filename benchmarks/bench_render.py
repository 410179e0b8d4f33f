"""Wall time of `netc render SPEC --svg` (process start to exit), next to graphviz alone on the same DOT.

Each repetition runs, in fresh processes and interleaved so machine load affects all alike:
`netc render --svg` (load, view, DOT, dot layout), `dot -Tsvg` on the DOT netc wrote (the
layout floor) and `netc render --dot` (everything but the layout). Medians are printed.
Target: inception_v3 to SVG in < 3 s on the 2-core machine. Nothing is asserted.

    .venv/bin/python benchmarks/bench_render.py [--reps N] [--spec NAME] [--depth N]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETC = Path(sys.executable).parent / "netc"


def default_spec() -> str:
    return "inception_v3" if (ROOT / "specs" / "inception_v3.yaml").exists() else "resnet50"


def wall(cmd: list[str], stdin: bytes | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--spec", default=default_spec())
    ap.add_argument("--depth", type=int, default=None, help="collapse depth (default: every op)")
    args = ap.parse_args()
    depth = ["--depth", str(args.depth)] if args.depth else []
    with tempfile.TemporaryDirectory() as tmp:
        svg = str(Path(tmp) / "out.svg")
        render_svg = [str(NETC), "render", args.spec, "--svg", "-o", svg, *depth]
        render_dot = [str(NETC), "render", args.spec, "--dot", *depth]
        dot_text = subprocess.run(render_dot, cwd=ROOT, check=True, capture_output=True).stdout
        layout = ["dot", "-Tsvg"]
        wall(render_svg), wall(layout, dot_text)  # warm the file cache
        times = {"svg": [], "layout": [], "dot": []}
        for _ in range(args.reps):
            times["svg"].append(wall(render_svg))
            times["layout"].append(wall(layout, dot_text))
            times["dot"].append(wall(render_dot))
        boxes = dot_text.count(b" [id=") - dot_text.count(b"graph [id=")
        size = Path(svg).stat().st_size
    med = {k: statistics.median(v) for k, v in times.items()}
    what = f"{args.spec}" + (f" --depth {args.depth}" if args.depth else "")
    print(f"netc render {what} --svg: median {med['svg']:.2f} s wall over {args.reps} runs "
          f"(min {min(times['svg']):.2f}, max {max(times['svg']):.2f}); {boxes} boxes, SVG {size / 1024:.0f} KiB")
    print(f"  graphviz dot -Tsvg alone:      median {med['layout']:.2f} s")
    print(f"  netc render --dot (no layout): median {med['dot']:.2f} s")
    print(f"  layout share {med['layout'] / med['svg']:.0%};  "
          f"ratio render/dot-alone {med['svg'] / med['layout']:.2f}x;  target < 3 s: {'met' if med['svg'] < 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
