"""The Python API: `netc.load(path)` compiles a spec into a `Network`.

A Network holds the validated spec and its shape-checked IR; its verbs (`build`, `codegen`,
`render`, `table`) hand the IR to a backend. Loading never imports torch.
"""
from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from netc.errors import error
from netc.ir.passes import check_limits, check_structure, infer_shapes, topo_order
from netc.spec.expand import Limits, expand
from netc.spec.load import bind_variables, check_text_size, collect_templates, parse_spec, read_text
from netc.spec.model import Spec

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"


def resolve_spec_path(name: str | os.PathLike) -> Path:
    """A path to a spec file, or the name of a bundled spec (`resnet50`)."""
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml") or os.sep in str(name):
        return p
    bundled = SPECS_DIR / f"{name}.yaml"
    if bundled.exists():
        return bundled
    from netc.errors import did_you_mean
    names = [f.stem for f in SPECS_DIR.glob("*.yaml")]
    raise error("io", f"no such file or bundled spec: '{name}'", None,
                did_you_mean(str(name), names) or "see 'netc list' for the bundled specs")


@dataclass
class Network:
    """A compiled spec: `graph` is the IR every backend consumes."""

    spec: Spec
    graph: nx.DiGraph
    file: str
    env: dict[str, Any]
    order: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.graph.graph["input"]

    @property
    def outputs(self) -> list[tuple[str, int, bool]]:
        return self.graph.graph["outputs"]

    def nodes(self):
        """(id, data) of every op node in execution order."""
        for nid in self.order:
            if nid != 0:
                yield nid, self.graph.nodes[nid]

    @property
    def params(self) -> int:
        return sum(d["params"] for _, d in self.nodes())

    @property
    def macs(self) -> int:
        """MACs of conv and linear layers for one image; auxiliary (training-only) heads excluded."""
        return sum(d["macs"] for _, d in self.nodes() if not d["aux"])

    def build(self, device: str = "cpu", dtype: str | None = None, init: bool = True, optimize: str | None = None,
              compile: bool | str = False):
        """A `torch.nn.Module` (a torch.fx GraphModule) on `device` ('cpu', 'cuda', 'auto', 'meta'),
        initialised by the spec's `init:` scheme. See `netc.backends.torch.module`.

        `optimize="inference"` returns an eval-only module with batch norms folded into their convs,
        dropout removed and channels_last memory (`netc.backends.torch.optimize`); with
        `compile=True` (or a backend name: 'inductor', 'onnxruntime'), that module compiled into a
        cached package (`netc.backends.torch.compile`)."""
        from netc.backends.torch.module import build_module

        module = build_module(self, device, dtype, init)
        if optimize or compile:
            module = _optimize(module, optimize, compile, self.input_shape, self.name)
        return module

    def codegen(self, out_dir: str | os.PathLike | None = None) -> str:
        """Standalone PyTorch source of this network (`netc.backends.codegen`); also written to
        `out_dir/<name>.py` (atomically) when `out_dir` is given."""
        from netc.backends import codegen

        if out_dir is not None:
            return codegen.write(self, out_dir).read_text(encoding="utf-8")
        return codegen.generate(self)

    def table(self, depth: int | None = None, fmt: str = "text", dtype: str = "float32") -> str:
        """Cost table (text, md, csv or json): per-layer rows, block subtotals down to `depth`, totals.

        The rows themselves: `netc.analysis.cost.analyse(network)`."""
        from netc.analysis.cost import analyse
        from netc.analysis.formats import render
        from netc.analysis.table import build

        with gc_paused():
            return render(build(analyse(self, dtype), depth), fmt)

    def versus(self, peer: str, optimize: str | None = None, compile: bool = False, batches=(1, 8), reps: int = 10):
        """Outputs compared, then speed of this network built with `optimize`/`compile` against the
        reference implementation (torchvision/timm, same weights) under `peer` ('torchvision':
        eager, 'compile': torch.compile, 'onnxruntime'): (what the peer is, [Versus per batch])."""
        from netc.backends.torch.benchmark import run_versus

        return run_versus(self, peer, optimize, compile, batches, reps)

    def train_cost(self, batch: int, optimizer: str = "sgd", amp: bool = False, device: str = "cpu"):
        """Predicted peak memory and FLOPs of one training step (`netc.analysis.train.TrainCost`)."""
        from netc.analysis.train import predict

        return predict(self, batch, optimizer, amp, device)

    def max_batch(self, budget: int, optimizer: str = "sgd", amp: bool = False, device: str = "cpu"):
        """The TrainCost of the largest batch whose predicted peak fits in `budget` bytes, or None."""
        from netc.analysis.train import max_batch

        return max_batch(self, budget, optimizer, amp, device)

    def render(self, fmt: str = "dot", depth: int | None = None, rankdir: str = "TB",
               path: str | os.PathLike | None = None) -> str | bytes:
        """Diagram in `fmt` (dot, svg, png, pdf, html); `depth` collapses nested blocks; written to `path` if given."""
        from netc.backends.render import render
        from netc.fsutil import write_atomic

        data = render(self, fmt, depth, rankdir)
        if path is not None:
            write_atomic(path, data)
        return data


def optimize(module, level: str | None = "inference", compile: bool | str = False, input_shape=None,
             name: str = "model"):
    """A built module optimised for `level` (`inference`: `netc.backends.torch.optimize`); with
    `compile=True` (the default backend) or `compile="inductor"|"onnxruntime"` also compiled for
    inputs of `input_shape` (C, H, W) — see `netc.backends.torch.compile` — into a
    `CompiledModule` (its `compile_seconds`, `package`)."""
    if compile and level != "inference":
        raise error("usage", "compiling needs the inference optimisation", None, "use --optimize inference --compile")
    if compile and input_shape is None:
        raise error("usage", "compiling needs the input shape (C, H, W) of the module", None,
                    "pass input_shape=network.input_shape")
    from netc.backends.torch.optimize import optimize as optimize_module

    module = optimize_module(module, level)
    if compile:
        from netc.backends.torch.compile import compile_inference

        backend = compile if isinstance(compile, str) and compile != "default" else None
        module = compile_inference(module, input_shape, name=name, backend=backend)
    return module


_optimize = optimize  # for Network.build, whose `optimize` argument hides the function


def load(path: str | os.PathLike, overrides: dict[str, Any] | None = None, limits: Limits | None = None,
         input_shape: tuple[int, ...] | None = None) -> Network:
    """Compile a spec file (or bundled spec name) into a shape-checked Network; raises NetcError."""
    p = resolve_spec_path(path)
    limits = limits or Limits()
    text, shown = read_text(p, str(path) if Path(str(path)).exists() else str(p), limits.max_file_bytes)
    return loads(text, shown, overrides, limits, input_shape)


def loads(text: str, file: str = "<string>", overrides: dict[str, Any] | None = None,
          limits: Limits | None = None, input_shape: tuple[int, ...] | None = None) -> Network:
    """Compile spec text; `file` is the name used in messages and for relative imports."""
    with gc_paused():
        return _compile(text, file, overrides, limits or Limits(), input_shape)


@contextlib.contextmanager
def gc_paused():
    """Compilation allocates many long-lived containers (YAML nodes, pydantic models, graph
    dicts) and no reference cycles worth collecting; with the cyclic GC on, its full
    collections rescan that growing heap again and again: 20,000 nodes took 2.7x longer to
    compile and 3x longer to tabulate (benchmarks/bench_scale.py). Garbage left behind is
    collected after the compile."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _compile(text, file, overrides, limits, input_shape) -> Network:
    check_text_size(text, file, limits.max_file_bytes)
    spec = parse_spec(text, file)
    if input_shape is not None:
        spec = spec.model_copy(update={"input": list(input_shape)})
        spec._raw = spec._raw  # model_copy keeps private attrs
    env = bind_variables(spec, file, overrides or {})
    templates = collect_templates(spec, file, limits.max_file_bytes)
    g = expand(spec, file, templates, env, limits)
    check_structure(g)
    order = topo_order(g)
    infer_shapes(g, order)
    check_limits(g, limits.max_param_bytes)
    return Network(spec=spec, graph=g, file=file, env=env, order=order)
