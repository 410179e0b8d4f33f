"""torch modules and functions -> netc ops: one entry per torch type, attributes in netc's
spelling with netc's defaults left out. A mapper returns (op, attrs) or raises Unmappable
with the reason, which the importer reports with the module path."""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn


class Unmappable(Exception):
    """This module or call has no netc op; the message says why."""


def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]) if v[0] == v[1] else [int(v[0]), int(v[1])]
    return int(v)


def _drop(attrs: dict, defaults: dict) -> dict:
    return {k: v for k, v in attrs.items() if k not in defaults or defaults[k] != v}


CONV_DEFAULTS = {"s": 1, "p": 0, "output_padding": 0, "d": 1, "groups": 1, "bias": True}


def _conv_attrs(m, p, **after_p) -> dict:
    """A conv's or transposed conv's attributes, in the order a spec writes them, defaults dropped."""
    if m.padding_mode != "zeros":
        raise Unmappable(f"padding_mode '{m.padding_mode}' (netc pads with zeros)")
    return _drop({"out": m.out_channels, "k": _pair(m.kernel_size), "s": _pair(m.stride), "p": p, **after_p,
                  "d": _pair(m.dilation), "groups": m.groups, "bias": m.bias is not None}, CONV_DEFAULTS)


def conv(m: nn.Conv2d):
    return "conv", _conv_attrs(m, m.padding if isinstance(m.padding, str) else _pair(m.padding))


def conv_transpose(m: nn.ConvTranspose2d):
    return "conv_transpose", _conv_attrs(m, _pair(m.padding), output_padding=_pair(m.output_padding))


def bn(m: nn.BatchNorm2d):
    if not m.track_running_stats:
        raise Unmappable("batch norm without running statistics")
    a = {"eps": float(m.eps), "momentum": float(m.momentum), "affine": m.affine}
    return "bn", _drop(a, {"eps": 1e-5, "momentum": 0.1, "affine": True})


def _pool(m, op):
    if getattr(m, "return_indices", False):
        raise Unmappable("max pooling that returns indices")
    if getattr(m, "divisor_override", None):
        raise Unmappable("average pooling with divisor_override")
    a = {"k": _pair(m.kernel_size), "s": _pair(m.stride), "p": _pair(m.padding), "ceil_mode": bool(m.ceil_mode)}
    if op == "maxpool":
        a["d"] = _pair(m.dilation)
    else:
        a["count_include_pad"] = bool(m.count_include_pad)
    if a["s"] == a["k"]:
        del a["s"]
    return op, _drop(a, {"p": 0, "ceil_mode": False, "d": 1, "count_include_pad": True})


def adaptive(m, op):
    out = m.output_size
    out = _pair(out) if isinstance(out, (tuple, list)) else out
    if None in (out if isinstance(out, list) else [out]):
        raise Unmappable("adaptive pooling that keeps a dimension (None)")
    if op == "adaptive_avgpool" and out == 1:
        return "gap", {}
    return op, {"out": out}


def linear(m: nn.Linear):
    return "linear", _drop({"out": m.out_features, "bias": m.bias is not None}, {"bias": True})


def flatten_axes(start: int, end: int):
    """torch's flatten(start_dim, end_dim) of a batch as netc's batchless `flatten`."""
    if start == 0 or end == 0:
        raise Unmappable(f"flatten from dim {start} to {end} (it merges the batch axis)")
    return "flatten", _drop({"start": start - 1 if start > 0 else start, "end": end - 1 if end > 0 else end},
                            {"start": 0, "end": -1})


def permute_dims(dims) -> dict:
    dims = [int(d) for d in dims]
    if not dims or dims[0] != 0:
        raise Unmappable(f"permute {dims} (it moves the batch axis)")
    return {"dims": [d - 1 for d in dims[1:]]}


def layernorm(m: nn.LayerNorm, over: str):
    if len(m.normalized_shape) != 1:
        raise Unmappable(f"layer norm over {len(m.normalized_shape)} axes (netc normalises one: channels or last)")
    if m.elementwise_affine and m.bias is None:
        raise Unmappable("layer norm with a weight but no bias")
    return "layernorm", _drop({"over": over, "eps": float(m.eps), "affine": bool(m.elementwise_affine)},
                              {"over": "channels", "eps": 1e-5, "affine": True})


def groupnorm(m: nn.GroupNorm):
    return "groupnorm", _drop({"groups": m.num_groups, "eps": float(m.eps), "affine": bool(m.affine)},
                              {"eps": 1e-5, "affine": True})


def _inplace(op):
    return lambda m: (op, {"inplace": True} if getattr(m, "inplace", False) else {})


def _alpha(op):
    """ELU and CELU: an alpha (default 1) and an in-place switch."""
    return lambda m: (op, _drop({"alpha": float(m.alpha), "inplace": m.inplace}, {"alpha": 1.0, "inplace": False}))


def upsample(size=None, scale_factor=None, mode="nearest", align_corners=None, antialias=False, **_):
    """(op, attrs) of nn.Upsample / F.interpolate with a fixed integer scale or size."""
    if mode not in ("nearest", "bilinear") or antialias:
        raise Unmappable(f"{'antialiased ' if antialias else ''}{mode} interpolation (netc upsamples nearest or "
                         "bilinear)")
    if size is not None:
        if not all(isinstance(v, int) for v in (size if isinstance(size, (tuple, list)) else [size])):
            raise Unmappable("interpolation to a size computed from a tensor")
        a = {"size": _pair(size)}
    else:
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else [scale_factor]
        if not all(isinstance(v, (int, float)) and float(v).is_integer() and v >= 1 for v in factors):
            raise Unmappable(f"interpolation by scale {scale_factor} (netc upsamples by integer factors)")
        a = {"scale": _pair(tuple(int(v) for v in factors) * (2 if len(factors) == 1 else 1))}
    a["mode"] = mode
    if mode == "bilinear" and align_corners:
        a["align_corners"] = True
    return "upsample", _drop(a, {"mode": "nearest"})


def padding(pad, mode="constant", value=None, **_):
    """(op, attrs) of a padding module or F.pad over the last two axes with fixed widths."""
    widths = list(pad) if isinstance(pad, (tuple, list)) else [pad] * 4
    if len(widths) == 2:  # F.pad's (left, right): the last axis only
        widths += [0, 0]
    if len(widths) != 4 or not all(isinstance(v, int) and v >= 0 for v in widths):
        raise Unmappable(f"padding {tuple(widths)} (netc pads the height and width by fixed non-negative widths)")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise Unmappable(f"{mode} padding")
    left, right, top, bottom = widths
    p = left if len(set(widths)) == 1 else [top, left] if (left, top) == (right, bottom) else widths
    return "pad", _drop({"p": p, "mode": mode, "value": float(value or 0.0)}, {"mode": "constant", "value": 0.0})


MODULES = {
    nn.Upsample: lambda m: upsample(m.size, m.scale_factor, m.mode, m.align_corners),
    nn.Conv2d: conv,
    nn.ConvTranspose2d: conv_transpose,
    nn.BatchNorm2d: bn,
    nn.MaxPool2d: lambda m: _pool(m, "maxpool"),
    nn.AvgPool2d: lambda m: _pool(m, "avgpool"),
    nn.AdaptiveAvgPool2d: lambda m: adaptive(m, "adaptive_avgpool"),
    nn.AdaptiveMaxPool2d: lambda m: adaptive(m, "adaptive_maxpool"),
    nn.Linear: linear,
    nn.Flatten: lambda m: flatten_axes(m.start_dim, m.end_dim),
    nn.LayerNorm: lambda m: layernorm(m, "last"),
    nn.GroupNorm: groupnorm,
    nn.InstanceNorm2d: lambda m: ("instancenorm", _drop({"eps": float(m.eps), "momentum": float(m.momentum),
                                                         "affine": m.affine, "track_running_stats": m.track_running_stats},
                                                        {"eps": 1e-5, "momentum": 0.1, "affine": False,
                                                         "track_running_stats": False})),
    nn.ChannelShuffle: lambda m: ("channel_shuffle", {"groups": m.groups}),
    nn.ZeroPad2d: lambda m: padding(m.padding),
    nn.ConstantPad2d: lambda m: padding(m.padding, "constant", m.value),
    nn.ReflectionPad2d: lambda m: padding(m.padding, "reflect"),
    nn.ReplicationPad2d: lambda m: padding(m.padding, "replicate"),
    nn.CircularPad2d: lambda m: padding(m.padding, "circular"),
    nn.PixelShuffle: lambda m: ("pixel_shuffle", {"factor": m.upscale_factor}),
    nn.PixelUnshuffle: lambda m: ("pixel_unshuffle", {"factor": m.downscale_factor}),
    nn.Dropout: lambda m: ("dropout", _drop({"p": float(m.p), "inplace": m.inplace}, {"p": 0.5, "inplace": False})),
    nn.Identity: lambda m: ("identity", {}),
    nn.ReLU: _inplace("relu"),
    nn.ReLU6: _inplace("relu6"),
    nn.SiLU: _inplace("silu"),
    nn.Hardswish: _inplace("hardswish"),
    nn.Hardsigmoid: _inplace("hardsigmoid"),
    nn.Sigmoid: lambda m: ("sigmoid", {}),
    nn.Tanh: lambda m: ("tanh", {}),
    nn.GELU: lambda m: ("gelu", _drop({"approximate": m.approximate}, {"approximate": "none"})),
    nn.Mish: _inplace("mish"),
    nn.SELU: _inplace("selu"),
    nn.ELU: _alpha("elu"),
    nn.CELU: _alpha("celu"),
    nn.Softplus: lambda m: ("softplus", _drop({"beta": float(m.beta), "threshold": float(m.threshold)},
                                              {"beta": 1.0, "threshold": 20.0})),
    nn.Hardtanh: lambda m: ("hardtanh", _drop({"min_val": float(m.min_val), "max_val": float(m.max_val),
                                               "inplace": m.inplace}, {"min_val": -1.0, "max_val": 1.0, "inplace": False})),
    nn.PReLU: lambda m: ("prelu", _drop({"per_channel": m.num_parameters > 1, "init": float(m.init)},
                                        {"per_channel": False, "init": 0.25})),
    nn.LeakyReLU: lambda m: ("leaky_relu", _drop({"negative_slope": float(m.negative_slope), "inplace": m.inplace},
                                                 {"negative_slope": 0.01, "inplace": False})),
    nn.LocalResponseNorm: lambda m: ("lrn", {"size": m.size, "alpha": float(m.alpha), "beta": float(m.beta),
                                             "k": float(m.k)}),
}


# modules of other libraries, by qualified class name (so netc needs not import them)
NAMED = {
    "torchvision.ops.stochastic_depth.StochasticDepth":
        lambda m: ("stochastic_depth", _drop({"p": float(m.p), "mode": m.mode}, {"mode": "row"})),
    "torchvision.ops.misc.Permute": lambda m: ("permute", permute_dims(m.dims)),
    # LayerNorm2d: nn.LayerNorm over the channels of an N×C×H×W map (permute, norm, permute back)
    "torchvision.models.convnext.LayerNorm2d": lambda m: layernorm(m, "channels"),
    "timm.layers.norm.LayerNorm2d": lambda m: layernorm(m, "channels"),
}


def _qualname(m) -> str:
    return f"{type(m).__module__}.{type(m).__qualname__}"


def _raise(why):
    raise Unmappable(why)


def _known_base(m: nn.Module):
    return next((cls for cls in type(m).__mro__ if cls in MODULES), None)


def map_module(m: nn.Module):
    """(op, attrs) of a leaf module; also timm/netc's depthwise-separable conv (conv1 + pointwise).

    A subclass with its own forward maps where its extra work is known (`trailing_ops`) or where
    it computes what its base class computes (`behaves_as`)."""
    named = NAMED.get(_qualname(m))
    if named is not None:
        return named(m)
    cls = _known_base(m)
    if cls is not None:
        if type(m).forward is not cls.forward and not _norm_act(m) and not behaves_as(m, cls):
            raise Unmappable(f"{type(m).__name__} (a {cls.__name__} with its own forward that computes "
                             "something else)")
        return MODULES[cls](m)
    if is_separable(m):
        return "sepconv", _drop({"out": m.pointwise.out_channels, "k": _pair(m.conv1.kernel_size),
                                 "s": _pair(m.conv1.stride), "p": _pair(m.conv1.padding),
                                 "d": _pair(m.conv1.dilation), "bias": m.conv1.bias is not None},
                                {"s": 1, "p": 0, "d": 1, "bias": False})
    raise Unmappable(f"{type(m).__module__}.{type(m).__name__}")


def _probes(m: nn.Module) -> list[tuple]:
    """Input shapes that tell a subclass from its base: for a conv, an odd and an even map (padding
    that depends on the input size, as TF 'same', differs at one of them)."""
    if isinstance(m, nn.Linear):
        return [(2, m.in_features), (2, 3, m.in_features)]
    if isinstance(m, nn.Conv2d):
        reach = max((k - 1) * d + 1 for k, d in zip(m.kernel_size, m.dilation)) + max(m.stride)
        return [(2, m.in_channels, reach + 4, reach + 5), (2, m.in_channels, reach + 5, reach + 4)]
    if isinstance(m, nn.BatchNorm2d):
        return [(2, m.num_features, 5, 5)]
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
    class's outputs, in eval mode, on random inputs of the shapes `_probes` picks."""
    probes = _probes(m)
    if not probes:
        return False
    training = m.training
    gen = torch.Generator().manual_seed(0)
    try:
        m.eval()
        with torch.no_grad():
            for shape in probes:
                x = torch.randn(*shape, generator=gen)
                mine, base = m(x.clone()), cls.forward(m, x.clone())  # either may work in place
                if not (isinstance(mine, torch.Tensor) and mine.shape == base.shape and torch.allclose(mine, base)):
                    return False
    except Exception:  # noqa: BLE001 - a forward that fails on a probe is not its base's
        return False
    finally:
        m.train(training)
    return True


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
    itself (reported as unmappable by its class rather than by the functions inside it). A block with children and a
    parameter of its own (ConvNeXt's CNBlock and its `layer_scale`) is traced through: the parameter
    becomes the op that reads it."""
    own = any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))
    childless = next(m.children(), None) is None
    return (_known_base(m) is not None or _qualname(m) in NAMED or is_separable(m) or (own and childless)
            or _torch_layer(m))


def _torch_layer(m: nn.Module) -> bool:
    """A layer of torch.nn itself (not a container): one call, named by its class when netc has no op
    for it (MultiheadAttention is reported as such, not by the shape asserts inside its forward)."""
    return type(m).__module__.startswith("torch.nn.modules.") and not isinstance(
        m, (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict))


ADD = {operator.add, operator.iadd, torch.add}
MUL = {operator.mul, operator.imul, torch.mul}
# parameter-free functions: torch.nn.functional.f(x, *args) computes what the module class built
# with the same *args computes (torch keeps their argument orders alike)
FUNCTIONAL_MODULES = {
    F.relu: nn.ReLU, torch.relu: nn.ReLU, F.relu6: nn.ReLU6, F.hardswish: nn.Hardswish, F.hardsigmoid: nn.Hardsigmoid,
    F.silu: nn.SiLU, torch.sigmoid: nn.Sigmoid, F.sigmoid: nn.Sigmoid, torch.tanh: nn.Tanh, F.tanh: nn.Tanh,
    F.gelu: nn.GELU, F.leaky_relu: nn.LeakyReLU, F.elu: nn.ELU, F.celu: nn.CELU, F.selu: nn.SELU, F.mish: nn.Mish,
    F.softplus: nn.Softplus, F.hardtanh: nn.Hardtanh, F.pixel_shuffle: nn.PixelShuffle,
    F.pixel_unshuffle: nn.PixelUnshuffle,
}
PERMUTE = {torch.permute}
CHUNK = {torch.chunk}
SPLIT = {torch.split, torch.functional.split}
NARROW = {torch.narrow}
# tensor methods: x.sigmoid() is torch.sigmoid(x); x.add(y) / x.mul_(y) map as x + y / x * y
METHOD_ACTIVATIONS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
                      "tanh": "tanh", "tanh_": "tanh"}
BINARY_METHODS = {"add": operator.add, "add_": operator.iadd, "mul": operator.mul, "mul_": operator.imul}
# helper functions the tracer keeps whole (torch.fx autowrap), by qualified name: args -> (op, attrs)
WRAPPED = {
    "torchvision.models.shufflenetv2.channel_shuffle": lambda x, groups: ("channel_shuffle", {"groups": int(groups)}),
}
CAT = {torch.cat, torch.concat}
FLATTEN = {torch.flatten}

