"""The arguments each module of a source was constructed with, to name a template's arguments as
the source's constructor does (`stride`, `expand_ratio`, `out_channels`) rather than by the layer
attribute they set (`block_out2`).

While the source's factory runs, a profile hook sees every `__init__` call of an nn.Module and keeps
the arguments of the first one (the class's own, before its `super().__init__` calls): each
parameter bound to a number, a string, a flag or a list of those, the `**kwargs` it took, and the
scalar fields of a configuration object passed whole (torchvision's `InvertedResidualConfig`:
`expanded_channels`, `use_se`). A template argument takes a parameter's name where that parameter
holds the argument's value in every instance.
"""
from __future__ import annotations

import inspect
import sys
from contextlib import contextmanager

from netc.expr import TEMPLATE_INPUT_VARS

MISSING = object()


@contextmanager
def recording():
    """Yield {id(module): (module, {parameter: value})}, filled while the block runs."""
    from torch import nn

    made: dict[int, tuple] = {}
    previous = sys.getprofile()

    def hook(frame, event, _arg):
        if event == "call" and frame.f_code.co_name == "__init__" and frame.f_code.co_varnames:
            me = frame.f_locals.get(frame.f_code.co_varnames[0])
            if isinstance(me, nn.Module) and id(me) not in made:
                made[id(me)] = (me, _arguments(frame))

    sys.setprofile(hook)
    try:
        yield made
    finally:
        sys.setprofile(previous)


def by_path(module, made: dict) -> dict[str, dict]:
    """{module path: its constructor's arguments} for the modules of `module` that were recorded."""
    return {path: made[id(m)][1] for path, m in module.named_modules() if id(m) in made}


def _arguments(frame) -> dict:
    code = frame.f_code
    n = code.co_argcount + code.co_kwonlyargcount
    names = list(code.co_varnames[1:n])
    flags = code.co_flags
    extra = code.co_varnames[n + bool(flags & inspect.CO_VARARGS)] if flags & inspect.CO_VARKEYWORDS else None
    values = frame.f_locals
    out: dict = {}
    for name in names:
        _take(out, name, values.get(name, MISSING))
    for name, value in (values.get(extra) or {}).items() if extra else ():
        _take(out, name, value)
    for name in names:  # a configuration object's fields, where no parameter has their name
        value = values.get(name)
        if _is_config(value):
            for field, v in vars(value).items():
                if field not in out:
                    _take(out, field, v)
    return out


def _take(out: dict, name: str, value) -> None:
    if isinstance(value, (bool, int, float, str)):
        out[name] = value
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (bool, int, float, str)) for v in value):
        out[name] = list(value)


def _is_config(value) -> bool:
    from torch import nn

    return (hasattr(value, "__dict__") and not isinstance(value, (type, nn.Module)) and not callable(value)
            and not inspect.ismodule(value))


def names(args: dict[str, list], instances: list[dict], missing) -> dict[str, str]:
    """{argument: parameter} where one constructor parameter (the first in the signature's order
    that no other argument took) holds the argument's value in every instance that gives it;
    `instances`: each instance's recorded arguments, `missing`: the marker of an instance without it."""
    out, taken = {}, set(TEMPLATE_INPUT_VARS) | {"i"}
    for arg, values in args.items():
        given = [(k, v) for k, v in enumerate(values) if v is not missing]
        if len(given) < 2 or not all(instances[k] for k, _ in given):
            continue
        common = [p for p in instances[given[0][0]] if all(_equal(instances[k].get(p, MISSING), v) for k, v in given)]
        name = next((p for p in common if p not in taken), None)
        if name:
            out[arg] = name
            taken.add(name)
    return out


def _equal(recorded, value) -> bool:
    """A recorded argument and a template argument's value: a pair (`[3, 3]`) equals a number given once."""
    if isinstance(value, list) and not isinstance(recorded, list):
        return len(set(map(repr, value))) == 1 and _equal(recorded, value[0])
    if isinstance(value, list):
        return len(value) == len(recorded) and all(map(_equal, recorded, value))
    return isinstance(recorded, bool) == isinstance(value, bool) and type(recorded) in (type(value), int, float) \
        and recorded == value
