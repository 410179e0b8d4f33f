"""JSON Schema of the spec language, for editors (yaml-language-server) and tooling.

Generated from the pydantic models, then made exact where the models are deliberately loose:
each op's attributes come from the op registry, any attribute may instead be an expression
string containing `$`, and a node may be written as a bare op name or a list (a sequence). A
document is a network or a template library (`netc` and `templates`, no `layers`).
"""
from __future__ import annotations

import copy
from typing import Any

from netc.ops import REGISTRY
from netc.spec.model import Spec

EXPR = {"type": "string", "pattern": r"\$", "description": "expression on $variables, e.g. '$planes * 4'"}
SCHEMA_ID = "https://netc.dev/schema/spec-v1.json"


def _allow_expr(prop: dict) -> dict:
    return {"anyOf": [_items_allow_expr(prop), EXPR], **{k: prop[k] for k in ("description", "default") if k in prop}}


def _items_allow_expr(schema):
    """`schema` where each item of a list may be an expression too (`size: [$in_h, $in_w]`)."""
    if isinstance(schema, list):
        return [_items_allow_expr(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _items_allow_expr(v) for k, v in schema.items()}
    if isinstance(out.get("items"), dict):
        out["items"] = {"anyOf": [out["items"], EXPR]}
    if isinstance(out.get("prefixItems"), list):
        out["prefixItems"] = [{"anyOf": [item, EXPR]} for item in out["prefixItems"]]
    return out


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    node = defs["Node"]
    for name, op in REGISTRY.items():
        attrs = op.Attrs.model_json_schema(by_alias=True)
        for sub, sub_schema in attrs.pop("$defs", {}).items():
            defs.setdefault(sub, sub_schema)
        attrs["properties"] = {k: _allow_expr(v) for k, v in attrs.get("properties", {}).items()}
        attrs["additionalProperties"] = False
        attrs.pop("title", None)
        defs[f"op_{name}"] = attrs
        node["properties"][name] = {"anyOf": [{"$ref": f"#/$defs/op_{name}"}, {"type": "null"}],
                                    "description": op.summary}
    node_obj = copy.deepcopy(node)
    defs["NodeObject"] = node_obj
    defs["Node"] = {
        "description": "a layer: a mapping with one kind, a bare op name, or a list (a sequence)",
        "anyOf": [
            {"$ref": "#/$defs/NodeObject"},
            {"type": "string", "enum": sorted(REGISTRY)},
            {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        ],
    }
    # a template library (what `imports:` reads) holds `netc` and `templates`, and no layers
    spec_keys = [k for k in ("name", "input", "layers") if k in schema.get("required", ())]
    schema["required"] = [k for k in schema.get("required", ()) if k not in spec_keys]
    schema["anyOf"] = [{"required": spec_keys, "description": "a network"},
                       {"required": ["templates"], "not": {"required": ["layers"]},
                        "description": "a template library other specs import"}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "netc spec"
    return schema
