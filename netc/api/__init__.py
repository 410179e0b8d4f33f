"""The Python API: `netc.load(path)` compiles a spec into a `Network`.

A Network holds the validated spec and its shape-checked IR; its verbs (`build`, `codegen`,
`render`, `table`) hand the IR to a backend. Loading never imports torch.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from netc.analysis.onednn import ISAS as CPU_ISAS  # noqa: F401  (the CPU ISAs train_cost models)
from netc.api.building import Built, build, optimize, render_formats  # noqa: F401  (the API's build verbs)
from netc.errors import error
from netc.ir.graph import Graph
from netc.ir.passes import infer_shapes, topo_order
from netc.spec.budget import work_budget
from netc.spec.compile import compile_graph
from netc.spec.expand import Limits
from netc.spec.init import as_init_spec, unmatched_rules
from netc.spec.load import bind_variables, check_text_size, parse_spec, read_text, with_input_shape
from netc.spec.model import Spec
from netc.spec.source import Source

SPECS_DIR = Path(__file__).resolve().parent.parent.parent / "specs"


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
    graph: Graph
    file: str
    env: dict[str, Any]
    order: list[int] = field(default_factory=list)
    transforms: tuple[str, ...] = ()  # the lesions and reorderings applied, in order
    removed: frozenset[str] = frozenset()  # scopes of the ops lesions removed
    warnings: list = field(default_factory=list)  # the frontend's located warnings (`Diagnostic`s)

    @property
    def name(self) -> str:
        """The spec's name, with the transformations applied: `resnet56 (lesion layer3.4)`."""
        return self.spec.name + (f" ({', '.join(self.transforms)})" if self.transforms else "")

    def __repr__(self) -> str:
        return (f"<Network {self.name}: {self.params:,} params, {self.macs:,} MACs, input "
                f"{'x'.join(map(str, self.input_shape))}, {len(self.order) - 1} ops, from {self.file}>")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.graph.input_shape

    @property
    def outputs(self) -> list[tuple[str, int, bool]]:
        return self.graph.outputs

    def nodes(self):
        """(id, `Node`) of every op node in execution order."""
        for nid in self.order:
            if nid != 0:
                yield nid, self.graph.node(nid)

    @functools.cached_property
    def source(self) -> Source:
        """The spec as written, for what the IR does not carry (`netc.spec.source`)."""
        return Source(self.spec, self.file)

    def init_scheme(self, scheme=None):
        """An `init:` scheme (None: the spec's own) as a validated `netc.spec.init.InitSpec`."""
        return as_init_spec(self.spec.init if scheme is None else scheme)

    def recompile(self, overrides: dict[str, Any]) -> "Network":
        """This network's spec compiled again with params changed, as `--set` would."""
        params = {k: self.env[k] for k in self.spec.params}
        env = bind_variables(self.spec, self.file, {**params, **overrides})
        g, order = compile_graph(self.spec, self.file, env, Limits())
        return replace(self, graph=g, env=env, order=order)

    def at_input(self, shape: tuple[int, ...]) -> "Network":
        """This network compiled at another input shape, as `--input` would: its spec expanded again
        where it reads `$in_h`/`$in_w` (a transformed network cannot be: error[size]), else its
        shapes inferred again on a copy of its graph (which keeps lesions and reorderings)."""
        shape = tuple(shape)
        if self.graph.size_from_input is None:
            g = self.graph.copy()
            g.input_shape = shape
            for nid, data in g.node_items():
                data.inferred, data.shape = nid == 0, shape if nid == 0 else None
            infer_shapes(g, self.order)
            return replace(self, graph=g)
        if self.transforms:
            raise error("size", f"{self.name} sizes layers by its input, so it is compiled again at another "
                                "size, which its transformations would not survive", self.graph.size_from_input)
        spec = with_input_shape(self.spec, shape)
        params = {k: self.env[k] for k in self.spec.params}
        env = bind_variables(spec, self.file, params)
        g, order = compile_graph(spec, self.file, env, Limits())
        return replace(self, spec=spec, graph=g, env=env, order=order)

    @property
    def params(self) -> int:
        return sum(d.params for _, d in self.nodes())

    @property
    def macs(self) -> int:
        """MACs of conv and linear layers for one image; auxiliary (training-only) heads excluded."""
        return sum(d.macs for _, d in self.nodes() if not d.aux)

    def build(self, device: str = "cpu", dtype: str | None = None, init: bool = True, optimize: str | None = None,
              features_only: bool = False, out_indices=None, compile: bool | str = False, seed: int | None = None):
        """A `torch.nn.Module` (a torch.fx GraphModule) on `device` ('cpu', 'cuda', 'auto', 'meta'),
        initialised by the spec's `init:` scheme. See `netc.backends.torch.module`.

        `optimize="inference"` returns an eval-only module with batch norms folded into their convs,
        dropout removed and channels_last memory (`netc.backends.torch.optimize`); with
        `compile=True` (or a backend name: 'inductor', 'onnxruntime'), that module compiled into a
        cached package (`netc.backends.torch.compile`; the same weights find it again: `seed`
        seeds the initialisation, leaving torch's generator as it was). Parameters that
        do not fit in the device's free memory are an `error[limit]` before anything is allocated.
        The steps and what they found: `netc.api.build`.

        `features_only=True` returns a backbone whose forward gives the list of feature maps
        `out_indices` selects (stage indices or block names; default: one per stride change),
        described by `self.features(out_indices)` and the module's `feature_info`."""
        if features_only:
            return self._build_features(out_indices, device=device, dtype=dtype, init=init, optimize=optimize,
                                        seed=seed)
        return build(self, device, dtype, init, optimize, compile=compile, seed=seed).module

    def bench(self, device: str = "auto", batch: int = 8, iters: int = 20, warmup: int = 3, amp: bool = False,
              optimize: str | None = None, threads: int | None = None, tick=None, compile: bool | str = False):
        """Images/s and per-batch latencies of the built module's forward in eval mode, after
        `warmup` untimed forwards (`netc.backends.torch.benchmark.Bench`); `tick(phase)` after each."""
        from netc.backends.torch.benchmark import bench

        return bench(self, device, batch, iters, warmup, amp, optimize, threads, tick, compile)

    def lesion(self, scope: str) -> "Network":
        """This network without the body of residual block `scope` (its shortcut remains), or, in a
        plain network, without the layer or block `scope` (its input passed on), as in Veit et al.
        2016; parameters keep their keys, and `kept(state_dict)` selects the ones it still has
        (`netc.ir.transform.lesion`). Its name records the transformation."""
        from netc.ir.transform import lesion

        graph, removed = lesion(self.graph, scope)
        return replace(self, graph=graph, order=topo_order(graph), transforms=(*self.transforms, f"lesion {scope}"),
                       removed=self.removed | set(removed))

    def kept(self, state_dict: dict) -> dict:
        """The entries of the untransformed network's `state_dict` this one holds: the keys of the ops
        lesions removed left out (a projection shortcut's, outside the body, stay); loads strictly."""
        return {k: v for k, v in state_dict.items() if k.rpartition(".")[0] not in self.removed}

    def reorder(self, stage: str, order: list[int] | None = None) -> "Network":
        """This network with the blocks of `stage` run in `order` (default: its shape-keeping blocks
        reversed); parameters keep their keys (`netc.ir.transform.reorder`)."""
        from netc.ir.transform import reorder

        graph = reorder(self.graph, stage, order)
        how = f"reorder {stage}" + (f" as {','.join(map(str, order))}" if order is not None else "")
        return replace(self, graph=graph, order=topo_order(graph), transforms=(*self.transforms, how))

    def weights_from(self, source: "Network", state_dict: dict) -> dict:
        """`state_dict` of the `source` network converted into a state_dict of this one: layers
        matched by this spec's `mapping:`, equal paths, then position; linear and conv weights
        reshaped into each other over the conv's window (`netc.backends.torch.convert`)."""
        from netc.backends.torch.convert import convert_state_dict

        return convert_state_dict(source, self, state_dict)

    def codegen(self, out_dir: str | os.PathLike | None = None) -> str:
        """Standalone PyTorch source of this network (`netc.backends.codegen`); also written to
        `out_dir/<name>.py` (atomically, `codegen_path(out_dir)`) when `out_dir` is given."""
        from netc.backends import codegen

        if out_dir is not None:
            return codegen.write(self, out_dir).read_text(encoding="utf-8")
        return codegen.generate(self)

    def codegen_path(self, out_dir: str | os.PathLike = "generated") -> Path:
        """Where `codegen(out_dir)` writes: `out_dir/<name>.py`, the name made a module name."""
        from netc.backends.codegen import output_name

        return Path(out_dir) / output_name(self)

    def table(self, depth: int | None = None, fmt: str = "text", dtype: str = "float32") -> str:
        """Cost table (text, md, csv or json): per-layer rows, block subtotals down to `depth`, totals.

        The rows themselves: `netc.analysis.cost.analyse(network)`."""
        from netc.analysis.cost import analyse
        from netc.analysis.formats import render
        from netc.analysis.table import build

        with gc_paused():
            return render(build(analyse(self, dtype), depth), fmt)

    def versus(self, peer: str, optimize: str | None = None, compile: bool = False, batches=(1, 8), reps: int = 10,
               warmup: int = 2, threads: int | None = None):
        """Outputs compared, then speed of this network built with `optimize`/`compile` against the
        reference implementation (torchvision/timm, same weights) under `peer` ('torchvision':
        eager, 'compile': torch.compile, 'onnxruntime'): (what the peer is, [Versus per batch])."""
        from netc.backends.torch.benchmark import run_versus

        return run_versus(self, peer, optimize, compile, batches, reps, warmup, threads)

    def train_cost(self, batch: int, optimizer: str = "sgd", amp: bool = False, device: str = "cpu",
                   isa: str | None = None):
        """Predicted peak memory and FLOPs of one training step (`netc.analysis.train.TrainCost`);
        on the CPU with the kernels of `isa` ('avx2', 'avx512', 'amx'; None: this CPU's)."""
        from netc.analysis.train import predict

        return predict(self, batch, optimizer, amp, device, isa)

    def max_batch(self, budget: int, optimizer: str = "sgd", amp: bool = False, device: str = "cpu",
                  isa: str | None = None):
        """The TrainCost of the largest batch whose predicted peak fits in `budget` bytes, or None."""
        from netc.analysis.train import max_batch

        return max_batch(self, budget, optimizer, amp, device, isa)

    def render(self, fmt: str = "dot", depth: int | None = None, rankdir: str = "TB",
               path: str | os.PathLike | None = None) -> str | bytes:
        """Diagram in `fmt` (dot, svg, png, pdf, html); `depth` collapses nested blocks; written to `path` if given."""
        from netc.backends.render import render
        from netc.fsutil import write_atomic

        data = render(self, fmt, depth, rankdir)
        if path is not None:
            write_atomic(path, data)
        return data

    def _repr_html_(self) -> str:
        """A notebook cell's view: summary, diagram collapsed to top-level blocks, bar chart, block table."""
        from netc.backends.render.notebook import notebook_html

        return notebook_html(self)

    def export_hazards(self) -> list:
        """The spec's known ONNX export hazards, located (static; `netc.backends.onnx.hazards`)."""
        from netc.backends.onnx.hazards import preflight

        return preflight(self)

    def export_onnx(self, path: str | os.PathLike | None, opset: int = 18, dynamic_batch: bool = False,
                    weights: str | os.PathLike | None = None, verify: bool = True, module=None):
        """Export the eval forward to ONNX at `path` (`netc.backends.onnx`); returns the Verdict of
        the checker, shape and onnxruntime comparison (None with verify=False). `module` defaults
        to `build()`, with `weights` (a state_dict file) loaded strictly."""
        from netc.backends.onnx import export_onnx, load_weights

        module = module if module is not None else self.build()
        if weights:
            load_weights(module, weights)
        return export_onnx(self, module, path, opset, dynamic_batch, verify)[1]

    def export_program(self, path: str | os.PathLike, dynamic_batch: bool = False,
                       weights: str | os.PathLike | None = None, module=None) -> None:
        """Save the eval forward as a `torch.export.ExportedProgram` at `path`."""
        from netc.backends.onnx import export_program, load_weights

        module = module if module is not None else self.build()
        if weights:
            load_weights(module, weights)
        export_program(self, module, path, dynamic_batch)

    @property
    def feature_info(self):
        """The default backbone features (one per stride change): `.channels()`, `.reduction()`,
        `.module_name()` as timm's; static, no torch (`netc.analysis.features`)."""
        return self.features()

    def features(self, out_indices=None):
        """The FeatureInfo of the feature maps `out_indices` selects (indices or trunk names)."""
        from netc.analysis.features import feature_info

        return feature_info(self, out_indices)

    def _build_features(self, out_indices, **build_args):
        from netc.backends.torch.features import feature_module

        info = self.features(out_indices)
        return feature_module(self.build(**build_args), info)


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
    with work_budget(limits.max_work):  # one budget for variables, templates and expansion
        return _compile_within_budget(text, file, overrides, limits, input_shape)


def _compile_within_budget(text, file, overrides, limits, input_shape) -> Network:
    check_text_size(text, file, limits.max_file_bytes)
    spec = parse_spec(text, file, lib_path=limits.lib_path)
    if input_shape is not None:
        spec = with_input_shape(spec, input_shape)
    env = bind_variables(spec, file, overrides or {})
    g, order = compile_graph(spec, file, env, limits)
    ops = [(g.node(n).op, g.node(n).scope) for n in order if n]
    return Network(spec=spec, graph=g, file=file, env=env, order=order, warnings=unmatched_rules(spec, ops))


def diff_html(a: Network, b: Network, depth: int | None = None, block_depth: int | None = None,
              rankdir: str = "TB") -> str:
    """`netc diff --html`: both diagrams (at `depth`) side by side with the changed boxes marked,
    and the diff's block table (blocks at `block_depth`; see `netc.analysis.diff`)."""
    from netc.analysis.diff import diff
    from netc.backends.render.diff_html import report

    return report(a, b, diff(a, b, block_depth), depth, rankdir)


def verify(spec: str | os.PathLike | Callable[..., Network], source: str, kwargs: dict | None = None,
           strict_order: bool = False):
    """`netc verify`: a spec (a file, a bundled name, or a function compiling it at a shape, None
    for its own) against `source` (as `import_spec`'s, or a state_dict file): a verify.Report."""
    from netc.interop.source import load_source
    from netc.interop.verify import verify as check, verify_state_dict

    compile_at = spec if callable(spec) else lambda shape=None: load(spec, input_shape=shape)
    network = compile_at(None)
    if str(source).endswith((".pt", ".pth")) and ":" not in Path(source).name:
        return verify_state_dict(network, source, strict_order)
    src = load_source(source, kwargs)
    report = check(compile_at, src.module, network.input_shape, strict_order)
    report.reference = src.built
    return report


def import_spec(source: str, kwargs: dict | None = None, input_shape: tuple[int, ...] | None = None,
                name: str | None = None, check: bool = True, stage=None):
    """An existing nn.Module (`source`: `torchvision:NAME`, `timm:NAME` or `file.py:ClassOrFactory`
    called with `kwargs`) as a netc spec: (spec text, None or, with `check`, the `verify` Report
    it passed; a NetcError where it differs). `stage(description)`: a context manager around each
    step, for a progress display."""
    from netc.interop import import_model
    from netc.interop.verify import verify

    stage = stage or (lambda _: contextlib.nullcontext())
    with stage(f"trace {source}"):
        imported = import_model(source, kwargs, input_shape, name)
    with stage("verify: compile the spec, load the weights, compare outputs") if check else contextlib.nullcontext():
        report = check and verify(lambda shape: loads(imported.text, f"<import {source}>", input_shape=shape),
                                  imported.source.module, imported.input_shape)
    if check:
        report.reference = imported.source.built
    if check and not report.verified:
        raise error("import", f"the imported spec {report.summary()}")
    return imported.text, report or None
