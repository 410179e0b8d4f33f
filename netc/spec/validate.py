"""Turn pydantic validation errors into located, friendly diagnostics."""
from __future__ import annotations

from netc.errors import Diagnostic, Loc, NetcError, did_you_mean
from netc.spec.yamlload import key_loc, value_loc

_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def _walk(raw, path, default: Loc | None):
    """Follow a pydantic error path through the raw YAML; return (container, key, value)."""
    container, key, node = None, None, raw
    for part in path:
        if isinstance(node, dict) and part in node:
            container, key, node = node, part, node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            container, key, node = node, part, node[part]
        # other parts name union members or validators: skip them
    return container, key, node


def _message(err: dict, field: str | None, ctx_word: str) -> tuple[str, str, str | None]:
    """(code, message, hint) for one pydantic error."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "schema", f"unknown key '{field}'{ctx_word}", None
    if kind == "missing":
        return "schema", f"missing required key '{field}'{ctx_word}", None
    if kind in _TYPE_WORDS:
        return "schema", f"'{field}' must be {_TYPE_WORDS[kind]}, got {err.get('input')!r}", None
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return "schema", f"'{field}' {msg.lower()}, got {err.get('input')!r}", None
    if kind == "literal_error":
        return "schema", f"'{field}': {msg.lower()}, got {err.get('input')!r}", None
    if kind == "value_error":
        return "schema", msg.removeprefix("Value error, "), None
    return "schema", f"'{field}': {msg}", None


def _field_name(path) -> str | None:
    for part in reversed(path):
        if isinstance(part, str) and not any(c in part for c in "[]()"):
            return part
    return None


def diagnostics(exc, raw, default: Loc | None, known_keys=None, via=(), what: str = "") -> list[Diagnostic]:
    """Diagnostics for a pydantic ValidationError raised while validating `raw`.

    Errors at the same place (one per union member) are merged into one message.
    `known_keys(path)` may return the valid keys at that place, for did-you-mean hints.
    """
    groups: dict[tuple, list[dict]] = {}
    for err in exc.errors(include_url=False):
        path = tuple(p for p in err["loc"])
        clean = tuple(p for p in path if not (isinstance(p, str) and any(c in p for c in "[]()")))
        # an error inside a member of a union: report at the union field
        groups.setdefault(clean if err["type"] != "extra_forbidden" else path, []).append(err)
    out: list[Diagnostic] = []
    for path, errs in groups.items():
        container, key, node = _walk(raw, path, default)
        field = _field_name(path)
        err = errs[0]
        if err["type"] == "extra_forbidden":
            loc = key_loc(container, key, default) if container is not None else default
            code, message, hint = _message(err, field, what)
            hint = did_you_mean(field, known_keys(path[:-1]) if known_keys else ())
            op_hint = did_you_mean(field, _op_names())
            if op_hint and known_keys and "seq" in known_keys(path[:-1]):
                code, message, hint = "unknown-op", f"unknown op '{field}'", op_hint
            elif known_keys and "seq" in known_keys(path[:-1]) and not hint:
                code, message = "unknown-op", f"unknown op or key '{field}'"
                hint = "ops: " + ", ".join(sorted(_op_names()))
            out.append(Diagnostic(code, message, loc, hint, tuple(via)))
            continue
        if err["type"] == "missing":
            loc = getattr(node, "loc", None) or value_loc(container, key, default) if container is not None else default
        else:
            loc = value_loc(container, key, default) if container is not None else default
        if len(errs) > 1 and all(e["type"] in _TYPE_WORDS or e["type"] == "string_pattern_mismatch" for e in errs):
            words = []
            for e in errs:
                w = _TYPE_WORDS.get(e["type"], "an expression with $variables")
                if w not in words:
                    words.append(w)
            out.append(Diagnostic("schema", f"'{field}' must be {' or '.join(words)}, got {err.get('input')!r}",
                                  loc, None, tuple(via)))
            continue
        code, message, hint = _message(err, field, what)
        out.append(Diagnostic(code, message, loc, hint, tuple(via)))
    return out


def _op_names():
    from netc.ops import REGISTRY
    return REGISTRY.keys()


def attrs_error(exc, op: str, values, loc: Loc | None, via=()) -> NetcError:
    """An op's attributes failed its model: say which, with the op's valid keys as hints."""
    from netc.ops import REGISTRY

    fields = REGISTRY[op].Attrs.model_fields
    diags = diagnostics(exc, values, loc, known_keys=lambda path: fields.keys(), via=via, what=f" for {op}")
    for d in diags:
        if d.code == "unknown-op":  # an attribute, not an op
            d.code = "schema"
        if d.message.startswith("unknown key") and not d.hint:
            d.hint = f"{op} takes: " + ", ".join(fields) if fields else f"{op} takes no attributes"
    return NetcError(diags)
