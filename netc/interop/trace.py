"""nn.Module -> a list of netc ops in execution order, by torch.fx symbolic tracing.

Every module netc has an op for is a leaf of the trace; functions between them (`out += x`,
`torch.cat`, `torch.flatten`, `x * 0.17`, `F.relu`) map to netc ops too (`calls.py`). An op's `scope` is
its module path (functions get a generated name inside their module), so the spec built from
these ops has the source's state_dict keys. What cannot be mapped is reported with its
module path and the reason; a forward that branches on tensor values is located in the
source file.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field

from torch import fx

from netc.errors import Diagnostic, Loc, NetcError, error
from netc.interop import calls, layout, mapping
from netc.interop.concrete import ConcreteTracing, buffers_kept, example_batch, value_of
from netc.interop.mapping import Unmappable
from netc.names import MODULE_NAME


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


class _Tracer(ConcreteTracing, fx.Tracer):
    def __init__(self, example=None):
        super().__init__(autowrap_functions=tuple(_wrapped()))
        self.example, self.fake = example or (None, None)

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


def trace(module, where: str, several: bool = False, input_shape=None) -> tuple[list[TracedOp], fx.Node, fx.Node]:
    """The ops of `module`'s forward, the fx node it returns (with `several`, a tuple of nodes
    may be returned: a training forward's outputs; or a dict of named outputs) and its input
    placeholder. With `input_shape`
    (C×H×W) the trace runs on an example batch of it: shape reads are numbers (`concrete.py`)."""
    mapping.probe_leaves(module)
    tracer = _Tracer(None if input_shape is None else example_batch(module, input_shape))
    try:
        with buffers_kept(module):
            graph = tracer.trace(module)
    except Exception as exc:
        raise _located(exc, module, where) from None
    _drop_unused(graph, dict(module.named_modules()))
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise error("import", f"the forward of {where} takes {len(inputs)} inputs; netc networks take one image batch")
    ops, returned = _ops(graph, module, where)
    if not isinstance(returned, fx.Node) and not _named_maps(returned) and not (
            several and isinstance(returned, tuple) and len(returned) > 1 and all(isinstance(r, fx.Node) for r in returned)):
        raise error("import", f"the forward of {where} returns {type(returned).__name__}, not one tensor", None,
                    "netc imports forwards that return a tensor or a dict of named tensors (put the model in eval mode)")
    return ops, returned, inputs[0]


def _named_maps(returned) -> bool:
    """A dict of named results (torchvision's segmentation models and feature extractors: an
    OrderedDict `{"out": …, "aux": …}`) or a list of them (timm's `features_only` models), each of
    which becomes a named output of the spec."""
    if isinstance(returned, (list, tuple)):
        return len(returned) > 1 and all(isinstance(v, fx.Node) for v in returned)
    return isinstance(returned, dict) and bool(returned) and all(
        isinstance(k, str) and isinstance(v, fx.Node) for k, v in returned.items())


def _drop_unused(graph: fx.Graph, modules: dict) -> None:
    """Remove computations whose result nothing uses (timm's DLA projects a shortcut that the tree
    below ignores), unless they may write into their input. One reverse pass: a node's inputs come
    before it, so they are visited after its removal."""
    for node in reversed(list(graph.nodes)):
        if node.op in ("placeholder", "output", "get_attr") or node.users or _may_write(node, modules):
            continue
        graph.erase_node(node)


def _may_write(node: fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        return bool(getattr(modules[node.target], "inplace", False))
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.endswith("__")
    return bool(node.kwargs.get("inplace")) or getattr(node.target, "__name__", "").startswith("__i")


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


def _parents(node) -> tuple:
    stack = node.meta.get("nn_module_stack") or {}
    return tuple(path for path, _ in stack.values() if path)


def _owner_op(node) -> str | None:
    """The op a product or sum with a parameter becomes: `layer_scale` (`param * x`, `x.mul(param)`)
    or `layer_bias` (`x + param`)."""
    method = node.target if node.op == "call_method" else None
    if node.op == "call_function" and node.target in mapping.MUL or method in ("mul", "mul_"):
        return "layer_scale"
    if node.op == "call_function" and node.target in mapping.ADD or method in ("add", "add_"):
        return "layer_bias"
    return None


def _owned_param(node, module, viewed: dict):
    """(op, attrs, the tensor it applies to, the get_attr node) of `param * x` or `x + param` with
    `param` a learnable parameter read by get_attr (of any shape that broadcasts onto x: the op's
    `shape`), or a view of one (`viewed`: timm's `gamma.reshape(1, -1, 1, 1)`, a scale only); else None."""
    op = _owner_op(node)
    if op is None or len(node.args) != 2 or node.kwargs:
        return None
    a, b = node.args
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
        return None
    read = [v.op == "get_attr" or v in viewed for v in (a, b)]
    if read[0] == read[1]:
        return None
    used, x = (a, b) if read[0] else (b, a)
    param = viewed.get(used, used)
    if len(used.users) != 1 or len(param.users) != 1:
        return None
    try:
        value = module.get_parameter(param.target)
    except AttributeError:
        return None  # a buffer: no learnable scale
    attrs = {}
    flat = value.detach().flatten()
    if flat.numel() and bool((flat == flat[0]).all()):
        attrs["init"] = float(f"{float(flat[0]):.7g}")  # the float32 value as written (1e-06)
    if used is not param:  # a view: per channel of a map, or nothing netc has
        shown, target = value_of(used), value_of(x)
        if not (op == "layer_scale" and value.dim() == 1 and shown is not None and target is not None
                and shown.dim() == target.dim()
                and tuple(shown.shape) == (1, value.numel()) + (1,) * (target.dim() - 2)):
            return None
        attrs["flat"] = True
    elif not (value.dim() == 3 and value.shape[1:] == (1, 1)):
        attrs["shape"] = list(value.shape)
    return op, attrs, x, param


_MAPPED = ("netc maps conv (and transposed), norms (batch, layer, group), pooling, upsampling, linear, "
           "activations, add, mul, cat, scale, layer scale, permute, flatten, chunk, slice, channel shuffle, "
           "dropout, stochastic depth and identity")


def _ops(graph: fx.Graph, module, where: str):
    mapper = _OpMapper(module, where)
    for node in graph.nodes:
        mapper.visit(node)
    mapper.check(graph)
    return mapper.ops, mapper.returned


class _OpMapper:
    """Maps an fx graph's nodes to netc ops in execution order, collecting every problem."""

    def __init__(self, module, where: str):
        self.modules = dict(module.named_modules())
        self.module, self.where = module, where
        self.ops: list[TracedOp] = []
        self.problems: list[Diagnostic] = []
        self.returned = None
        self.counter: dict[str, int] = {}  # generated scope -> the next number
        self.taken: set[str] = set()
        self.called: set[str] = set()  # modules already called (a second call reuses no weights)
        self.alias: dict = {}  # a node that returns its input unchanged -> that input
        self.chunks: dict = {}
        self.scaled: set = set()  # get_attr nodes read by a layer scale or bias
        self.viewed: dict = {}  # a reshape of a parameter (a layer scale's `gamma.view(1, -1, 1, 1)`) -> its get_attr

    def visit(self, node) -> None:
        if node.op == "placeholder" or node.op == "get_attr":
            return  # a get_attr is read by a layer scale or bias (below), or reported by check()
        if node.op == "output":
            self.returned = self.outputs(node.args[0])
            return
        alias = self.alias
        node.args = fx.node.map_arg(node.args, lambda a: alias.get(a, a))  # past `.contiguous()`
        node.kwargs = fx.node.map_arg(node.kwargs, lambda a: alias.get(a, a))
        if self.view_of_parameter(node):
            return
        owned = _owned_param(node, self.module, self.viewed)
        if owned is not None:
            op, attrs, x, param = owned
            self.scaled.add(param)
            self.ops.append(TracedOp(op, attrs, param.target, _parents(node), [x], node))
            return
        try:
            found = self.module_call(node) if node.op == "call_module" else self.function_call(node)
        except Unmappable as why:
            path = node.target if node.op == "call_module" else (".".join(_parents(node)[-1:]) or "(root)")
            self.problems.append(Diagnostic("import", f"'{path}' of {self.where}: {why} has no netc op", None,
                                            _MAPPED))
            return
        if isinstance(found, fx.Node):
            alias[node] = found
        elif found is not None:
            self.emit(node, *found)

    def view_of_parameter(self, node) -> bool:
        """Record a reshape of a parameter read by get_attr (a layer scale's view of its vector),
        which a multiplication then uses; check() reports the parameter if none does."""
        if node.op not in ("call_method", "call_function") or not node.args:
            return False
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        source = node.args[0]
        if name not in layout.RESHAPES or not isinstance(source, fx.Node):
            return False
        if source.op != "get_attr" and source not in self.viewed:
            return False
        self.viewed[node] = self.viewed.get(source, source)
        return True

    def outputs(self, returned):
        if isinstance(returned, fx.Node) and calls.is_tuple_class(returned.target):  # NamedTuple(x, aux2, aux1)
            returned = returned.target(*returned.args, **returned.kwargs)
        if isinstance(returned, dict):  # named outputs
            return {k: self.alias.get(r, r) for k, r in returned.items()}
        if isinstance(returned, tuple):  # a training forward's outputs (a namedtuple keeps its fields)
            values = [self.alias.get(r, r) for r in returned]
            return type(returned)(*values) if hasattr(returned, "_fields") else tuple(values)
        return self.alias.get(returned, returned)

    def module_call(self, node):
        """The module's own op at its first call (it owns the weights), then what follows it (the
        ops a module maps to after its weights, or a reused parameter-free module)."""
        m = self.modules[node.target]
        parts = [mapping.map_module(m), *mapping.trailing_ops(m)]
        inputs = [a for a in node.args if isinstance(a, fx.Node)]
        if node.target not in self.called:
            self.called.add(node.target)
            op, attrs = parts[0]
            value = node if len(parts) == 1 else _Value(node.name + ":0")
            parents = tuple(p for p in _parents(node) if p != node.target)
            self.ops.append(TracedOp(op, attrs, node.target, parents, inputs, value, type(m).__name__))
            parts, inputs = parts[1:], [value]
        elif any(True for _ in m.parameters()) or any(True for _ in m.buffers()):
            raise Unmappable("a module with weights called twice (shared weights)")
        return (parts, None, inputs) if parts else None

    def function_call(self, node):
        try:
            return calls.function_op(node, self.chunks)
        except (TypeError, ValueError, KeyError, IndexError) as exc:  # arguments of a form no mapper reads
            raise Unmappable(f"{getattr(node.target, '__name__', node.target)} called with arguments "
                             f"netc does not read ({type(exc).__name__}: {exc})") from None

    def emit(self, node, op, attrs, inputs) -> None:
        """The ops of one call, each under a generated scope in the innermost module that calls it."""
        parts = op if isinstance(op, list) else [(op, attrs)]
        parents = _parents(node)
        if node.op == "call_module":
            parents = tuple(p for p in parents if p != node.target)
        base = parents[-1] + "." if parents else ""
        for k_part, (part, part_attrs) in enumerate(parts):
            k = self.counter.get(base + part, 0)
            while (scope := base + (part if k == 0 else f"{part}_{k}")) in self.modules or scope in self.taken:
                k += 1
            self.counter[base + part] = k + 1
            self.taken.add(scope)
            value = node if k_part == len(parts) - 1 else _Value(f"{node.name}:{k_part + 1}")
            self.ops.append(TracedOp(part, part_attrs, scope, parents, inputs, value, "", False))
            inputs = [value]

    def check(self, graph) -> None:
        """Raises every problem found: unmapped calls, parameters read directly, module names a
        spec cannot write."""
        for node in graph.nodes:
            if node.op == "get_attr" and node not in self.scaled:
                self.problems.append(Diagnostic(
                    "import", f"'{node.target}' of {self.where}: the forward reads a parameter or buffer directly "
                    "(netc ops own their weights; a parameter multiplying a tensor is a layer scale, one added a "
                    "layer bias)"))
        bad = sorted({part for op in self.ops for part in op.scope.split(".")
                      if op.named and not MODULE_NAME.fullmatch(part)})
        for part in bad[:10]:
            self.problems.append(Diagnostic(
                "import", f"module name '{part}' of {self.where} cannot be a netc name (ASCII letters, digits, "
                "'_' and '-'), so the spec could not reproduce its state_dict keys", None,
                "rename the submodule in the source (or load its state_dict with renamed keys)"))
        if self.problems:
            raise NetcError(list({d.format(): d for d in self.problems}.values()))  # one per module and reason
