"""The import coverage sweep (issue 29): `netc import` on the lightest model of every timm CNN
family and on torchvision's classification, segmentation and detection models (a detector's
`.backbone`: what `netc import torchvision:NAME` imports of it), each in a process of its own
(`netc import SOURCE --check-only` under a time limit), with a table of outcomes and causes.

    python benchmarks/bench_import_sweep.py --suite timm --timeout 300 > sweep.md

A timm family is a module of `timm.models` (`timm.list_modules()`); its lightest model is the one
with the fewest parameters, counted on the meta device (nothing is allocated); with `--pick default`
its default model, the one with the most pretrained weights. A family whose
lightest model has an attention layer (a module whose forward multiplies two activations as
matrices: `scope`) or a recurrent one is listed as out of scope: netc specs are convolutional. Outcomes are
netc's exit status: verified (0), differs (1), refused (2, the first error line is the cause),
timeout, crashed (anything else); a verified import whose state_dict keys load in another order than
the source's is "verified (key order)", one exact where it compiles but whose spec refuses the second
input size the source runs at (`netc import` says "; but at ...") "verified (one size)".

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

from torch import nn

ROOT = Path(__file__).resolve().parents[1]
MATMUL = re.compile(r"[\w)\]]\s*@\s*[\w(]|\b(matmul|bmm|einsum|scaled_dot_product_attention)\b")


def timm_families(pick: str = "lightest") -> list[tuple[str, str, str]]:
    """(family, its lightest or default model, 'cnn' or the attention class that puts it out of
    scope). timm names no default per family; the default here is the model with the most
    pretrained weights (`timm.list_pretrained`: the one its users load most), the lighter on a tie."""
    import collections

    import timm
    import torch

    tags = collections.Counter(name.partition(".")[0] for name in timm.list_pretrained())
    out = []
    for family in sorted(timm.list_modules()):
        best = None
        for name in timm.list_models(module=family):
            try:
                with torch.device("meta"):
                    model = timm.create_model(name, pretrained=False)
            except Exception:  # a model that cannot be built on meta: counted as unbuildable
                continue
            key = (-tags[name] if pick == "default" else 0, sum(p.numel() for p in model.parameters()))
            if best is None or key < best[0]:
                best = (key, name, model)
        if best is None:
            out.append((family, "", "no model builds on the meta device"))
            continue
        out.append((family, best[1], scope(classes(best[2]))))
    return out


def classes(model) -> list[type]:
    return list(dict.fromkeys(type(m) for m in model.modules()))


def scope(module_classes: list[type]) -> str:
    """'cnn', or 'out of scope: ' and the first module class that multiplies two activations as
    matrices (attention, linear attention, state-space scans: `@`, matmul, bmm, einsum or
    scaled_dot_product_attention in its forward or a method the forward calls) or is recurrent."""
    for cls in module_classes:
        if issubclass(cls, nn.MultiheadAttention):
            return f"out of scope: {cls.__name__} (attention)"
        if issubclass(cls, nn.RNNBase):
            return f"out of scope: {cls.__name__} (recurrent)"
        if not cls.__module__.startswith("torch.") and MATMUL.search(_forward_source(cls)):
            return f"out of scope: {cls.__name__} (attention)"
    return "cnn"


def _forward_source(cls) -> str:
    """The source of `cls.forward` and of the functions it calls that are defined beside it (its
    class's methods, its module's functions: swin's shifted_window_attention), decorators left out."""
    try:
        text = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return ""
    scope = vars(sys.modules[cls.__module__])
    for self_, called in dict.fromkeys(re.findall(r"(self\.)?\b(\w+)\(", text)):
        f = getattr(cls, called, None) if self_ else scope.get(called)
        if inspect.isfunction(f) and f.__module__ == cls.__module__ and called != "forward":
            text += inspect.getsource(f)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("@"))


def torchvision_models(module: str) -> list[tuple[str, str]]:
    """(model, 'cnn' or why it is out of scope) of torchvision.models or one of its submodules."""
    import torchvision

    names = torchvision.models.list_models(module=getattr(torchvision.models, module) if module else torchvision.models)
    return [(name, torchvision_scope(name)) for name in sorted(names)]


def torchvision_scope(name: str) -> str:
    import torch
    import torchvision

    builder = torchvision.models.get_model_builder(name)
    dense = "weights_backbone" in inspect.signature(builder).parameters
    try:
        with torch.device("meta"):
            model = builder(weights=None, **({"weights_backbone": None} if dense else {}))
    except NotImplementedError:  # a builder that reads tensor data (regnet's widths): its module's classes
        return scope([cls for _, cls in inspect.getmembers(sys.modules[builder.__module__], inspect.isclass)
                      if issubclass(cls, nn.Module)])
    detector = name in torchvision.models.list_models(module=torchvision.models.detection)
    return scope(classes(model.backbone if detector else model))


def model_scope(source: str) -> str:
    """scope() of a `timm:NAME` or `torchvision:NAME` source, built on the meta device."""
    import timm
    import torch

    hub, _, name = source.partition(":")
    if hub == "torchvision":
        return torchvision_scope(name)
    with torch.device("meta"):
        return scope(classes(timm.create_model(name, pretrained=False)))


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
        said, cause = run.stdout + run.stderr, ""
        if run.returncode == 0 and "keys in a different order" in said:
            outcome = "verified (key order)"
        if run.returncode == 0 and "; but at " in said:  # exact where it compiles; refuses the second size
            outcome, cause = "verified (one size)", said.partition("; but at ")[2].splitlines()[0][:160]
        if run.returncode:
            errors = [ln for ln in run.stderr.splitlines() if "error[" in ln]
            cause = (errors[0] if errors else (run.stderr.strip().splitlines() or [""])[-1])[:160]
        return outcome, cause.replace("|", "\\|"), seconds, lines


def hand_written(name: str) -> str:
    spec = ROOT / "specs" / f"{name}.yaml"
    return str(spec.read_text(encoding="utf-8").count("\n")) if spec.exists() else ""


HEADER = "| family | model | outcome | cause | seconds | spec lines | hand-written lines |"
DONE = ("verified",)


def earlier_rows(path: str, redo: str = "") -> list[tuple]:
    """(source or '' where out of scope, family, model, kept table row or None to re-import, kind)
    of an earlier table's rows."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or line.startswith(HEADER[:9]) or len(cells) < 7:
            continue
        family, model, outcome = cells[:3]
        source = f"torchvision:{model}" if family.startswith("torchvision") else f"timm:{model}"
        if outcome in DONE and not (redo and re.search(redo, model)):
            rows.append((source, family, model, line, outcome))
        else:  # the scope is decided again: the rule may have changed since
            kind = model_scope(source)
            rows.append((source if kind == "cnn" else "", family, model, None, kind))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=["timm", "torchvision", "segmentation", "detection", "all"], default="all")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per import")
    ap.add_argument("--pick", choices=["lightest", "default"], default="lightest",
                    help="which timm model stands for its family (default: the most pretrained weights)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many models per suite (0: all)")
    ap.add_argument("--rerun", metavar="TABLE", help="re-import only the rows of TABLE not verified")
    ap.add_argument("--redo", metavar="REGEX", default="", help="with --rerun: also re-import the models it matches")
    args = ap.parse_args()
    if args.rerun:
        return report([(source, family, model, kept, outcome) for source, family, model, kept, outcome
                       in earlier_rows(args.rerun, args.redo)], args.timeout)
    rows = []
    if args.suite in ("timm", "all"):
        rows += [(f"timm:{model}" if kind == "cnn" else "", family, model, kind)
                 for family, model, kind in timm_families(args.pick)][:args.limit or None]
    if args.suite in ("torchvision", "all"):
        rows += [(f"torchvision:{m}" if kind == "cnn" else "", "torchvision", m, kind)
                 for m, kind in torchvision_models("")][:args.limit or None]
    for dense in ("segmentation", "detection"):
        if args.suite in (dense, "all"):
            rows += [(f"torchvision:{m}" if kind == "cnn" else "", f"torchvision.{dense}", m, kind)
                     for m, kind in torchvision_models(dense)][:args.limit or None]
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
