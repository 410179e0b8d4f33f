"""Measured peak memory of one training step for the training-memory test cases, per CPU ISA.

oneDNN chooses its convolution kernels (and so the copies they make) by the CPU's instruction
set, capped by the environment variable ONEDNN_MAX_CPU_ISA, which it reads once per process: each
ISA is measured in a process of its own. A CPU runs its own ISA and every weaker one (an AVX-512
CPU runs the AVX2 kernels too), so one machine checks several of `netc.analysis.onednn`'s rules
live; `--record` keeps the measurements, so that the rules of the ISAs a CI machine lacks are
still checked (tests/test_train_cost.py).

    python tools/train_peaks.py --print avx2   # measure the cases under AVX2: a JSON list of bytes
    python tools/train_peaks.py --record       # measure under every ISA this CPU runs, keep in PEAKS
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from netc.analysis.onednn import ISAS, ONEDNN_NAMES, detect_isa  # noqa: E402

PEAKS = ROOT / "tests" / "fixtures" / "train" / "peaks.json"


def cases() -> list[dict]:
    """The recorded cases: spec (a bundled name or a file under tests/fixtures/train), batch, optimizer."""
    return json.loads(PEAKS.read_text(encoding="utf-8"))["cases"]


def load_case(case: dict):
    import netc

    local = PEAKS.parent / f"{case['spec']}.yaml"
    return netc.load(local if local.exists() else case["spec"])


def runnable_isas() -> list[str]:
    """This CPU's ISA and every weaker one that netc models."""
    return list(ISAS[: ISAS.index(detect_isa()) + 1])


def measure(isa: str) -> list[int]:
    """The measured peak of every case, in a process whose oneDNN is capped at `isa`."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": ONEDNN_NAMES[isa]}
    out = subprocess.run([sys.executable, __file__, "--print", isa], env=env, capture_output=True, text=True,
                         check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure_here() -> list[int]:
    import torch

    from netc.backends.torch.train_memory import measure_training_peak

    peaks = []
    for case in cases():
        torch.manual_seed(0)
        network = load_case(case)
        peaks.append(measure_training_peak(network.build(), network.input_shape, case["batch"], case["optimizer"]))
    return peaks


def record() -> None:
    import torch

    data = json.loads(PEAKS.read_text(encoding="utf-8"))
    for isa in runnable_isas():
        data["peaks"][isa] = measure(isa)
        data["measured_on"][isa] = f"{platform.processor() or platform.machine()}, {_cpu_model()}, torch {torch.__version__}"
        print(f"{isa}: {data['peaks'][isa]}", flush=True)
    PEAKS.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                "unknown CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--print", dest="isa", choices=ISAS, help="measure here (under ONEDNN_MAX_CPU_ISA as set)")
    group.add_argument("--record", action="store_true", help=f"measure every ISA this CPU runs into {PEAKS.name}")
    args = ap.parse_args()
    if args.record:
        record()
    elif detect_isa() != args.isa:
        sys.exit(f"this process runs {detect_isa()} kernels, not {args.isa} (set ONEDNN_MAX_CPU_ISA, or use a CPU that has it)")
    else:
        print(json.dumps(_measure_here()))


if __name__ == "__main__":
    main()
