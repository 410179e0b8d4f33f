"""The import coverage sweep (issue 29): `netc import` on the lightest model of every timm CNN
family and on torchvision's classification and segmentation models, each in a process of its own
(`netc import SOURCE --check-only` under a time limit), with a table of outcomes and causes.

    python benchmarks/bench_import_sweep.py --suite timm --timeout 300 > sweep.md

A timm family is a module of `timm.models` (`timm.list_modules()`); its lightest model is the one
with the fewest parameters, counted on the meta device (nothing is allocated). A family whose
lightest model contains an attention layer (a module class named like `Attention`, or
`nn.MultiheadAttention`) is listed as out of scope: netc specs are convolutional. Outcomes are
netc's exit status: verified (0), differs (1), refused (2, the first error line is the cause),
timeout, crashed (anything else); a verified import whose state_dict keys load in another order than
the source's is "verified (key order)".

    python benchmarks/bench_import_sweep.py --rerun sweep.md > sweep2.md

re-imports only the rows of an earlier table that were not verified (or out of scope) and prints the
whole table again: a fix is measured without re-running the sweep.
"""
from __future__ import annotations

import argparse
import inspect
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
        out.append((family, best[1], scope(best[2])))
    return out


def scope(model) -> str:
    """'cnn', or 'out of scope: ' and the first attention layer's class."""
    attention = next((type(m).__name__ for m in model.modules() if ATTENTION.search(type(m).__name__)), None)
    return "cnn" if attention is None else f"out of scope: {attention}"


def torchvision_models(module: str) -> list[tuple[str, str]]:
    """(model, 'cnn' or why it is out of scope) of torchvision.models or one of its submodules."""
    import torch
    import torchvision
    from torch import nn

    out = []
    for name in sorted(torchvision.models.list_models(module=getattr(torchvision.models, module)
                                                      if module else torchvision.models)):
        try:
            with torch.device("meta"):
                model = torchvision.models.get_model(name, weights=None, **({"weights_backbone": None}
                                                                            if module else {}))
        except NotImplementedError:  # a builder that reads tensor data (regnet's widths): its module's classes
            builder = torchvision.models.get_model_builder(name)
            model = nn.ModuleList(cls() for _, cls in inspect.getmembers(sys.modules[builder.__module__],
                                                                         inspect.isclass)
                                  if issubclass(cls, nn.Module) and ATTENTION.search(cls.__name__))
        out.append((name, scope(model)))
    return out


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
        if run.returncode == 0 and "keys in a different order" in run.stdout + run.stderr:
            outcome = "verified (key order)"
        cause = ""
        if run.returncode:
            errors = [ln for ln in run.stderr.splitlines() if "error[" in ln]
            cause = (errors[0] if errors else (run.stderr.strip().splitlines() or [""])[-1])[:160]
        return outcome, cause.replace("|", "\\|"), seconds, lines


def hand_written(name: str) -> str:
    spec = ROOT / "specs" / f"{name}.yaml"
    return str(spec.read_text(encoding="utf-8").count("\n")) if spec.exists() else ""


HEADER = "| family | model | outcome | cause | seconds | spec lines | hand-written lines |"
DONE = ("verified", "out of scope")


def earlier_rows(path: str) -> list[tuple]:
    """(source, family, model, kept table row or None to re-import, outcome) of an earlier table."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or line.startswith(HEADER[:9]) or len(cells) < 7:
            continue
        family, model, outcome = cells[:3]
        source = "" if outcome == "out of scope" else (
            f"timm:{model}" if not family.startswith("torchvision") else f"torchvision:{model}")
        rows.append((source, family, model, line if outcome in DONE else None, outcome))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=["timm", "torchvision", "segmentation", "all"], default="all")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per import")
    ap.add_argument("--limit", type=int, default=0, help="at most this many models per suite (0: all)")
    ap.add_argument("--rerun", metavar="TABLE", help="re-import only the rows of TABLE not verified")
    args = ap.parse_args()
    if args.rerun:
        return report([(source, family, model, kept, outcome) for source, family, model, kept, outcome
                       in earlier_rows(args.rerun)], args.timeout)
    rows = []
    if args.suite in ("timm", "all"):
        rows += [(f"timm:{model}" if kind == "cnn" else "", family, model, kind)
                 for family, model, kind in timm_families()][:args.limit or None]
    if args.suite in ("torchvision", "all"):
        rows += [(f"torchvision:{m}" if kind == "cnn" else "", "torchvision", m, kind)
                 for m, kind in torchvision_models("")][:args.limit or None]
    if args.suite in ("segmentation", "all"):
        rows += [(f"torchvision:{m}", "torchvision.segmentation", m, kind)
                 for m, kind in torchvision_models("segmentation")][:args.limit or None]
    report([(source, family, model, None, kind) for source, family, model, kind in rows], args.timeout)


def report(rows: list, timeout: float) -> None:
    """Import each row (or keep its earlier line) and print the table with outcome counts."""
    print(HEADER)
    print("|---|---|---|---|---:|---:|---:|")
    counts: dict[str, int] = {}
    for source, family, model, kept, kind in rows:
        if kept:
            outcome = kept.split("|")[3].strip()
            print(kept, flush=True)
        else:
            if not source:
                outcome, cause, seconds, lines = "out of scope", kind.removeprefix("out of scope: "), 0.0, 0
            else:
                outcome, cause, seconds, lines = run_import(source, timeout)
            print(f"| {family} | {model} | {outcome} | {cause} | {seconds:.1f} | {lines or ''} | "
                  f"{hand_written(model)} |", flush=True)
        counts[outcome] = counts.get(outcome, 0) + 1
    print()
    print("; ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + f" (of {len(rows)})")


if __name__ == "__main__":
    main()
