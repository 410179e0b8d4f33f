"""torch function and tensor-method calls (an fx `call_function` / `call_method` node) -> netc
ops: `torch.cat`, `x * 0.17`, `F.relu`, `x.sigmoid()`, channel splits and slices (`x.split`,
`x[:, a:b]`, `x.narrow`) and the functional pools. What has no op raises Unmappable with the
reason."""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx

from netc.interop import layout, mapping
from netc.interop.layout import batchless as _batchless
from netc.interop.concrete import InputSize
from netc.interop.mapping import Unmappable
from netc.ops.pad import mapped_padding
from netc.ops.resample import mapped_interpolation
from netc.ops.shape import batchless_dims
from netc.ops.tensor import flatten_axes


def _wrapped_op(f):
    name = f"{getattr(f, '__module__', '')}.{getattr(f, '__name__', '')}"
    return mapping.WRAPPED.get(name)


def _const(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_NOT_MINE = object()  # a rule's answer for a call another rule maps (None means "skip the call")


def function_op(node, chunks: dict):
    """(op, attrs, tensor inputs) of a call_function/call_method node; None to skip it; an fx
    node for a call that returns its input unchanged (`.contiguous()`). `chunks` collects the
    `chunk` calls whose parts (`getitem`) become netc `chunk` ops."""
    f, args, kw = node.target, node.args, node.kwargs
    if node.op == "call_method":
        if f not in BINARY_METHODS:
            return _method_op(node, f, args, kw, chunks)
        f = BINARY_METHODS[f]
    tensors = [a for a in args if isinstance(a, fx.Node)]
    for rule in (_part_op, _arithmetic_op, _functional_op):
        out = rule(node, f, args, kw, chunks, tensors)
        if out is not _NOT_MINE:
            return out
    name = getattr(f, "__name__", str(f))
    raise Unmappable(f"function {getattr(f, '__module__', '') or ''}.{name}".replace("None.", ""))


def _method_op(node, f: str, args, kw, chunks: dict):
    """A tensor method other than the binary ones (`x.add(y)` maps as `x + y`)."""
    if f in ("size", "dim"):
        return None
    if f == "contiguous":
        return args[0]
    if f == "expand_as" and len(args) == 2 and not kw:
        return "expand_as", {}, list(args)
    if f == "flatten" and not _flattens(f, args, kw):
        return (*flatten_axes(*_flatten_range(args, kw)), [args[0]])
    if f in ("view", "reshape", "flatten") and _flattens(f, args, kw):
        return "flatten", {}, [args[0]]
    if f in mapping.METHOD_ACTIVATIONS:
        return mapping.METHOD_ACTIVATIONS[f], {}, [args[0]]
    if f == "square" and len(args) == 1 and not kw:
        return "pow", {"exponent": 2.0}, [args[0]]
    if f in ("narrow", "split"):
        return _narrow_or_split(node, f, args, kw, chunks)
    if f == "permute":
        dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
        return "permute", batchless_dims(kw.get("dims", dims)), [args[0]]
    if f == "chunk":
        chunks[node] = (args[0], *_chunk_args(args, kw))
        return None
    if f == "mean" and _means_spatial(args, kw):
        return ("gap", {}, [args[0]]) if kw.get("keepdim") else ([("gap", {}), ("flatten", {})], None, [args[0]])
    found = layout.layout_op(node, f, args, kw)
    if found is None:
        raise Unmappable(f"tensor method .{f}()")
    return found


def _part_op(node, f, args, kw, chunks: dict, tensors):
    """Indexing, attribute reads, and the channel splits whose parts become `chunk`/`slice` ops."""
    if f is operator.getitem and args[0] in chunks:
        return _part(chunks[args[0]], _static(args[1], "indexing of split parts"))
    if f is getattr or f is operator.getitem and not isinstance(args[0], fx.Node) or is_tuple_class(f):
        return None  # a namedtuple of outputs is unpacked at the output
    if f is operator.getitem:
        return _indexed(args[0], args[1])
    if f in mapping.CHUNK:
        chunks[node] = (args[0], *_chunk_args(args, kw))
        return None
    if f in mapping.SPLIT or f in mapping.NARROW:
        return _narrow_or_split(node, "split" if f in mapping.SPLIT else "narrow", args, kw, chunks)
    return _NOT_MINE


def _arithmetic_op(node, f, args, kw, chunks, tensors):
    """Sums and products of tensors, scaling by a constant, and the wrapped functions (timm's
    activations written as functions)."""
    wrapped = _wrapped_op(f)
    if wrapped is not None:
        return (*wrapped(*args, **kw), tensors[:1])
    binary = len(tensors) == 2 and len(args) == 2 and not kw
    if f in mapping.ADD and binary:
        return "add", {}, tensors
    if f in mapping.ADD and len(tensors) == 1 and len(args) == 2 and not kw and any(
            _const(a) and a == 0 for a in args):
        return tensors[0]  # a sum started at 0 (MobileOne's branches): the tensor itself
    if f in mapping.MUL and len(tensors) == 1 and any(_const(a) for a in args):
        return "scale", {"factor": float(next(a for a in args if _const(a)))}, tensors
    if f in mapping.MUL and binary:
        return "mul", {}, tensors
    return _difference_or_power(f, args, kw, tensors, binary)


def _difference_or_power(f, args, kw, tensors, binary):
    """`x - y`, `x / y`, `x / 2` (a scale by 0.5, as RepViT's averaged heads) and `x ** 2`."""
    if f in mapping.SUB and binary:
        return "sub", {}, tensors
    if f in mapping.DIV and binary:
        return "div", {}, tensors
    by_constant = len(args) == 2 and len(tensors) == 1 and args[0] is tensors[0] and _const(args[1]) and not kw
    if f in mapping.DIV and by_constant and args[1]:
        return "scale", {"factor": 1.0 / args[1]}, tensors
    if f in mapping.POW and by_constant:
        return "pow", {"exponent": float(args[1])}, tensors
    if f is torch.square and len(args) == 1 and len(tensors) == 1 and not kw:  # MetaFormer's SquaredReLU
        return "pow", {"exponent": 2.0}, tensors
    return _NOT_MINE


def _functional_op(node, f, args, kw, chunks, tensors):
    """torch.nn.functional calls and torch functions that have a module or an op of their own."""
    if f in mapping.FUNCTIONAL_MODULES:
        return (*_as_module(f, mapping.FUNCTIONAL_MODULES[f], args[1:], kw), tensors[:1])
    if f in mapping.PERMUTE:
        return "permute", batchless_dims(args[1] if len(args) > 1 else kw["dims"]), tensors[:1]
    if f in mapping.CAT:
        return _cat(args, kw)
    if f in mapping.FLATTEN:
        return (*flatten_axes(*_flatten_range(args, kw)), tensors[:1])
    if f in ADAPTIVE:
        return (*mapping.map_module(ADAPTIVE[f]((args[1:] or [kw.get("output_size")])[0])), tensors[:1])
    pool = POOLS.get(getattr(f, "__name__", ""))
    if pool is not None:
        cls, names = pool
        return (*mapping.map_module(cls(**dict(zip(names, args[1:]), **kw))), tensors[:1])
    if f is F.pad:
        return (*mapped_padding(**dict(zip(("pad", "mode", "value"), args[1:]), **kw)), tensors[:1])
    if f is F.interpolate:
        bound = dict(zip(("size", "scale_factor", "mode", "align_corners"), args[1:]), **kw)
        op, attrs = mapped_interpolation(**bound)
        size = bound.get("size")
        if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, InputSize) for v in size):
            attrs["size"] = [v.expr for v in size]  # a function of the input's size, whatever it is
        return op, attrs, tensors[:1]
    if f in layout.FUNCTIONS:
        return layout.layout_op(node, layout.FUNCTIONS[f], args, kw)
    if f is F.dropout:
        return "dropout", {"p": float(kw.get("p", args[1] if len(args) > 1 else 0.5))}, tensors[:1]
    return _NOT_MINE


def _cat(args, kw):
    dim = _batchless(_static(kw.get("dim", args[1] if len(args) > 1 else 0), "cat"), "cat")
    inputs = list(args[0])
    return ("cat", {"dim": dim} if dim else {}, inputs) if len(inputs) > 1 else ("identity", {}, inputs)


# tensor methods x.add(y) / x.mul_(y) map as x + y / x * y
BINARY_METHODS = {"add": operator.add, "add_": operator.iadd, "mul": operator.mul, "mul_": operator.imul,
                  "sub": operator.sub, "sub_": operator.isub, "div": operator.truediv, "div_": operator.itruediv,
                  "pow": operator.pow, "pow_": operator.ipow}
ADAPTIVE = {F.adaptive_avg_pool2d: torch.nn.AdaptiveAvgPool2d, F.adaptive_max_pool2d: torch.nn.AdaptiveMaxPool2d}


def _as_module(f, cls, args, kw):
    """(op, attrs) of functional `f` called with `args`/`kw`, as its module class `cls` built with them."""
    try:
        return mapping.map_module(cls(*args, **kw))
    except Exception:  # an argument the module refuses or does not take, or one computed from a tensor
        shown = [*map(repr, args), *(f"{k}={v!r}" for k, v in kw.items())]
        raise Unmappable(f"{getattr(f, '__name__', f)}({', '.join(['x', *shown])[:200]})") from None


def is_tuple_class(f) -> bool:
    return isinstance(f, type) and issubclass(f, tuple)


# functional pooling: the module with the same arguments (positional order of torch.nn.functional)
POOLS = {
    "avg_pool2d": (torch.nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                        "divisor_override")),
    "_max_pool2d": (torch.nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "max_pool2d": (torch.nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
}


def _flatten_range(args, kw) -> tuple[int, int]:
    rest = list(args[1:])
    return (rest[0] if rest else kw.get("start_dim", 0)), (rest[1] if len(rest) > 1 else kw.get("end_dim", -1))


def _part(split: tuple, index: int):
    """The netc op of part `index` of a recorded chunk (equal parts) or split (sizes)."""
    source, parts, dim = split
    where = {"dim": dim} if dim else {}
    if isinstance(parts, int):
        return "chunk", {"parts": parts, "index": index, **where}, [source]
    sizes = parts[1]
    if isinstance(sizes, int):  # x.split(n): parts of n entries; from the end where index < 0 (the axis
        start, end = index * sizes, (index + 1) * sizes  # is a multiple of n, or the spec will not compile)
    else:
        index = index + len(sizes) if index < 0 else index
        start, end = sum(sizes[:index]), sum(sizes[:index + 1])
    return "slice", {**({"start": start} if start else {}), **({"end": end} if end else {}), **where}, [source]


def _narrow_or_split(node, f: str, args, kw, chunks: dict):
    """`x.narrow(dim, start, length)` -> a slice; `x.split(size or sizes, dim)` is recorded, its
    parts (`getitem`) become slices."""
    bound = dict(zip(("dim", "start", "length") if f == "narrow" else ("split_size_or_sections", "dim"), args[1:]),
                 **kw)
    if f == "split" and "split_size" in bound:
        bound["split_size_or_sections"] = bound.pop("split_size")
    dim = _batchless(_static(bound.get("dim", 0), f), f)
    if f == "narrow":
        start, length = _static(bound["start"], "narrow"), _static(bound["length"], "narrow")
        return "slice", {**({"start": start} if start else {}), "end": start + length,
                         **({"dim": dim} if dim else {})}, [args[0]]
    sizes = bound["split_size_or_sections"]
    sizes = [_static(v, f) for v in sizes] if isinstance(sizes, (list, tuple)) else _static(sizes, f)
    chunks[node] = (args[0], ("sizes", sizes), dim)
    return None


def _static(value, f: str) -> int:
    """An integer argument known when tracing; one computed from a tensor (`x.shape[1] // 2`)
    is not in a static spec."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unmappable(f"{f} with an argument computed from the tensor ({value})")
    return value


def _indexed(x, index):
    """`x[:, a:b]` (a range of one batchless axis) -> a slice; `x[:, :]` -> x itself."""
    items = index if isinstance(index, tuple) else (index,)
    if items and items[-1] is Ellipsis:
        items = items[:-1]
    whole = slice(None)
    narrowed = [(k, v) for k, v in enumerate(items) if not (isinstance(v, slice) and v == whole)]
    if not narrowed:
        return x
    k, cut = narrowed[0]
    if len(narrowed) > 1 or k == 0 or not isinstance(cut, slice) or cut.step not in (None, 1) or any(
            v is not None and not isinstance(v, int) for v in (cut.start, cut.stop)):
        raise Unmappable("tensor indexing other than one range of one axis (x[:, a:b])")
    attrs = {**({"start": cut.start} if cut.start else {}), **({"end": cut.stop} if cut.stop is not None else {}),
             **({"dim": k - 1} if k > 1 else {})}
    return "slice", attrs, [x]


def _chunk_args(args, kw) -> tuple[int, int]:
    """(parts, batchless dim) of `x.chunk(parts, dim)` / `torch.chunk(x, parts, dim)`."""
    parts = int(args[1] if len(args) > 1 else kw["chunks"])
    return parts, _batchless(int(args[2] if len(args) > 2 else kw.get("dim", 0)), "chunk")


def _flattens(f, args, kw) -> bool:
    rest = list(args[1:])
    if f == "flatten":
        return (rest or [kw.get("start_dim", 0)])[0] == 1
    if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
        rest = list(rest[0])
    return len(rest) == 2 and rest[1] == -1 and isinstance(rest[0], fx.Node)  # x.view(x.size(0), -1)


def _means_spatial(args, kw) -> bool:
    dims = kw.get("dim", args[1] if len(args) > 1 else None)
    return isinstance(dims, (tuple, list)) and tuple(dims) in ((2, 3), (-2, -1))
