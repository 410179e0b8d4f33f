"""torch modules and functions -> netc ops. Each op declares what maps to it (its import facet:
`torch_modules`, `torch_functions`, `tensor_methods` and `from_module`, netc.ops.base.Op); here
those dotted names become the tables the tracer looks calls up in. A mapper returns (op, attrs) or
raises Unmappable with the reason, which the importer reports with the module path."""
from __future__ import annotations

import importlib
import operator
import weakref
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn

from netc.ops import REGISTRY
from netc.ops.base import Op, Unmappable


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _claim(table: dict, key, value, op: str) -> None:
    if key in table:
        raise ValueError(f"{key} is mapped to two ops (the second: '{op}')")
    table[key] = value


def _import_tables() -> tuple[dict, dict, dict, dict, dict]:
    """What the ops' import facets name, resolved: torch's own module classes by class (subclasses
    match through their MRO); other libraries' modules by qualified class name, so netc needs not
    import them; parameter-free functions, as the module class that, built with the function's other
    arguments, computes the same (torch keeps their argument orders alike); tensor methods
    (`x.sigmoid()` is torch.sigmoid(x)) by name."""
    modules, named, functions, methods, readings = {}, {}, {}, {}, {}
    for op in REGISTRY.values():
        for dotted in op.torch_modules:
            mapper = partial(op.from_module, torch_cls=dotted)
            if dotted.split(".")[0] == "torch":
                _claim(modules, _resolve(dotted), mapper, op.name)
                readings[_resolve(dotted)] = partial(op.readings, torch_cls=dotted)
            else:
                _claim(named, dotted, mapper, op.name)
        for dotted in op.torch_functions:
            _claim(functions, _resolve(dotted), _resolve(op.torch_modules[0]), op.name)
        for method in op.tensor_methods:
            _claim(methods, method, op.name, op.name)
    return modules, named, functions, methods, readings


MODULES, NAMED, FUNCTIONAL_MODULES, METHOD_ACTIVATIONS, READINGS = _import_tables()
PROBED = [op for op in REGISTRY.values() if type(op).probed is not Op.probed]


def _qualname(m) -> str:
    return f"{type(m).__module__}.{type(m).__qualname__}"


def _raise(why):
    raise Unmappable(why)


def _known_base(m: nn.Module):
    return next((cls for cls in type(m).__mro__ if cls in MODULES), None)


def map_module(m: nn.Module):
    """(op, attrs) of a leaf module; also timm/netc's depthwise-separable conv (conv1 + pointwise).

    A subclass with its own forward maps where its extra work is known (`trailing_ops`), where
    it computes what its base class computes (`behaves_as`), or what one of its base op's other
    readings computes (`Op.readings`: TF 'same' padding, weight standardisation)."""
    named = NAMED.get(_qualname(m))
    if named is not None:
        return named(m)
    cls = _known_base(m)
    if cls is not None:
        if type(m).forward is not cls.forward and not _norm_act(m) and not behaves_as(m, cls):
            return _reading(m, cls)
        return MODULES[cls](m)
    if is_separable(m):
        return REGISTRY["sepconv"].from_module(m, type(m).__name__)
    found = _probed(m)
    if found is not None:
        return found
    raise Unmappable(f"{type(m).__module__}.{type(m).__name__}")


def _probes(m: nn.Module) -> list[tuple]:
    """Input shapes that tell a subclass from its base: for a conv, an odd and an even map (padding
    that depends on the input size, as TF 'same', differs at one of them)."""
    if isinstance(m, nn.Linear):
        return [(2, m.in_features), (2, 3, m.in_features)]
    if isinstance(m, nn.Conv2d):
        reach = max((k - 1) * d + 1 for k, d in zip(m.kernel_size, m.dilation)) + max(m.stride)
        return [(2, m.in_channels, reach + 4, reach + 5), (2, m.in_channels, reach + 5, reach + 4)]
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return [(2, 3, 9, 10), (2, 3, 10, 9)]
    if isinstance(m, nn.BatchNorm2d):
        return [(2, m.num_features, 5, 5)]
    if isinstance(m, nn.BatchNorm1d):
        return [(2, m.num_features)]
    if isinstance(m, nn.GroupNorm):
        return [(2, m.num_channels, 5, 5)]
    if isinstance(m, nn.LayerNorm):
        return [(2, 3, *m.normalized_shape)]
    if isinstance(m, nn.PReLU):
        return [(2, m.num_parameters, 5, 5)]
    if isinstance(m, tuple(FUNCTIONAL_MODULES.values())):
        return [(2, 3, 5, 5)]
    return []


def behaves_as(m: nn.Module, cls: type) -> bool:
    """Whether a subclass's own forward (timm's Linear, written for TorchScript) gives its base
    class's outputs."""
    return _agrees(m, partial(cls.forward, m))


def _agrees(m: nn.Module, reference, probes=None) -> bool:
    """Whether `m` and `reference` (a function of the input) give the same outputs, in eval mode,
    on random inputs of the shapes `probes` (by default those `_probes` picks)."""
    probes = _probes(m) if probes is None else probes
    if not probes:
        return False
    training = m.training
    gen = torch.Generator().manual_seed(0)
    try:
        m.eval()
        with torch.no_grad():
            for shape in probes:
                x = torch.randn(*shape, generator=gen)
                mine, base = m(x.clone()), reference(x.clone())  # either may work in place
                if not (isinstance(mine, torch.Tensor) and mine.shape == base.shape and torch.allclose(mine, base)):
                    return False
    except Exception:  # noqa: BLE001 - a forward that fails on a probe is not its base's
        return False
    finally:
        m.train(training)
    return True


def _reading(m: nn.Module, cls: type):
    """The first of `cls`'s op's readings of `m` whose netc module computes what `m` does."""
    probes = _probes(m)
    found = _first_agreeing(m, [(op, attrs, [(2, *shape) for shape in where[0]] if where else probes)
                                for op, attrs, *where in READINGS[cls](m)])
    if found is None:
        raise Unmappable(f"{type(m).__name__} (a {cls.__name__} with its own forward that computes something else)")
    return found


def _probed(m: nn.Module):
    """(op, attrs) of a leaf no class maps, by what it computes (`Op.probed`), or None."""
    return _first_agreeing(m, [(op.name, attrs, [(2, *shape) for shape in shapes])
                               for op in PROBED for attrs, shapes in op.probed(m)])


def _first_agreeing(m: nn.Module, candidates: list[tuple[str, dict, list]]):
    """The first (op, attrs) of `candidates` (op, attrs, input shapes) whose netc module, given `m`'s
    state_dict (the same keys, in order) with its parameters randomised (zeros at first would hide
    a term), gives `m`'s outputs at those shapes."""
    from netc.backends.torch.module import make_leaf

    if not candidates:
        return None
    with _randomised(m):
        for op, attrs, probes in candidates:
            try:
                leaf = make_leaf(op, REGISTRY[op].Attrs(**attrs), [tuple(probes[0][1:])])
                if list(leaf.state_dict()) != list(m.state_dict()):
                    continue
                leaf.load_state_dict(m.state_dict())
            except Exception:  # noqa: BLE001, S112 - a candidate this module's constants do not fit
                continue
            if _agrees(m, leaf.eval(), probes):
                return op, attrs
    return None


@contextmanager
def _randomised(m: nn.Module):
    """`m` with its state (parameters and persistent floating buffers) drawn from U(0.5, 1.5), seeded
    (positive: a running variance stays one), restored afterwards."""
    state = {name: t for name, t in m.state_dict(keep_vars=True).items() if t.is_floating_point()}
    saved = {name: t.detach().clone() for name, t in state.items()}
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in state.values():
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    try:
        yield m
    finally:
        with torch.no_grad():
            for name, t in state.items():
                t.copy_(saved[name])


def _norm_act(m: nn.Module) -> bool:
    """timm's BatchNormAct2d / GroupNormAct: the norm, then its own `drop` and `act` children."""
    return isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and [n for n, _ in m.named_children()] == ["drop", "act"]


def trailing_ops(m: nn.Module) -> list:
    """Parameter-free ops a leaf module runs after its own (timm's norm+act: dropout, activation);
    they get generated names, as only the norm's weights need the module's path."""
    if not _norm_act(m):
        return []
    out = [] if isinstance(m.drop, nn.Identity) else [map_module(m.drop)]
    return out + ([] if isinstance(m.act, nn.Identity) else [map_module(m.act)])


def is_separable(m: nn.Module) -> bool:
    names = [n for n, _ in m.named_children()]
    if type(m).__name__ != "SeparableConv2d" or names != ["conv1", "pointwise"]:
        return False
    c1, pw = m.conv1, m.pointwise
    return (isinstance(c1, nn.Conv2d) and isinstance(pw, nn.Conv2d) and c1.groups == c1.in_channels == c1.out_channels
            and pw.kernel_size == (1, 1) and (c1.bias is None) == (pw.bias is None))


def is_leaf(m: nn.Module) -> bool:
    """Traced as one call: a module netc maps, a layer of torch.nn, or a childless one owning weights
    itself that maps to an op (probed). A block with children and a
    parameter of its own (ConvNeXt's CNBlock and its `layer_scale`) is traced through: the parameter
    becomes the op that reads it."""
    own = any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))
    childless = next(m.children(), None) is None
    return (_known_base(m) is not None or _qualname(m) in NAMED or is_separable(m)
            or (own and childless and _maps(m)) or _torch_layer(m))


_MAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def probe_leaves(module: nn.Module) -> None:
    """Decide `_maps` for each of `module`'s submodules before a trace: the probes run the module,
    which must not happen inside torch.fx's tracing (it records module calls)."""
    for m in module.modules():
        is_leaf(m)


def _maps(m: nn.Module) -> bool:
    """Whether a childless module owning weights maps to an op (probed once, `probe_leaves`). One
    that does not is traced through, so that its forward's reads of its own parameters become ops
    (fastvit's LayerScale2d: `x * self.gamma` of shape C×1×1, a `layer_scale`); what stays
    unmapped there is reported by the function and the parameter."""
    if m not in _MAPS:
        try:
            map_module(m)
            _MAPS[m] = True
        except Unmappable:
            _MAPS[m] = False
    return _MAPS[m]


def _torch_layer(m: nn.Module) -> bool:
    """A layer of torch.nn itself (not a container): one call, named by its class when netc has no op
    for it (MultiheadAttention is reported as such, not by the shape asserts inside its forward)."""
    return type(m).__module__.startswith("torch.nn.modules.") and not isinstance(
        m, (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict))


ADD = {operator.add, operator.iadd, torch.add}
MUL = {operator.mul, operator.imul, torch.mul}
SUB = {operator.sub, operator.isub, torch.sub}
DIV = {operator.truediv, operator.itruediv, torch.div, torch.true_divide}
POW = {operator.pow, operator.ipow, torch.pow}
PERMUTE = {torch.permute}
CHUNK = {torch.chunk}
SPLIT = {torch.split, torch.functional.split}
NARROW = {torch.narrow}
# helper functions the tracer keeps whole (torch.fx autowrap), by qualified name: args -> (op, attrs)
WRAPPED = {
    "torchvision.models.shufflenetv2.channel_shuffle": lambda x, groups: ("channel_shuffle", {"groups": int(groups)}),
}
CAT = {torch.cat, torch.concat}
FLATTEN = {torch.flatten}

