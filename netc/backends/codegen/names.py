"""Identifiers for generated code: any spec name becomes a valid, unique, non-keyword one.

A spec name is free text (`x'); import os #`, `größe`, `0`, `class`); generated source may
only contain it as a `repr()` string literal or as an identifier made here. Identifiers are
ASCII (`[A-Za-z_][A-Za-z0-9_]*`): every other character becomes `_`, a leading digit gets a
prefix, keywords, soft keywords and reserved names get a trailing `_`, and clashes get a
numeric suffix. The result depends only on the order of requests, so output is deterministic.
"""
from __future__ import annotations

import builtins
import keyword
import re

_BAD = re.compile(r"[^A-Za-z0-9_]+")

RUNTIME = ("Add", "Concat", "Scale", "PadChannels", "SeparableConv2d", "LayerNorm2d", "Permute", "Reshape",
           "Reduce", "Stack", "StochasticDepth", "pad_same", "Conv2dSame", "StdConv2d", "MaxPool2dSame",
           "AvgPool2dSame", "Affine", "GlobalResponseNorm", "Sub", "Div", "Pow", "ExpandAs", "BlurPool2d", "FrozenBatchNorm2d",
           "ChannelScale", "Normalize",
           "feature_graph", "FeatureInfo", "backbone")
# runtime functions a runtime class calls, copied with it
RUNTIME_NEEDS = {"Conv2dSame": ("pad_same",), "StdConv2d": ("pad_same",), "MaxPool2dSame": ("pad_same",),
                 "AvgPool2dSame": ("pad_same",)}
# the factory's own keyword arguments and the module-level table they read
FACTORY_NAMES = {"features_only", "out_indices", "FEATURES"}
# names every generated namespace must leave alone
RESERVED = ({"self", "torch", "nn", "math", "Tensor", "Optional", "NamedTuple", "OrderedDict", "super",
             "range", "getattr", "min", "max", "abs", "int", "float", "round", "print", "len", "list",
             "tuple", "dict", "str", "bool", "type", "object", "None", "True", "False"}
            | set(RUNTIME) | FACTORY_NAMES | set(dir(builtins)))


def is_identifier(name: str) -> bool:
    """True for a plain ASCII identifier that is not a keyword (usable as-is in source)."""
    return (name.isascii() and name.isidentifier() and not keyword.iskeyword(name)
            and not keyword.issoftkeyword(name))


def is_attribute(name: str) -> bool:
    """True where a layer's name can be written `self.<name>` in a generated class."""
    return is_identifier(name) and name not in RESERVED and name != "training"


def sanitize(name: str, prefix: str = "v") -> str:
    """A valid identifier that resembles `name` (not yet unique)."""
    text = _BAD.sub("_", str(name)).strip("_") or prefix
    if text[0].isdigit():
        text = f"{prefix}{text}"
    if keyword.iskeyword(text) or keyword.issoftkeyword(text):
        text += "_"
    return text


def camel(name: str, prefix: str = "Net") -> str:
    """A class name from free text: `inception_v3` -> `InceptionV3`, `Bottleneck` stays."""
    parts = [p for p in _BAD.sub("_", str(name)).split("_") if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts) or prefix
    return f"{prefix}{text}" if text[0].isdigit() else text


class Names:
    """One namespace of identifiers: `take(name)` gives each request a fresh identifier."""

    def __init__(self, reserved=()):
        self.used: set[str] = set(reserved)

    def reserve(self, *names: str) -> None:
        self.used.update(names)

    def take(self, name: str, prefix: str = "v") -> str:
        base = sanitize(name, prefix)
        out, n = base, 1
        while out in self.used:
            out, n = f"{base}_{n}", n + 1
        self.used.add(out)
        return out

    def take_class(self, name: str) -> str:
        base = camel(name)
        sep = "_" if base[-1].isdigit() else ""  # Block8 -> Block8_2, not Block82
        out, n = base, 2
        while out in self.used:
            out, n = f"{base}{sep}{n}", n + 1
        self.used.add(out)
        return out
