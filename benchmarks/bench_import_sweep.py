"""The import coverage sweep (issue 29): `netc import` on the lightest model of every timm CNN
family and on torchvision's classification and segmentation models, each in a process of its own
(`netc import SOURCE --check-only` under a time limit), with a table of outcomes and causes.

    python benchmarks/bench_import_sweep.py --suite timm --timeout 300 > sweep.md

A timm family is a module of `timm.models` (`timm.list_modules()`); its lightest model is the one
with the fewest parameters, counted on the meta device (nothing is allocated). A family whose
lightest model contains an attention layer (a module class named like `Attention`, or
`nn.MultiheadAttention`) is listed as out of scope: netc specs are convolutional. Outcomes are
netc's exit status: verified (0), differs (1), refused (2, the first error line is the cause),
timeout, crashed (anything else).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ATTENTION = re.compile(r"(?<!Split)(Attention|Attn)(2d)?$|MultiheadAttention|^(Window|Self|Channel)Attn")


def timm_families() -> list[tuple[str, str, str]]:
    """(family, lightest model, 'cnn' or the attention class that puts it out of scope)."""
    import timm
    import torch

    out = []
    for family in sorted(timm.list_modules()):
        best = None
        for name in timm.list_models(module=family):
            try:
                with torch.device("meta"):
                    model = timm.create_model(name, pretrained=False)
            except Exception:  # a model that cannot be built on meta: counted as unbuildable
                continue
            n = sum(p.numel() for p in model.parameters())
            if best is None or n < best[0]:
                best = (n, name, model)
        if best is None:
            out.append((family, "", "no model builds on the meta device"))
            continue
        attention = next((type(m).__name__ for m in best[2].modules() if ATTENTION.search(type(m).__name__)), None)
        out.append((family, best[1], "cnn" if attention is None else f"out of scope: {attention}"))
    return out


def torchvision_models(module: str) -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=getattr(torchvision.models, module)
                                                 if module else torchvision.models))


def run_import(source: str, timeout: float) -> tuple[str, str, float, int]:
    """(outcome, cause, seconds, spec lines) of `netc import source`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "spec.yaml"
        start = time.perf_counter()
        try:
            run = subprocess.run([sys.executable, "-m", "netc", "import", source, "-o", str(out)],
                                 capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return "timeout", f"over {timeout:g} s", time.perf_counter() - start, 0
        seconds = time.perf_counter() - start
        lines = out.read_text(encoding="utf-8").count("\n") if out.exists() else 0
        outcome = {0: "verified", 1: "differs", 2: "refused"}.get(run.returncode, f"crashed ({run.returncode})")
        cause = ""
        if run.returncode:
            errors = [ln for ln in run.stderr.splitlines() if "error[" in ln]
            cause = (errors[0] if errors else (run.stderr.strip().splitlines() or [""])[-1])[:160]
        return outcome, cause.replace("|", "\\|"), seconds, lines


def hand_written(name: str) -> str:
    spec = ROOT / "specs" / f"{name}.yaml"
    return str(spec.read_text(encoding="utf-8").count("\n")) if spec.exists() else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=["timm", "torchvision", "segmentation", "all"], default="all")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per import")
    ap.add_argument("--limit", type=int, default=0, help="at most this many models per suite (0: all)")
    args = ap.parse_args()
    rows = []
    if args.suite in ("timm", "all"):
        rows += [(f"timm:{model}" if kind == "cnn" else "", family, model, kind)
                 for family, model, kind in timm_families()][:args.limit or None]
    if args.suite in ("torchvision", "all"):
        rows += [(f"torchvision:{m}", "torchvision", m, "cnn") for m in torchvision_models("")][:args.limit or None]
    if args.suite in ("segmentation", "all"):
        rows += [(f"torchvision:{m}", "torchvision.segmentation", m, "cnn")
                 for m in torchvision_models("segmentation")][:args.limit or None]
    print("| family | model | outcome | cause | seconds | spec lines | hand-written lines |")
    print("|---|---|---|---|---:|---:|---:|")
    counts: dict[str, int] = {}
    for source, family, model, kind in rows:
        if not source:
            outcome, cause, seconds, lines = "out of scope", kind.removeprefix("out of scope: "), 0.0, 0
        else:
            outcome, cause, seconds, lines = run_import(source, args.timeout)
        counts[outcome] = counts.get(outcome, 0) + 1
        print(f"| {family} | {model} | {outcome} | {cause} | {seconds:.1f} | {lines or ''} | {hand_written(model)} |",
              flush=True)
    print()
    print("; ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + f" (of {len(rows)})")


if __name__ == "__main__":
    main()
