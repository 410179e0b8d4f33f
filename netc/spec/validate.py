"""Turn pydantic validation errors into located, friendly diagnostics.

Pydantic reports a failed union once per member, with the member's name (`constrained-int`,
`list[...]`, `str`) inside the error path. Those names are not in the YAML, so the path is
walked through the raw data: parts that index into it are real, the others are union tags.
All errors of one union field become one diagnostic: the error from inside the member the
input matched (a list with a bad item, an integer out of range) when there is one, else a
merged "must be an integer or a list" message.
"""
from __future__ import annotations

import difflib
import re

from netc.errors import Diagnostic, Loc, NetcError, clip
from netc.names import BadName
from netc.spec.yamlload import key_loc, value_loc

_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "string_pattern_mismatch": "an expression with $variables", "none_required": "empty",
}


def _split(raw, path):
    """(real parts indexing into raw, the real prefix before the first union tag, the final node)."""
    real, union_at, node = [], None, raw
    for part in path:
        child = _step(node, part)
        if child is not _NO:
            real.append(part)
            node = child
        elif union_at is None:
            union_at = tuple(real)
    return tuple(real), union_at, node


_NO = object()


def _step(node, part):
    """node[part] in the raw data, or _NO. A YAML list where the model has a node is the
    shorthand for `{seq: [...]}` (netc.spec.model.as_node): its `seq` is the list itself."""
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list):
        if isinstance(part, int) and 0 <= part < len(node):
            return node[part]
        if part == "seq":
            return node
    return _NO


def _container(raw, real):
    """(container, key, value) at the end of a path; stops where the data ends (a shorthand
    string like `relu` that the model saw as the mapping `{relu: null}`)."""
    container, key, node = None, None, raw
    for part in real:
        child = _step(node, part)
        if child is _NO:
            break
        if child is not node:  # a shorthand seq is its list: keep the list's own place
            container, key = node, part
        node = child
    return container, key, node


def _field(path) -> str | None:
    """Name of the place an error is about: `s`, `input[1]`."""
    for i in range(len(path) - 1, -1, -1):
        if isinstance(path[i], str):
            return path[i] + "".join(f"[{p}]" for p in path[i + 1:])
    return None


def _word(err) -> str | None:
    if err["type"] == "literal_error":
        return str(err.get("ctx", {}).get("expected", "")) or None
    return _TYPE_WORDS.get(err["type"])


def _constraint(err, field, what) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error":
        return msg
    msg = re.sub(r"^(Input|List|String|Dictionary) should", "must", msg)
    msg = re.sub(r" after validation, not \d+$", "", msg)
    msg = msg[0].lower() + msg[1:] if msg else msg
    return f"'{field}'{what} {msg}, got {clip(repr(err.get('input')))}"


def diagnostics(exc, raw, default: Loc | None, known_keys=None, via=(), what: str = "") -> list[Diagnostic]:
    """Diagnostics for a pydantic ValidationError raised while validating `raw`.

    `known_keys(path)` may return the valid keys at a place, for did-you-mean hints; `what`
    qualifies messages (" for conv").
    """
    groups: dict[tuple, list] = {}
    for err in exc.errors(include_url=False):
        real, union_at, _ = _split(raw, err["loc"])
        if err["type"] == "extra_forbidden":
            # the unknown key is in the data; its path without tags locates it
            real = tuple(p for p in err["loc"] if p in real or isinstance(p, int) or p == err["loc"][-1])
        key = union_at if union_at is not None else real
        groups.setdefault(key, []).append((real, err))
    out: list[Diagnostic] = []
    for key, errs in groups.items():
        deepest = max(len(r) for r, _ in errs)
        if deepest > len(key):  # the input matched a member (e.g. a list); report inside it
            errs = [(r, e) for r, e in errs if len(r) == deepest]
        specific = [(r, e) for r, e in errs if _word(e) is None]
        for real, err in (specific or errs[:1]):
            out.append(_one(err, real, raw, default, known_keys, via, what,
                            [] if specific else [_word(e) for _, e in errs]))
    return out


def _one(err, real, raw, default, known_keys, via, what, words) -> Diagnostic:
    container, key, node = _container(raw, real)
    field = clip(_field(real) or _field(tuple(err["loc"])) or "")
    kind = err["type"]
    if kind == "extra_forbidden":
        field = err["loc"][-1]
        shown = clip(str(field))
        if isinstance(container, list) or isinstance(node, str):  # a shorthand (`- convv`): the item is the key
            loc = value_loc(container, key, default)
        else:
            loc = key_loc(container, key, default) if container is not None else default
        keys = list(known_keys(tuple(err["loc"][:-1]))) if known_keys else []
        close = difflib.get_close_matches(str(field), sorted(set(keys)), n=1, cutoff=0.6)
        if not close and TORCH_NAMES.get(str(field)) in keys:
            close = [TORCH_NAMES[str(field)]]
        hint = f"did you mean '{close[0]}'?" if close else None
        ops = _op_names()
        if "seq" in keys:  # a node: the unknown key is most likely a mistyped op
            if close and close[0] in ops:
                return Diagnostic("unknown-op", f"unknown op '{shown}'", loc, hint, tuple(via))
            if not close:
                # not the whole list: it grows with every op, and a message should stay short
                return Diagnostic("unknown-op", f"unknown op or key '{shown}'", loc,
                                  f"'netc schema' lists the {len(ops)} ops and the keys a layer may have", tuple(via))
        return Diagnostic("schema", f"unknown key '{shown}'{what}", loc, hint, tuple(via))
    if kind == "missing":
        field = err["loc"][-1]
        loc = getattr(node, "loc", None) or (value_loc(container, key, default) if container is not None else default)
        return Diagnostic("schema", f"missing required key '{field}'{what}", loc, None, tuple(via))
    loc = value_loc(container, key, default) if container is not None else default
    if kind == "value_error" and isinstance(err.get("ctx", {}).get("error"), BadName):
        return Diagnostic("name", _constraint(err, field, what), loc, None, tuple(via))
    if words:
        unique = list(dict.fromkeys(w for w in words if w))
        return Diagnostic("schema", f"'{field}'{what} must be {' or '.join(unique)}, got {clip(repr(err.get('input')))}",
                          loc, None, tuple(via))
    return Diagnostic("schema", _constraint(err, field, what), loc, None, tuple(via))


# PyTorch's and Keras's names for attributes netc spells shorter: too far apart for difflib ('kernel' -> 'k')
TORCH_NAMES = {"kernel": "k", "kernel_size": "k", "pool_size": "k", "stride": "s", "strides": "s", "padding": "p",
               "pad": "p", "dilation": "d", "dilation_rate": "d", "out_channels": "out", "out_features": "out",
               "filters": "out", "units": "out", "channels": "out"}


def _op_names():
    from netc.ops import REGISTRY
    return REGISTRY.keys()


def attrs_error(exc, op: str, values, loc: Loc | None, via=()) -> NetcError:
    """An op's attributes failed its model: say which, with the op's valid keys as hints."""
    from netc.ops import REGISTRY

    fields = REGISTRY[op].Attrs.model_fields
    diags = diagnostics(exc, values, loc, known_keys=lambda path: fields.keys(), via=via, what=f" for {op}")
    for d in diags:
        if d.message.startswith("unknown key") and not d.hint:
            d.hint = f"{op} takes: " + ", ".join(fields) if fields else f"{op} takes no attributes"
    return NetcError(diags)
