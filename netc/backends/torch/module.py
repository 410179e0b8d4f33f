"""IR -> `torch.nn.Module`: one module per scope of the spec, each with a generated forward.

The module hierarchy mirrors the IR scopes: node `layer1.0.conv1` is the submodule
`layer1.0.conv1`, so state_dict keys are the spec's names (torchvision's, where the spec
follows it), registered in the spec's order. Every block (`layer1`, `layer1.0`, a named seq or
branch) is a module that computes that block from the values entering it (`blocks.py`): a
torch.fx GraphModule whose forward is straight-line Python generated once
(`out = self.conv1(x)` ...), so a call runs exactly the module calls a hand-written model makes,
and `m.layer4(x)`, hooks on blocks, per-block checkpointing and FSDP sharding, `torch.compile`,
`torch.jit.trace`, DistributedDataParallel and fx passes all work. The root also keeps the flat
`Program` of every op (`program.py`), which shape confirmation and `--optimize` use.

Each leaf is constructed only from its op's `module()` facet (the same `ModuleSpec` the code
generator emits), on the `meta` device first: nothing is allocated until the module is moved to
its device and initialised (`netc.spec.init`).

Training-only side heads (`side: …, aux: true`): the training forward computes every output and
returns them as a namedtuple in the spec's `outputs` order (main first), the eval forward
computes only the main path and returns its tensor, like torchvision's GoogLeNet/Inception3.
The switch is one `self.training` test per call. Pickling stores the modules and the plans
(not fx code), and deepcopy/copy rebuild the same classes.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import fx, nn

from netc.backends.torch.blocks import Block, assemble
from netc.backends.torch.program import Program, output_order, outputs_type, program_of, resolve  # noqa: F401
from netc.backends.torch.size_guard import follow_size
from netc.errors import did_you_mean, error
from netc.ir.blocks import Plan, plan_blocks
from netc.ops import REGISTRY, fmt_shape
from netc.names import check_module_name


class NetcModule(Block):
    """A network compiled by netc: the root block (see the module doc), which also keeps the flat
    `Program` of the whole network for shape confirmation and the inference rewrites."""

    _netc_base = True

    def __init__(self, children: dict[str, nn.Module], plan: Plan, program: Program, class_name: str | None = None):
        object.__setattr__(self, "_netc_program", program)
        super().__init__(children, plan, class_name or _class_name(program.name))
        if program.follow_size is not None:  # another input size: follow it, or refuse before any op runs
            self.register_forward_pre_hook(program.follow_size)

    @property
    def program(self) -> Program:
        return self._netc_program

    def _netc_init_args(self) -> tuple:
        return (self._netc_plan, self._netc_program, type(self).__name__)

    def leaves(self) -> dict[str, nn.Module | nn.Parameter]:
        """The op modules by scope, in the IR's order (the parameter, for an op owning one on its block)."""
        return {s.scope: self.get_parameter(s.scope) if s.apply else self.get_submodule(s.scope)
                for s in self._netc_program.steps}

    def _netc_flat(self) -> fx.GraphModule:
        """The whole training forward as one graph over the leaves (the hierarchy inlined)."""
        return fx.GraphModule(self, self._netc_program.graph(training=True), type(self).__name__)


def _class_name(name: str) -> str:
    return name if name.isidentifier() else "Network"


def make_leaf(op: str, attrs, in_shapes) -> nn.Module | nn.Parameter:
    """Construct one op's module from its `module()` facet (the only construction path), or the
    parameter an op owns on its block (its `owned()` facet; filled by `initialise`)."""
    owned = REGISTRY[op].owned(attrs, in_shapes)
    if owned is not None:
        return nn.Parameter(torch.empty(owned.shape))
    spec = REGISTRY[op].module(attrs, in_shapes)
    return resolve(spec.cls)(*spec.args, **spec.kwargs)



def check_names(network) -> None:
    """Every scope segment must be usable as a submodule name (not shadowing a module's own)."""
    leaves = {d.scope for _, d in network.nodes()}
    for _, data in network.nodes():
        parts = data.scope.split(".")
        for depth, part in enumerate(parts):
            prefix = ".".join(parts[: depth + 1])
            try:
                check_module_name(part)  # the one rule for names (netc.names), asked again here
            except ValueError as exc:  # a scope the frontend made without asking: a bug, said plainly
                raise error("name", f"'{prefix}' cannot be a module name: {exc}", data.loc,
                            "rename the layer (name: …)", data.via) from None
            if depth < len(parts) - 1 and prefix in leaves:
                raise error("name", f"'{prefix}' is both an op and a block containing '{data.scope}'",
                            data.loc, "rename one of them", data.via)


def check_inplace(network) -> None:
    """An in-place op (`relu: {inplace: true}`) may only overwrite a value nothing else reads."""
    g = network.graph
    outputs = {nid for _, nid, _ in network.outputs}
    for nid, data in network.nodes():
        if not getattr(data.attrs, "inplace", False):
            continue
        src = data.inputs[0]
        readers = [g.node(r).scope for r in g.successors(src) if r != nid]
        if src == 0 or readers or src in outputs:
            what = "the network input" if src == 0 else f"'{g.node(src).scope}'"
            also = f", which {', '.join(readers[:3])} also read" if readers else \
                ", which the caller owns" if src == 0 else ", which is an output"
            raise error("inplace", f"in-place {data.op} '{data.scope}' would overwrite {what}{also}",
                        data.loc, "drop 'inplace: true' here", data.via)


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
    outputs = output_order(network)
    root = plan_blocks(network, outputs)
    shapes = network.graph.node_table()
    with torch.device("meta"):
        leaves = {nid: make_leaf(d.op, d.attrs, [shapes[i].shape for i in d.inputs])
                  for nid, d in network.nodes()}
    program = replace(program_of(network, outputs), follow_size=follow_size(network, make_leaf))
    return NetcModule(assemble(root, leaves), root.plan, program)


def build_module(network, device="cpu", dtype=None, init: bool = True, meta: NetcModule | None = None) -> NetcModule:
    """Build `network` (a `netc.api.Network`) as a torch module on `device` with `dtype`.

    `device="meta"` allocates nothing. Otherwise parameters are allocated on the device and
    initialised by the spec's `init:` scheme (`netc.spec.init`); `init=False` gives each
    module PyTorch's own default initialisation instead. `meta`: the network's module from
    `build_meta`, when the caller has one already (it is materialised in place).
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    module = meta if meta is not None else build_meta(network)
    if dev.type != "meta":
        from netc.backends.torch.init import initialise

        module.to_empty(device=dev)
        initialise(module, network, scheme=None if init else "default")
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
        def run_node(self, n):
            out = super().run_node(n)
            if "netc_target" in n.meta:  # an op (a module call, or an owned parameter applied)
                shapes[n.meta["netc_target"]] = tuple(out.shape[1:])
            return out

    meta = module if _device_of(module).type == "meta" else copy.deepcopy(module).to("meta")
    was_training = meta.training
    meta.eval()
    try:
        with torch.no_grad():
            Recorder(meta._netc_flat()).run(torch.empty(batch, *input_shape, device="meta", dtype=_dtype_of(module)))
    finally:
        meta.train(was_training)
    return shapes


def confirm_shapes(module: NetcModule, network) -> int:
    """Compare every op's shape in a meta-device forward with the IR; raise ShapeMismatch."""
    got = torch_shapes(module, network.input_shape)
    bad = [f"{d.scope}: IR {fmt_shape(d.shape)}, torch {fmt_shape(got.get(d.scope))}"
           for _, d in network.nodes() if got.get(d.scope) != tuple(d.shape)]
    if bad:
        raise ShapeMismatch(f"{len(bad)} op(s) disagree with the inferred shapes: " + "; ".join(bad[:5]))
    return len(got)


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _dtype_of(module: nn.Module) -> torch.dtype:
    p = next((p for p in module.parameters() if p.is_floating_point()), None)
    return p.dtype if p is not None else torch.float32
