"""A symbolic trace that also propagates an example batch through the model, so that what the
forward reads of a tensor's shape, device or dtype is a constant of the spec's input, as it is for
one input size.

torch.fx alone turns `B, C, H, W = x.shape` into graph nodes and refuses `if x.shape[-1] > 7:` or
`if x.device.type == "cpu":` as branches on a tensor value; neither depends on the values. Here each
proxy carries the tensor its op computes on an example batch (the import's input shape, batch 2),
so shape reads return numbers and such branches are taken as they would be at that size. The
example is a fake tensor (torch's FakeTensorMode): shapes, dtypes and devices without data, so
nothing is allocated whatever the input size, and a branch on the values themselves
(`if x.sum() > 0:`) still fails, as it must for a static graph. The values also give every layout
op (`view`, `reshape`, `unsqueeze`, `transpose`) its output shape (`value_of`). Running the ops
changes nothing in the source: a training-mode trace's batch norms could update their running
statistics, so the buffers are restored afterwards.
"""
from __future__ import annotations

import math
import operator
from contextlib import contextmanager

import torch
from torch import fx
from torch._subclasses.fake_tensor import FakeTensorMode

from netc.interop.grid import GRID, VALUE, expression, follow, requested_shape

# VALUE: the fx `Node.meta` key of the tensor (or other result) the node computed on the example
CHANNELS = "netc.channels"  # fx `Node.meta` key: the axis of the node's value holding the channels (absent: 1)
_STATIC = ("shape", "ndim", "device", "dtype", "is_cuda")  # what a forward reads without depending on values
BATCH = 2  # the example's batch: a reshape that keeps it keeps each sample apart


def value_of(node):
    """What an fx node computed on the example batch; None where unknown."""
    return node.meta.get(VALUE) if isinstance(node, fx.Node) else None


class InputSize(int):
    """A height or width that depends on the network input's: `expr` is it in the spec's
    language (`$in_h`, `($in_h + 7) // 8`), so an interpolation or a reshape to it follows the
    input size. `+ - * //` with an integer keep it one (TResNet's `H // 4`); any other
    arithmetic gives a plain int, a constant of this input size."""

    expr: str

    def __new__(cls, value: int, expr: str):
        out = super().__new__(cls, value)
        out.expr = expr
        return out


def _size_arith(symbol: str, name: str, reflected: bool):
    plain = getattr(int, f"__{'r' if reflected else ''}{name}__")

    def method(self, other):
        value = plain(self, other)
        if isinstance(other, bool) or not isinstance(other, int) or value is NotImplemented:
            return value
        a, b = (other, self) if reflected else (self, other)
        return InputSize(int(value), f"{_operand(a)} {symbol} {_operand(b)}")
    return method


def _operand(x) -> str:
    if not isinstance(x, InputSize):
        return str(int(x))
    return x.expr if " " not in x.expr else f"({x.expr})"


for _symbol, _name in (("+", "add"), ("-", "sub"), ("*", "mul"), ("//", "floordiv")):
    setattr(InputSize, f"__{_name}__", _size_arith(_symbol, _name, False))
    setattr(InputSize, f"__r{_name}__", _size_arith(_symbol, _name, True))


class SizeRatio(float):
    """An InputSize over a positive integer (`H / patch`): `math.ceil` and `math.floor` of it are
    InputSizes again (MobileViT-v2's `math.ceil(H / patch_h) * patch_h`); anything else reads it
    as the float it is at this input size."""

    size: InputSize
    by: int

    def __new__(cls, size: InputSize, by: int):
        out = super().__new__(cls, int(size) / by)
        out.size, out.by = size, by
        return out

    def __ceil__(self):
        return InputSize(math.ceil(float(self)), f"({_operand(self.size)} + {self.by - 1}) // {self.by}")

    def __floor__(self):
        return self.size // self.by


def _size_truediv(self, other):
    if isinstance(other, int) and not isinstance(other, (bool, InputSize)) and other > 0:
        return SizeRatio(self, other)
    return int(self) / other


InputSize.__truediv__ = _size_truediv


def input_sizes(value, node) -> tuple:
    """The shape of `value`, computed by `node`; where its height and width are known functions
    of the network input's (`grid.py`), those two entries are InputSize."""
    shape = tuple(value.shape)
    grid = node.meta.get(GRID)
    if grid is None or len(shape) != 4:
        return shape
    return shape[:2] + tuple(InputSize(n, expression(var, g)) for n, var, g in zip(shape[2:], ("in_h", "in_w"), grid))


def channel_axis(node: fx.Node, value, root) -> int | None:
    """Where a permute moved the channels of `value` (computed by `node`): an H×W×C map has them on
    axis 3. An op whose result has its first input's rank keeps its input's axis; None is axis 1 (the
    input's, and what is assumed past a reshape, flatten or stack)."""
    rank = _rank(value)
    first = next((x for x in node.all_input_nodes if _rank(x.meta.get(VALUE)) is not None), None)
    if rank is None or first is None or _rank(first.meta[VALUE]) != rank:
        return None
    axis = first.meta.get(CHANNELS, 1)
    dims = _permuted(node, root)
    return axis if dims is None else [d % rank for d in dims].index(axis)


def _rank(value) -> int | None:
    """The rank of a tensor, or of the parts of a split (a tuple of tensors)."""
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        value = value[0]
    return value.dim() if isinstance(value, torch.Tensor) and value.dim() > 1 else None


def _permuted(node: fx.Node, root):
    """The dims of a permute (`x.permute(…)`, `torch.permute`, torchvision's Permute module), else None."""
    if node.op == "call_module":
        return getattr(root.get_submodule(node.target), "dims", None) if type(
            root.get_submodule(node.target)).__name__ == "Permute" else None
    if node.target == "permute" and node.op == "call_method" or node.target is torch.permute:
        dims = requested_shape(node) if node.args[1:] else node.kwargs.get("dims")
        return list(dims) if isinstance(dims, (tuple, list)) else [dims]
    return None


class _Unknown(Exception):
    pass


def _known(proxy_or_value):
    if isinstance(proxy_or_value, fx.Proxy):
        value = proxy_or_value.node.meta.get(VALUE)
        if value is None:
            raise _Unknown
        return value
    return proxy_or_value


class ConcreteProxy(fx.Proxy):
    """A proxy whose shape, device and dtype are those of its example value."""

    def __getattr__(self, k):
        value = self.node.meta.get(VALUE) if k in _STATIC else None
        if isinstance(value, torch.Tensor):
            return input_sizes(value, self.node) if k == "shape" else getattr(value, k)
        return super().__getattr__(k)


class ConcreteTracing:
    """Mixin for an fx.Tracer: `example` is the input batch; results of ops are kept on their nodes."""

    example: torch.Tensor | None = None
    fake: FakeTensorMode | None = None  # the mode the example's ops run in
    _running = False  # inside an op's example run: the tracer's patches of nn.Module step aside

    def call_module(self, m, forward, args, kwargs):
        return forward(*args, **kwargs) if self._running else super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        return attr_val if self._running else super().getattr(attr, attr_val, parameter_proxy_cache)

    def proxy(self, node):
        return ConcreteProxy(node, self)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        if kind == "call_method" and target in ("size", "dim") and args and isinstance(args[0], fx.Proxy):
            value = args[0].node.meta.get(VALUE)
            if isinstance(value, torch.Tensor):
                if target == "dim":
                    return value.dim()
                shape = input_sizes(value, args[0].node)
                return shape[args[1] if len(args) > 1 else kwargs["dim"]] if args[1:] or kwargs else shape
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        value = self._run(kind, target, args, kwargs)
        if value is not None:
            proxy.node.meta[VALUE] = value
            grid = follow(proxy.node, value, self.root)
            if grid is not None:
                proxy.node.meta[GRID] = grid
            axis = channel_axis(proxy.node, value, self.root)
            if axis is not None:
                proxy.node.meta[CHANNELS] = axis
        return proxy

    def _run(self, kind, target, args, kwargs):
        if kind == "placeholder":
            value, self.example = self.example, None  # the first input; others are unknown
            return value
        try:
            a, kw = fx.node.map_aggregate((args, kwargs), _known)
            self._running = True
            with self.fake, torch.no_grad():
                if kind == "get_attr":
                    return operator.attrgetter(target)(self.root)
                if kind == "call_module":
                    return self.root.get_submodule(target)(*a, **kw)
                if kind == "call_method":
                    return getattr(a[0], target)(*a[1:], **kw)
                return target(*a, **kw)
        except Exception:  # noqa: BLE001 - an op the example cannot run (or an unknown input): traced symbolically
            return None
        finally:
            self._running = False


def example_batch(module, input_shape) -> tuple[torch.Tensor, FakeTensorMode]:
    """A fake batch of BATCH inputs of `input_shape` (on the module's device, in its dtype) and the
    mode its ops run in; the module's own tensors enter that mode as they are."""
    p = next(iter(module.parameters()), None)
    kw = {"device": p.device, "dtype": p.dtype} if p is not None and p.is_floating_point() else {}
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        return torch.empty(BATCH, *input_shape, **kw), mode


@contextmanager
def buffers_kept(module):
    """Restores the module's buffers (batch norm statistics a training-mode example run updates)."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)
