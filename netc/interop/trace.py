"""nn.Module -> a list of netc ops in execution order, by torch.fx symbolic tracing.

Every module netc has an op for is a leaf of the trace; functions between them (`out += x`,
`torch.cat`, `torch.flatten`, `x * 0.17`, `F.relu`) map to netc ops too. An op's `scope` is
its module path (functions get a generated name inside their module), so the spec built from
these ops has the source's state_dict keys. What cannot be mapped is reported with its
module path and the reason; a forward that branches on tensor values is located in the
source file.
"""
from __future__ import annotations

import operator
import traceback
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx

from netc.errors import Diagnostic, Loc, NetcError, error
from netc.interop import mapping
from netc.interop.mapping import Unmappable
from netc.spec.names import MODULE_NAME


@dataclass
class TracedOp:
    op: str
    attrs: dict
    scope: str              # module path (state_dict prefix), or a generated name inside `parents[-1]`
    parents: tuple          # enclosing module paths, outermost first
    inputs: list            # fx nodes
    node: fx.Node
    module_type: str = ""   # class name of the module it came from ('' for functions)
    named: bool = True      # scope is a real module path (not generated)
    extra: dict = field(default_factory=dict)


class _Value:
    """An intermediate value inside one fx node that maps to several netc ops."""

    def __init__(self, name: str):
        self.name = name


class _Tracer(fx.Tracer):
    def __init__(self):
        super().__init__(autowrap_functions=tuple(_wrapped()))

    def is_leaf_module(self, m, qualname):
        return mapping.is_leaf(m)


def _wrapped():
    """The helper functions of `mapping.WRAPPED` whose libraries are loaded (so the model uses them)."""
    import sys

    for qualified in mapping.WRAPPED:
        module, _, name = qualified.rpartition(".")
        fn = getattr(sys.modules.get(module), name, None)
        if fn is not None:
            yield fn


def _wrapped_op(f):
    name = f"{getattr(f, '__module__', '')}.{getattr(f, '__name__', '')}"
    return mapping.WRAPPED.get(name)


def trace(module, where: str, several: bool = False) -> tuple[list[TracedOp], fx.Node, fx.Node]:
    """The ops of `module`'s forward, the fx node it returns (with `several`, a tuple of nodes
    may be returned: a training forward's outputs) and its input placeholder."""
    tracer = _Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:
        raise _located(exc, module, where) from None
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise error("import", f"the forward of {where} takes {len(inputs)} inputs; netc networks take one image batch")
    ops, returned = _ops(graph, module, where)
    if not isinstance(returned, fx.Node) and not (several and isinstance(returned, tuple) and len(returned) > 1
                                                  and all(isinstance(r, fx.Node) for r in returned)):
        raise error("import", f"the forward of {where} returns {type(returned).__name__}, not one tensor", None,
                    "netc imports single-output forwards (put the model in eval mode)")
    return ops, returned, inputs[0]


def _located(exc, module, where) -> NetcError:
    """The trace failure at the innermost frame of the source model's own code."""
    by_id = {id(m): name or "(root)" for name, m in module.named_modules()}
    frames = [f for f in traceback.extract_tb(exc.__traceback__)]
    tb, found = exc.__traceback__, None
    while tb is not None:
        self_obj = tb.tb_frame.f_locals.get("self")
        if id(self_obj) in by_id and "torch/" not in tb.tb_frame.f_code.co_filename:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno, by_id[id(self_obj)])
        tb = tb.tb_next
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "control flow" in text or "bool" in text.lower():
        why = ("its forward branches on a tensor value (a data-dependent `if`/`while`): a netc spec is one "
               "static graph")
        hint = "make the condition a constructor argument, or import the module after removing the branch"
    else:
        why, hint = f"tracing failed: {text}", "netc imports forwards torch.fx can trace symbolically"
    if found:
        file, line, path = found
        return error("import", f"cannot import '{path}' of {where}: {why}", Loc(file, line, 1), hint)
    del frames
    return error("import", f"cannot import {where}: {why}", None, hint)


def _const(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _parents(node) -> tuple:
    stack = node.meta.get("nn_module_stack") or {}
    return tuple(path for path, _ in stack.values() if path)


def _function_op(node, chunks: dict):
    """(op, attrs, tensor inputs) of a call_function/call_method node; None to skip it; an fx
    node for a call that returns its input unchanged (`.contiguous()`). `chunks` collects the
    `chunk` calls whose parts (`getitem`) become netc `chunk` ops."""
    f, args, kw = node.target, node.args, node.kwargs
    tensors = [a for a in args if isinstance(a, fx.Node)]
    if node.op == "call_method":
        if f in ("size", "dim"):
            return None
        if f == "contiguous":
            return args[0]
        if f == "flatten" and not _flattens(f, args, kw):
            return (*mapping.flatten_axes(*_flatten_range(args, kw)), [args[0]])
        if f in ("view", "reshape", "flatten") and _flattens(f, args, kw):
            return "flatten", {}, [args[0]]
        if f in ("relu", "relu_"):
            return "relu", {}, [args[0]]
        if f == "permute":
            dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            return "permute", mapping.permute_dims(kw.get("dims", dims)), [args[0]]
        if f == "chunk":
            chunks[node] = (args[0], *_chunk_args(args, kw))
            return None
        if f == "mean" and _means_spatial(args, kw):
            return ("gap", {}, [args[0]]) if kw.get("keepdim") else ([("gap", {}), ("flatten", {})], None, [args[0]])
        raise Unmappable(f"tensor method .{f}()")
    if f is operator.getitem and args[0] in chunks:
        source, parts, dim = chunks[args[0]]
        return "chunk", {"parts": parts, "index": int(args[1]), **({"dim": dim} if dim else {})}, [source]
    if f is getattr or f is operator.getitem and not isinstance(args[0], fx.Node) or _is_tuple_class(f):
        return None  # a namedtuple of outputs is unpacked at the output
    if f in mapping.CHUNK:
        chunks[node] = (args[0], *_chunk_args(args, kw))
        return None
    wrapped = _wrapped_op(f)
    if wrapped is not None:
        return (*wrapped(*args, **kw), tensors[:1])
    if f in mapping.ADD and len(tensors) == 2 and len(args) == 2:
        return "add", {}, tensors
    if f in mapping.MUL and len(tensors) == 1 and any(_const(a) for a in args):
        return "scale", {"factor": float(next(a for a in args if _const(a)))}, tensors
    if f in mapping.MUL and len(tensors) == 2 and len(args) == 2:
        return "mul", {}, tensors
    if f in mapping.RELU:
        return "relu", {"inplace": True} if kw.get("inplace") else {}, tensors[:1]
    if f in mapping.ACTIVATIONS:
        return mapping.ACTIVATIONS[f], {"inplace": True} if kw.get("inplace") else {}, tensors[:1]
    if f in mapping.PERMUTE:
        return "permute", mapping.permute_dims(args[1] if len(args) > 1 else kw["dims"]), tensors[:1]
    if f in mapping.CAT:
        dim = kw.get("dim", args[1] if len(args) > 1 else 0)
        if dim != 1:
            raise Unmappable(f"torch.cat along dim {dim} (netc concatenates channels, dim 1)")
        inputs = list(args[0])
        return ("cat", {}, inputs) if len(inputs) > 1 else ("identity", {}, inputs)
    if f in mapping.FLATTEN:
        return (*mapping.flatten_axes(*_flatten_range(args, kw)), tensors[:1])
    if f in ADAPTIVE:
        cls, op = ADAPTIVE[f]
        return (*mapping.adaptive(cls((args[1:] or [kw.get("output_size")])[0]), op), tensors[:1])
    pool = POOLS.get(getattr(f, "__name__", ""))
    if pool is not None:
        cls, names = pool
        bound = dict(zip(names, args[1:]), **kw)
        return (*mapping.map_module(cls(**bound)), tensors[:1])
    if f is F.dropout:
        return "dropout", {"p": float(kw.get("p", args[1] if len(args) > 1 else 0.5))}, tensors[:1]
    name = getattr(f, "__name__", str(f))
    raise Unmappable(f"function {getattr(f, '__module__', '') or ''}.{name}".replace("None.", ""))


ADAPTIVE = {F.adaptive_avg_pool2d: (torch.nn.AdaptiveAvgPool2d, "adaptive_avgpool"),
            F.adaptive_max_pool2d: (torch.nn.AdaptiveMaxPool2d, "adaptive_maxpool")}


def _is_tuple_class(f) -> bool:
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


def _chunk_args(args, kw) -> tuple[int, int]:
    """(parts, batchless dim) of `x.chunk(parts, dim)` / `torch.chunk(x, parts, dim)`."""
    parts = int(args[1] if len(args) > 1 else kw["chunks"])
    dim = int(args[2] if len(args) > 2 else kw.get("dim", 0))
    if dim == 0:
        raise Unmappable("chunk along the batch axis")
    return parts, dim - 1 if dim > 0 else dim


def _layer_scale(node, module):
    """(layer_scale attrs, the scaled tensor) of `param * x` with `param` read by get_attr; else None."""
    if node.op != "call_function" or node.target not in mapping.MUL or len(node.args) != 2 or node.kwargs:
        return None
    a, b = node.args
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)) or (a.op == "get_attr") == (b.op == "get_attr"):
        return None
    param, x = (a, b) if a.op == "get_attr" else (b, a)
    if len(param.users) != 1:
        return None
    try:
        value = module.get_parameter(param.target)
    except AttributeError:
        return None  # a buffer: no learnable scale
    attrs = {}
    flat = value.detach().flatten()
    if flat.numel() and bool((flat == flat[0]).all()):
        attrs["init"] = float(f"{float(flat[0]):.7g}")  # the float32 value as written (1e-06)
    if not (value.dim() == 3 and value.shape[1:] == (1, 1)):
        attrs["shape"] = list(value.shape)
    return attrs, x


def _flattens(f, args, kw) -> bool:
    rest = list(args[1:])
    if f == "flatten":
        return (rest or [kw.get("start_dim", 0)])[0] == 1
    if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
        rest = list(rest[0])
    return len(rest) == 2 and rest[1] == -1 and isinstance(rest[0], fx.Node)  # x.view(x.size(0), -1)


def _means_spatial(args, kw) -> bool:
    dims = kw.get("dim", args[1] if len(args) > 1 else None)
    return tuple(dims or ()) in ((2, 3), (-2, -1), [2, 3])


def _ops(graph: fx.Graph, module, where: str):
    modules = dict(module.named_modules())
    ops, problems, counter, returned, called, taken = [], [], {}, None, set(), set()
    alias, chunks, scaled = {}, {}, set()
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            returned = node.args[0]
            if isinstance(returned, fx.Node) and _is_tuple_class(returned.target):  # NamedTuple(x, aux2, aux1)
                returned = returned.target(*returned.args, **returned.kwargs)
            if isinstance(returned, tuple):  # a training forward's outputs (a namedtuple keeps its fields)
                values = [alias.get(r, r) for r in returned]
                returned = type(returned)(*values) if hasattr(returned, "_fields") else tuple(values)
            else:
                returned = alias.get(returned, returned)
            continue
        if node.op == "get_attr":
            continue  # read by a layer scale (below), or reported after the loop
        node.args = fx.node.map_arg(node.args, lambda a: alias.get(a, a))  # past `.contiguous()`
        node.kwargs = fx.node.map_arg(node.kwargs, lambda a: alias.get(a, a))
        scale = _layer_scale(node, module)
        if scale is not None:
            (attrs, x), param = scale, node.args[0] if node.args[0].op == "get_attr" else node.args[1]
            scaled.add(param)
            ops.append(TracedOp("layer_scale", attrs, param.target, _parents(node), [x], node))
            continue
        try:
            if node.op == "call_module":
                m = modules[node.target]
                parts = [mapping.map_module(m), *mapping.trailing_ops(m)]
                parents = tuple(p for p in _parents(node) if p != node.target)
                inputs = [a for a in node.args if isinstance(a, fx.Node)]
                if node.target not in called:
                    called.add(node.target)
                    op, attrs = parts[0]
                    value = node if len(parts) == 1 else _Value(node.name + ":0")
                    ops.append(TracedOp(op, attrs, node.target, parents, inputs, value, type(m).__name__))
                    parts, inputs = parts[1:], [value]
                elif any(True for _ in m.parameters()) or any(True for _ in m.buffers()):
                    raise Unmappable("a module with weights called twice (shared weights)")
                found = (parts, None, inputs)  # what follows the weights (or a reused parameter-free module)
            else:
                found = _function_op(node, chunks)
        except Unmappable as why:
            path = node.target if node.op == "call_module" else (".".join(_parents(node)[-1:]) or "(root)")
            problems.append(Diagnostic("import", f"'{path}' of {where}: {why} has no netc op", None,
                                       "netc maps conv, norms (batch, layer, group), pooling, linear, "
                                       "activations, add, mul, cat, scale, layer scale, permute, flatten, chunk, "
                                       "channel shuffle, dropout, stochastic depth and identity"))
            continue
        if found is None:
            continue
        if isinstance(found, fx.Node):
            alias[node] = found
            continue
        op, attrs, inputs = found
        parts = op if isinstance(op, list) else [(op, attrs)]
        parents = _parents(node)
        if node.op == "call_module":
            parents = tuple(p for p in parents if p != node.target)
        base = parents[-1] + "." if parents else ""
        for k_part, (part, part_attrs) in enumerate(parts):
            k = counter.get(base + part, 0)
            while (scope := base + (part if k == 0 else f"{part}_{k}")) in modules or scope in taken:
                k += 1
            counter[base + part] = k + 1
            taken.add(scope)
            value = node if k_part == len(parts) - 1 else _Value(f"{node.name}:{k_part + 1}")
            ops.append(TracedOp(part, part_attrs, scope, parents, inputs, value, "", False))
            inputs = [value]
    for node in graph.nodes:
        if node.op == "get_attr" and node not in scaled:
            problems.append(Diagnostic("import", f"'{node.target}' of {where}: the forward reads a parameter or "
                                       "buffer directly (netc ops own their weights; a parameter multiplying a "
                                       "tensor is a layer scale)"))
    bad = sorted({part for op in ops for part in op.scope.split(".") if op.named and not MODULE_NAME.fullmatch(part)})
    for part in bad[:10]:
        problems.append(Diagnostic("import", f"module name '{part}' of {where} cannot be a netc name (ASCII "
                                   "letters, digits, '_' and '-'), so the spec could not reproduce its state_dict keys",
                                   None, "rename the submodule in the source (or load its state_dict with "
                                   "renamed keys)"))
    if problems:
        raise NetcError(list({d.format(): d for d in problems}.values()))  # one per module and reason
    return ops, returned
