"""IR -> `torch.nn.Module`: a `torch.fx.GraphModule` whose forward is generated from the IR.

Why fx rather than an interpreter loop: the forward of a GraphModule is straight-line Python
source generated once (`layer1_0_conv1 = getattr(self.layer1, "0").conv1(maxpool)`), so a
call runs exactly the module calls a hand-written model makes — no per-call schedule walk,
no dict lookups by string, no list of intermediate values. fx also gives us, at no cost,
`torch.compile`, `torch.jit.script`/`trace`, DistributedDataParallel, `m.code` to read the
forward, and fx passes (quantisation, feature extraction) on `m.graph`.

The module hierarchy mirrors the IR scopes: node `layer1.0.conv1` is the submodule
`layer1.0.conv1`, so state_dict keys are the spec's names (torchvision's, where the spec
follows it). Each leaf is constructed only from its op's `module()` facet (the same
`ModuleSpec` the code generator emits), on the `meta` device first: nothing is allocated
until the module is moved to its device and initialised (`netc.spec.init`).

Training-only side heads (`side: …, aux: true`): the module keeps two forwards generated from
one picklable `Program` — the training forward computes every output and returns them as a
namedtuple in the spec's `outputs` order (main first), the eval forward computes only the
main path and returns its tensor, like torchvision's GoogLeNet/Inception3. The switch is one
`self.training` test per call. `graph` is the training graph. Pickling stores the leaf
modules and the Program (not fx code), and deepcopy/copy rebuild the same class.
"""
from __future__ import annotations

import copy
import importlib
import keyword
from collections import namedtuple
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import fx, nn
from torch.fx.graph_module import _forward_from_src

from netc.errors import did_you_mean, error
from netc.ops import REGISTRY, fmt_shape


@dataclass(frozen=True)
class Step:
    """One op: the submodule at `scope` applied to the values in `inputs` (0 = network input)."""

    scope: str
    inputs: tuple[int, ...]


@dataclass(frozen=True)
class Program:
    """The straight-line schedule of a network: step k produces value k + 1.

    `outputs` are (name, value, aux) in the order a training forward returns them.
    """

    name: str
    steps: tuple[Step, ...]
    outputs: tuple[tuple[str, int, bool], ...]

    @property
    def has_aux(self) -> bool:
        return any(aux for _, _, aux in self.outputs)

    def graph(self, training: bool) -> fx.Graph:
        """The fx graph of the training forward (all outputs) or the eval forward (no aux heads)."""
        outs = [o for o in self.outputs if training or not o[2]]
        live = _live_values(self.steps, [v for _, v, _ in outs])
        g = fx.Graph()
        values: list = [g.placeholder("x")]
        for k, step in enumerate(self.steps, 1):
            values.append(g.call_module(step.scope, tuple(values[i] for i in step.inputs)) if k in live else None)
        results = [values[v] for _, v, _ in outs]
        if len(results) == 1:
            g.output(results[0])
        else:
            g.output(g.call_function(outputs_type(tuple(n for n, _, _ in outs)), tuple(results)))
        g.lint()
        return g


def _live_values(steps: tuple[Step, ...], wanted: list[int]) -> set[int]:
    live, stack = set(), list(wanted)
    while stack:
        v = stack.pop()
        if v in live or v == 0:
            continue
        live.add(v)
        stack.extend(steps[v - 1].inputs)
    return live


@lru_cache(maxsize=None)
def outputs_type(names: tuple[str, ...]) -> type:
    """A namedtuple type for several outputs, registered in this module so it pickles."""
    fields = [n if n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("_") else f"out{i}"
              for i, n in enumerate(names)]
    qual = "Outputs_" + "_".join(fields)
    cls = namedtuple(qual, fields)
    cls.__module__ = __name__
    globals()[qual] = cls
    return cls


class NetcModule(fx.GraphModule):
    """A network compiled by netc: an fx GraphModule built from a `Program` (see module doc)."""

    def __init__(self, root: nn.Module | dict, program: Program, class_name: str | None = None):
        object.__setattr__(self, "_netc_program", program)  # recompile() needs it during __init__
        super().__init__(root, program.graph(training=True), class_name or _class_name(program.name))

    @property
    def program(self) -> Program:
        return self._netc_program

    def recompile(self):
        code = super().recompile()  # forward from self.graph: the training forward
        program = self.__dict__.get("_netc_program")
        if program is not None and program.has_aux:
            cls = type(self)
            cls._forward_train = cls.forward
            ev = program.graph(training=False).python_code(root_module="self")
            cls._forward_eval = _forward_from_src(ev.src, ev.globals, {})
            cls.forward = NetcModule._forward_dispatch
        return code

    def _forward_dispatch(self, x):
        if self.training:
            return self._forward_train(x)
        return self._forward_eval(x)

    def leaves(self) -> dict[str, nn.Module]:
        """The op modules by scope, in execution order."""
        return {s.scope: self.get_submodule(s.scope) for s in self._netc_program.steps}

    # copy, deepcopy and pickle rebuild a NetcModule (GraphModule's own would give a plain one)
    def _deepcopy_init(self):
        program, name = self._netc_program, type(self).__name__

        def init(res, fake_mod, _graph):
            NetcModule.__init__(res, fake_mod, program, name)

        return init

    def __copy__(self):
        res = NetcModule(self, self._netc_program, type(self).__name__)
        res.meta = getattr(self, "meta", {})
        return res

    def __reduce__(self):
        return (_rebuild, (self.leaves(), self._netc_program, type(self).__name__, self.training))


def _rebuild(leaves: dict, program: Program, class_name: str, training: bool) -> NetcModule:
    m = NetcModule(leaves, program, class_name)
    m.train(training)
    return m


def _class_name(name: str) -> str:
    return name if name.isidentifier() else "Network"


def module_class(path: str) -> type:
    """The class at a dotted path from a ModuleSpec (`torch.nn.Conv2d`, `netc.backends.torch.runtime.Add`)."""
    mod, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(mod), attr)


def make_leaf(op: str, attrs, in_shapes) -> nn.Module:
    """Construct one op's module from its `module()` facet (the only construction path)."""
    spec = REGISTRY[op].module(attrs, in_shapes)
    return module_class(spec.cls)(*spec.args, **spec.kwargs)


# --- from the IR ---------------------------------------------------------------------------

def output_order(network) -> list[tuple[str, int, bool]]:
    """The IR outputs in the order a forward returns them: the spec's `outputs:` list, then the
    others; by default the main output (the last non-aux one to be computed) first.

    A name in `outputs:` that some `output:` of the spec declares but an `if:` left out is
    skipped (GoogLeNet with aux_logits false); any other unknown name is an error."""
    outs = list(network.outputs)
    position = {nid: k for k, nid in enumerate(network.order)}
    main = max((o for o in outs if not o[2]), key=lambda o: position[o[1]])
    outs = [main] + [o for o in outs if o is not main]
    wanted = network.spec.outputs
    if not wanted:
        return outs
    by_name = {name: (name, nid, aux) for name, nid, aux in outs}
    raw = network.spec._raw
    declared = set(_declared_outputs(raw))
    for name in wanted:
        if name not in by_name and name not in declared:
            raise error("ref", f"'outputs' names '{name}', which is not an output of the network",
                        getattr(raw.get("outputs"), "loc", None) or getattr(raw, "loc", None),
                        did_you_mean(name, by_name) or "outputs: " + ", ".join(by_name))
    first = [by_name[n] for n in wanted if n in by_name]
    return first + [o for o in outs if o[0] not in wanted]


def _declared_outputs(raw):
    """Every `output:` value (and named side branch) written in a raw spec mapping."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            if key == "output" and isinstance(value, str):
                yield value
            elif key == "side" and isinstance(raw.get("name"), str):
                yield raw["name"]
            yield from _declared_outputs(value)
    elif isinstance(raw, list):
        for item in raw:
            yield from _declared_outputs(item)


def program_of(network) -> Program:
    slot = {0: 0}
    steps = []
    for nid, data in network.nodes():
        slot[nid] = len(steps) + 1
        steps.append(Step(data["scope"], tuple(slot[i] for i in data["inputs"])))
    outputs = tuple((name, slot[nid], aux) for name, nid, aux in output_order(network))
    return Program(network.name, tuple(steps), outputs)


_RESERVED = set(dir(NetcModule))


def check_names(network) -> None:
    """Every scope segment must be usable as a submodule name (not shadowing nn.Module's own)."""
    leaves = {d["scope"] for _, d in network.nodes()}
    for _, data in network.nodes():
        parts = data["scope"].split(".")
        for depth, part in enumerate(parts):
            prefix = ".".join(parts[: depth + 1])
            clash = part in _RESERVED if depth == 0 else hasattr(nn.Module, part)
            if clash or not part:
                raise error("name", f"'{prefix}' cannot be a module name: '{part}' is an attribute of torch's "
                            "nn.Module", data["loc"], "rename the layer (name: …)", data["via"])
            if depth < len(parts) - 1 and prefix in leaves:
                raise error("name", f"'{prefix}' is both an op and a block containing '{data['scope']}'",
                            data["loc"], "rename one of them", data["via"])


def check_inplace(network) -> None:
    """An in-place op (`relu: {inplace: true}`) may only overwrite a value nothing else reads."""
    g = network.graph
    outputs = {nid for _, nid, _ in network.outputs}
    for nid, data in network.nodes():
        if not getattr(data["attrs"], "inplace", False):
            continue
        src = data["inputs"][0]
        readers = [g.nodes[r]["scope"] for r in g.successors(src) if r != nid]
        if src == 0 or readers or src in outputs:
            what = "the network input" if src == 0 else f"'{g.nodes[src]['scope']}'"
            also = f", which {', '.join(readers[:3])} also read" if readers else \
                ", which the caller owns" if src == 0 else ", which is an output"
            raise error("inplace", f"in-place {data['op']} '{data['scope']}' would overwrite {what}{also}",
                        data["loc"], "drop 'inplace: true' here", data["via"])


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`auto` = CUDA when available, else CPU; asking for CUDA without it is a clean error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise error("usage", f"unknown device '{device}'", None, "use auto, cpu, cuda, cuda:N or meta") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise error("device", "CUDA was asked for, but no CUDA device is available", None,
                        "use --device cpu (or auto); check the driver with nvidia-smi")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise error("device", f"there is no {dev}: {torch.cuda.device_count()} CUDA device(s)", None)
    return dev


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}


def resolve_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise error("usage", f"unknown dtype '{dtype}'", None, did_you_mean(str(dtype), DTYPES) or
                    "use " + ", ".join(DTYPES))
    return DTYPES[dtype]


def build_meta(network) -> NetcModule:
    """The module with every parameter on the `meta` device: no memory allocated."""
    check_names(network)
    check_inplace(network)
    shapes = network.graph.nodes
    with torch.device("meta"):
        leaves = {d["scope"]: make_leaf(d["op"], d["attrs"], [shapes[i]["shape"] for i in d["inputs"]])
                  for _, d in network.nodes()}
    return NetcModule(leaves, program_of(network))


def build_module(network, device="cpu", dtype=None, init: bool = True) -> NetcModule:
    """Build `network` (a `netc.api.Network`) as a torch module on `device` with `dtype`.

    `device="meta"` allocates nothing. Otherwise parameters are allocated on the device and
    initialised by the spec's `init:` scheme (`netc.spec.init`); `init=False` gives each
    module PyTorch's own default initialisation instead.
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    module = build_meta(network)
    if dev.type != "meta":
        from netc.backends.torch.init import initialise

        module.to_empty(device=dev)
        initialise(module, network, scheme=network.spec.init if init else None)
    if dt != torch.float32:
        module.to(dt)
    return module


# --- shape confirmation ----------------------------------------------------------------------

class ShapeMismatch(AssertionError):
    """The torch module disagrees with the IR's inferred shapes: a bug in netc, not in the spec."""


def torch_shapes(module: NetcModule, input_shape, batch: int = 2) -> dict[str, tuple[int, ...]]:
    """Output shape (batch dropped) of every op, from a forward of the whole training graph on
    the meta device in eval mode (aux heads included)."""
    shapes: dict[str, tuple[int, ...]] = {}

    class Recorder(fx.Interpreter):
        def call_module(self, target, args, kwargs):
            out = super().call_module(target, args, kwargs)
            shapes[target] = tuple(out.shape[1:])
            return out

    meta = module if _device_of(module).type == "meta" else copy.deepcopy(module).to("meta")
    was_training = meta.training
    meta.eval()
    try:
        with torch.no_grad():
            Recorder(meta).run(torch.empty(batch, *input_shape, device="meta", dtype=_dtype_of(module)))
    finally:
        meta.train(was_training)
    return shapes


def confirm_shapes(module: NetcModule, network) -> int:
    """Compare every op's shape in a meta-device forward with the IR; raise ShapeMismatch."""
    got = torch_shapes(module, network.input_shape)
    bad = [f"{d['scope']}: IR {fmt_shape(d['shape'])}, torch {fmt_shape(got.get(d['scope']))}"
           for _, d in network.nodes() if got.get(d["scope"]) != tuple(d["shape"])]
    if bad:
        raise ShapeMismatch(f"{len(bad)} op(s) disagree with the inferred shapes: " + "; ".join(bad[:5]))
    return len(got)


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _dtype_of(module: nn.Module) -> torch.dtype:
    p = next((p for p in module.parameters() if p.is_floating_point()), None)
    return p.dtype if p is not None else torch.float32
