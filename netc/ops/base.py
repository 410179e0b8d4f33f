"""The op registry: each primitive op declares every facet of itself in one place.

An `Op` subclass names its YAML key, its attribute schema (a strict pydantic model), its
arity, and then: shape rule, parameter and buffer counts, MACs, window (for receptive
field), what autograd keeps for its backward (training memory), diagram label and fill, the torch
module that implements it (as a `ModuleSpec`, which both the interpreter and the code
generator consume), its ONNX mapping and hazards, the torch modules, functions and tensor
methods `netc import` maps to it, and its row of the README's op table. Consumers ask the
registry; none keeps a table keyed by op name, so adding an op is adding one class.

Shapes are tuples without the batch dimension: (C, H, W) for feature maps, (F,) for flat
features. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

Shape = tuple[int, ...]


class Attrs(BaseModel):
    """Base for op attribute models: unknown keys are errors and types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True, allow_inf_nan=False)


class NoAttrs(Attrs):
    pass


class ShapeError(Exception):
    """Raised by a shape rule; the shape pass turns it into a located diagnostic."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class ModuleSpec:
    """How to construct the torch module of one op: `cls(*args, **kwargs)`.

    `cls` is a dotted path: `torch.nn.Conv2d`, or `netc.backends.torch.runtime.X` for the few modules torch
    lacks (their source is self-contained so generated code can inline it).
    """

    cls: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """A sliding window for receptive-field arithmetic (per axis: kernel, stride, dilation, and
    the padding before the first input pixel, which shifts where each window starts)."""

    k: tuple[int, int]
    s: tuple[int, int]
    d: tuple[int, int] = (1, 1)
    p: tuple[int, int] = (0, 0)
    even: bool = True  # every window of one size and stride (not torch's adaptive ones that do not divide)


@dataclass(frozen=True)
class Autograd:
    """What one op costs autograd in training mode, as torch's derivative formulas make it
    (observed with `torch.autograd.graph.saved_tensors_hooks`, torch 2.x):

    - `inputs`: indices of the inputs it saves for its backward; `output`: it saves its output;
    - `extra`: further tensors it saves, as (elements, kind) with kind `act` (an activation-sized
      tensor in the activation dtype, per image), `index` (int64 per image: max-pool indices),
      `mask` (a dropout mask per image: the activation dtype on the CPU, one byte on CUDA) or
      `stat` (float32, per batch, not per image: batch-norm mean and inverse std);
    - `alias`: the output is the input's storage (views, in-place ops) — no new memory;
    - `grad_alias`: the backward hands its output gradient on to the inputs as is or as views
      (add, cat, flatten) instead of allocating new gradients.

    Parameters (weights) that an op saves are not listed: they are held anyway."""

    inputs: tuple[int, ...] = ()
    output: bool = False
    extra: tuple[tuple[int, str], ...] = ()
    alias: bool = False
    grad_alias: bool = False


@dataclass(frozen=True)
class OwnedParam:
    """A learnable tensor that an op keeps on its ENCLOSING block under the op's own name, with no
    module of its own (torchvision ConvNeXt's `layer_scale`: state_dict key `features.1.0.layer_scale`).
    Its forward is `fn(param, x)`; `fn` is a dotted path (`operator.mul`); it starts at `init`
    (init schemes leave it alone)."""

    shape: Shape
    init: float
    fn: str


@dataclass(frozen=True)
class Hazard:
    """A case where an op's ONNX mapping is lossy, runtime-dependent or missing (`fatal`: it stops
    the export)."""

    message: str
    hint: str
    fatal: bool = False


class Unmappable(Exception):
    """This torch module or call has no netc op; the message says why (`netc import` reports it)."""


SAVES_INPUT = Autograd(inputs=(0,))
SAVES_NOTHING = Autograd()


class Op:
    name: ClassVar[str]
    summary: ClassVar[str] = ""
    Attrs: ClassVar[type[Attrs]] = NoAttrs
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1
    # ops without parameters whose output does not depend on training mode can be dropped
    # from diagrams' detail; purely informative
    elementwise: ClassVar[bool] = False
    # the ONNX operators it exports as; None: no mapping, which stops an export
    onnx: ClassVar[str | None] = None
    # diagrams: its fill colour, by family, so a reader sees convs, pools and norms at a glance; an
    # elementwise join is drawn as a small circle holding its sign, a merge as `diagram_shape`
    fill: ClassVar[str] = "#ffffff"
    diagram_sign: ClassVar[str | None] = None
    diagram_shape: ClassVar[str | None] = None
    # `netc import`: the torch modules (dotted class names, resolved by the importer: nothing here
    # imports torch) that map to this op, the parameter-free functions that compute what its first
    # module computes with the same arguments, and the tensor methods (`x.relu()`) that are it
    torch_modules: ClassVar[tuple[str, ...]] = ()
    torch_functions: ClassVar[tuple[str, ...]] = ()
    tensor_methods: ClassVar[tuple[str, ...]] = ()
    # the meaning column of the README's op table (its attributes come from `Attrs`); default `summary`
    reference: ClassVar[str] = ""

    def infer(self, a, shapes: list[Shape]) -> Shape:
        return shapes[0]

    def params(self, a, shapes: list[Shape]) -> int:
        return 0

    def buffers(self, a, shapes: list[Shape]) -> int:
        return 0

    def macs(self, a, shapes: list[Shape], out: Shape) -> int:
        """Multiply-accumulates of conv and linear layers (see DESIGN.md, Conventions)."""
        return 0

    def other_flops(self, a, shapes: list[Shape], out: Shape) -> int:
        """Rough FLOPs of everything that is not a MAC (normalisation, pooling, activation)."""
        return 0

    def autograd(self, a, shapes: list[Shape], out: Shape) -> Autograd:
        """What the op saves for its backward in training mode (see `Autograd`); by default its
        input, as conv, linear and average pooling do."""
        return SAVES_INPUT

    def window(self, a) -> Window | None:
        """The op's sliding window, or None for pointwise ops (receptive field unchanged)."""
        return None

    def rf_window(self, a, grid: tuple[int, int], shapes: list[Shape] = ()) -> Window | None:
        """The window for receptive-field arithmetic on inputs of `shapes` whose spatial grid is
        `grid` (H, W; for flat vectors, the grid that was flattened). Global ops span the whole grid."""
        return self.window(a)

    def axis_order(self, a) -> tuple[int, ...] | None:
        """Where a permute takes each output axis from (its `dims`); None for every other op."""
        return None

    def mixed_axes(self, a, shapes: list[Shape]) -> tuple[int, ...]:
        """The (batchless) axes of its input along which each output reads every position without a
        window: statistics (group and instance norm over H and W), a softmax's dim, a linear's or
        layer norm's last axis (the channels of a permuted map, or W of a C×H×W one)."""
        return ()

    def rf_exact(self, a) -> bool:
        """Whether each output position depends on one interval of input positions per axis, as the
        receptive-field arithmetic assumes (not where a pad reflects or wraps, or a crop or
        reshape moves positions; upsampling ops are inexact too, see `upsampling`)."""
        return True

    def upsampling(self, a, shapes: list[Shape]) -> tuple[int, int]:
        """How many output pixels one input pixel becomes along H and W (1, 1 but for upsample and
        the transposed conv): the jump and the feature stride divide by it, before the op's window."""
        return (1, 1)

    def label(self, a) -> str:
        return self.name

    def owned(self, a, shapes: list[Shape]) -> OwnedParam | None:
        """The parameter the op owns on its enclosing block instead of a module (see `OwnedParam`)."""
        return None

    def module(self, a, shapes: list[Shape]) -> ModuleSpec:
        raise NotImplementedError(self.name)

    def onnx_hazard(self, a, in_shape: Shape, out_shape: Shape) -> Hazard | None:
        """Where this use of the op exports lossily or not at all (see `Hazard`); None: it is exact."""
        return None

    def from_module(self, m, torch_cls: str) -> tuple[str, dict]:
        """(op, attrs) of torch module `m`, an instance of `torch_cls` (one of `torch_modules`): by
        default the attributes of the same names, defaults left out. Raises Unmappable with the reason."""
        return self.name, module_attrs(self.Attrs, m)

    def probed(self, m) -> list[tuple[dict, list[Shape]]]:
        """This op's attributes for a leaf module no class maps, each with the (batchless) input shapes
        to tell it by: the importer keeps the first candidate whose module, loaded with `m`'s
        randomised weights, gives `m`'s outputs there (hgnet's LearnableAffineBlock is an `affine`)."""
        return []

    def readings(self, m, torch_cls: str) -> list[tuple]:
        """What a subclass of `torch_cls` whose own forward computes something else may compute
        instead, as (op, attrs) candidates (timm's Conv2dSame: a conv with `p: tf_same`), or (op,
        attrs, batchless input shapes to probe at) where the base class's probes do not fit; the
        importer keeps the first whose module, loaded with `m`'s weights, gives `m`'s outputs."""
        return []


REGISTRY: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    if cls.name in REGISTRY:
        raise ValueError(f"op '{cls.name}' registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def torch_pair(v):
    """A torch size as a spec writes it: (3, 3) -> 3, (1, 7) -> [1, 7]."""
    if isinstance(v, (tuple, list)):
        return int(v[0]) if v[0] == v[1] else [int(v[0]), int(v[1])]
    return int(v)


def drop_defaults(attrs: dict, defaults: dict) -> dict:
    return {k: v for k, v in attrs.items() if k not in defaults or defaults[k] != v}


def module_attrs(attrs: type[Attrs], m) -> dict:
    """The fields of `attrs` read from module `m`'s attributes of the same names (floats as floats),
    those at their defaults left out."""
    found = {}
    for key, f in attrs.model_fields.items():
        if hasattr(m, key):
            v = getattr(m, key)
            found[key] = float(v) if f.annotation is float else v
    return drop_defaults(found, {k: f.default for k, f in attrs.model_fields.items()})


def numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def pair(v) -> tuple[int, int]:
    """`3` -> (3, 3); `[1, 7]` -> (1, 7)."""
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def fmt_pair(v: tuple[int, int]) -> str:
    return f"{v[0]}" if v[0] == v[1] else f"{v[0]}x{v[1]}"


def fmt_shape(shape: Shape | None) -> str:
    if shape is None:
        return "?"
    return "×".join(str(d) for d in shape)


def need_map(op: str, shapes: list[Shape]) -> Shape:
    """The input as (C, H, W), or a shape error naming what went wrong."""
    s = shapes[0]
    if len(s) != 3:
        raise ShapeError(f"{op} expects a C×H×W feature map, got a flat vector of {fmt_shape(s)}",
                         f"{op} must come before 'flatten'")
    return s


def broadcast(op: str, shapes: list[Shape]) -> Shape:
    """The numpy broadcast of batchless shapes (right-aligned; each axis equal or 1), or a shape error."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(-rank, 0):
        sizes = [s[axis] for s in shapes if len(s) >= -axis]
        big = {n for n in sizes if n != 1}
        if len(big) > 1:
            raise ShapeError(f"{op} inputs do not broadcast: axis {rank + axis} has sizes {', '.join(map(str, sizes))}",
                             "shapes broadcast right-aligned, each axis equal or 1 (a C×1×1 gate on a C×H×W "
                             "map); check the channel counts")
        out.append(big.pop() if big else 1)
    return tuple(out)


def axis_index(op: str, axis: int, rank: int, what: str = "axis") -> int:
    """A batchless axis (negative from the end) as 0..rank-1, or a shape error."""
    if not -rank <= axis < rank:
        raise ShapeError(f"{op} {what} {axis} does not exist in a {rank}-d input",
                         "axes are batchless: 0 is the channel (or feature) axis")
    return axis % rank
