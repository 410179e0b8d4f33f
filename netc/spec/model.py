"""The spec language as pydantic models.

These models check the *structure* of a spec: which keys exist, what each holds, that a
node has exactly one kind. Values that may be expressions (`$planes * 4`) are accepted as
strings here; they are evaluated and type-checked against each op's attribute model during
expansion (`netc.spec.expand`). Every model keeps the raw YAML mapping it came from in
`_raw`, so later errors can point at file:line:col.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, create_model,
                      field_validator, model_validator)

from netc.spec.init import InitSpec, Preset
from netc.names import BadName, check_identifier, check_output_name
from netc.spec.name_pattern import check_name_pattern, is_pattern
from netc.errors import clip
from netc.ops import REGISTRY
from netc.spec.yamlload import LocDict, value_loc

Expr = Annotated[str, StringConstraints(pattern=r"\$")]
Scalar = Union[bool, int, float, str]

STRUCTURAL_KINDS = ("seq", "concat", "residual", "use", "side")

NODE_KINDS = STRUCTURAL_KINDS + tuple(REGISTRY)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, arbitrary_types_allowed=True,
                              allow_inf_nan=False)
    _raw: Any = PrivateAttr(default=None)

    def __getattr__(self, name):
        # expansion reads `_raw` thousands of times; pydantic's generic private-attribute lookup
        # costs ~3 µs a read (10 ms of compiling ResNet-152), this ~1 µs
        if name == "_raw":
            return self.__pydantic_private__["_raw"]
        return super().__getattr__(name)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data, handler):
        model = handler(data)
        if isinstance(data, dict):
            model._raw = data
        return model


def as_node(value, loc=None):
    """Node shorthand: `relu` means `{relu: {}}`; a list means `{seq: [...]}`."""
    if isinstance(value, str):
        out = LocDict({value: None}, loc=loc)
        out.key_locs[value] = loc
        return out
    if isinstance(value, list):
        out = LocDict({"seq": value}, loc=getattr(value, "loc", None) or loc)
        out.key_locs["seq"] = out.value_locs["seq"] = out.loc
        return out
    return value


def _normalise_fields(data, single=(), lists=()):
    """Apply `as_node` to the named node-valued fields of a raw mapping, keeping locations."""
    if not isinstance(data, dict):
        return data
    out = data
    for key in single:
        if key in data and isinstance(data[key], (str, list)):
            out = _copy(out, data)
            out[key] = as_node(data[key], value_loc(data, key))
    for key in lists:
        items = data.get(key)
        if isinstance(items, list) and any(isinstance(i, (str, list)) for i in items):
            out = _copy(out, data)
            new = type(items)(loc=items.loc) if hasattr(items, "loc") else []
            if hasattr(items, "item_locs"):
                new.item_locs = items.item_locs
            new.extend(as_node(item, value_loc(items, i)) for i, item in enumerate(items))
            out[key] = new
    return out


def _copy(out, data):
    if out is not data:
        return out
    copy = LocDict(data, loc=getattr(data, "loc", None))
    if isinstance(data, LocDict):
        copy.key_locs, copy.value_locs = data.key_locs, data.value_locs
    return copy


LINT_RULE_ID = re.compile(r"NL[0-9]{3}")


class LintConfig(StrictModel):
    """`lint: {ignore: [NL102, ...]}`: rules `netc lint` does not report here (the spec, or a layer and
    everything inside it)."""

    ignore: list[str] = Field(default_factory=list, description="lint rule ids not to report, e.g. NL102")

    @field_validator("ignore")
    @classmethod
    def _ids(cls, v):
        for rule in v:
            if not LINT_RULE_ID.fullmatch(rule):
                raise ValueError(f"lint rule id {clip(repr(rule))} must look like NL102 (see 'netc lint --rules')")
        return v


class Residual(StrictModel):
    """out = then(shortcut(x) + scale * body(x)); the shortcut defaults to identity."""

    body: "Node"
    shortcut: Optional["Node"] = Field(None, description="projection or zero-pad path; omitted = identity")
    scale: Union[float, Expr] = Field(1.0, description="residual scaling of the body (Inception-ResNet)")
    then: Optional["Node"] = Field(None, description="post-activation after the sum, e.g. relu")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        return _normalise_fields(data, single=("body", "shortcut", "then"))


class NodeBase(StrictModel):
    name: Optional[str] = Field(None, description="module name of this node (its scope); default: its position")
    repeat: Optional[Union[Annotated[int, Field(ge=0)], Expr]] = Field(
        None, description="instantiate this node n times in sequence, named name.0 … name.n-1; $i is the index")
    index: Optional[str] = Field(
        None, description="with repeat: the name of its index variable (default i); a nested repeat names its own "
                          "so that its body sees the enclosing ones")
    start: Optional[Union[Annotated[int, Field(ge=0)], Expr]] = Field(
        None, description="with a named repeat: the first iteration's name (default 0); $i still counts from 0")
    first: Optional[dict[str, Any]] = Field(None, description="overrides (args / variables) for iteration 0")
    at: Optional[dict[int, dict[str, Any]]] = Field(None, description="overrides for the given iterations")
    if_: Optional[Union[bool, Expr]] = Field(None, alias="if", description="include this node only when true")
    else_: Optional["Node"] = Field(None, alias="else", description="with if: the node to use instead when the "
                                                                    "condition is false (it takes this node's name)")
    from_: Optional[Union[str, list[str]]] = Field(
        None, alias="from", description="input(s) by name or dotted path instead of the previous node ('input' is the "
                                        "network input); a name pattern ('sp{$i}') or an expression giving names")
    output: Optional[str] = Field(None, description="publish this node's result as a named output")
    aux: bool = Field(False, description="an auxiliary side output, computed in training mode only")
    seq: Optional[list["Node"]] = Field(None, description="a sequence of nodes")
    concat: Optional[list["Node"]] = Field(None, description="parallel branches on the same input, joined along channels")
    residual: Optional[Residual] = None
    use: Optional[str] = Field(None, description="instantiate a template")
    args: Optional[dict[str, Any]] = Field(None, description="template arguments, with use")
    side: Optional["Node"] = Field(None, description="a side branch (e.g. an auxiliary head); the main path continues unchanged")
    lint: Optional[LintConfig] = Field(None, description="lint rules not to report on this layer and inside it")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        return _normalise_fields(data, single=("side", "else"), lists=("seq", "concat"))

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        return check_name_pattern(v)

    @field_validator("index")
    @classmethod
    def _index(cls, v):
        return check_identifier(v, "repeat index")

    @field_validator("output")
    @classmethod
    def _output(cls, v):
        return check_output_name(v)

    @field_validator("use")
    @classmethod
    def _use(cls, v):
        return check_identifier(v, "template name")

    @field_validator("at", mode="before")
    @classmethod
    def _at_keys(cls, v):
        # iteration numbers only: YAML's 1.0 or '1.0' would become 1 and then fail to map back
        for key in v if isinstance(v, dict) else ():
            if isinstance(key, bool) or not (isinstance(key, int) or isinstance(key, str) and key.isascii()
                                             and key.isdigit()):
                raise ValueError(f"'at' keys are iteration numbers (0, 1, …), got {clip(repr(key))}")
        return v

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [k for k in NODE_KINDS if k in self.model_fields_set]
        if len(kinds) != 1:
            if kinds:
                raise ValueError(f"a node has exactly one kind, found {', '.join(kinds)}")
            raise ValueError("a node needs a kind: an op (conv, bn, relu, …) or seq, concat, residual, use, side")
        if self.args is not None and self.use is None:
            raise ValueError("'args' goes with 'use'")
        if (self.first or self.at or self.index) and self.repeat is None:
            raise ValueError("'first', 'at' and 'index' go with 'repeat'")
        if self.start is not None and (self.repeat is None or self.name is None or is_pattern(self.name)):
            raise ValueError("'start' numbers the iterations of a named repeat; it goes with 'repeat' and a plain 'name'")
        if self.else_ is not None and self.if_ is None:
            raise ValueError("'else' goes with 'if'")
        if self.aux and self.side is None:
            raise ValueError("'aux' marks a side branch; use it with 'side'")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in NODE_KINDS if k in self.model_fields_set)


# One optional field per registered op, holding its raw attribute mapping (validated later
# against the op's own attribute model, after expressions are evaluated).
Node = create_model(
    "Node", __base__=NodeBase,
    **{name: (Optional[Union[dict[str, Any], None]], Field(None, description=op.summary))
       for name, op in REGISTRY.items()},
)


LIBRARY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}(/[A-Za-z0-9_][A-Za-z0-9_-]{0,63}){0,7}")


class Import(StrictModel):
    file: Optional[str] = Field(None, description="spec file to import templates from, relative to this file")
    lib: Optional[str] = Field(None, description="library to import templates from, by name: netc/NAME (netc's own "
                                                 "library) or a path in a library folder (--lib, NETC_PATH), no suffix")
    templates: Optional[list[str]] = Field(None, description="names to import; default all")

    @field_validator("lib")
    @classmethod
    def _lib(cls, v):
        if v is not None and not LIBRARY_NAME.fullmatch(v):
            raise ValueError(f"library name {clip(repr(v))} is names joined by '/' (netc/resnet, mylib/blocks): "
                             "ASCII letters, digits, '_' and '-', no '..' and no suffix")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if (self.file is None) == (self.lib is None):
            raise ValueError("an import names a 'file' (relative to this spec) or a 'lib' (a library by name)")
        return self


class Template(StrictModel):
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="argument name -> type name (int, float, bool, str, list: required) or default value")
    body: Node
    description: str = ""
    module: bool = Field(False, description="every instance is a module of its own: an unnamed one takes the next "
                                            "position in its parent instead of being transparent")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        return _normalise_fields(data, single=("body",))


class Spec(StrictModel):
    _lib_path: tuple = PrivateAttr(default=())  # library folders `lib:` imports search (--lib)
    netc: Literal[1] = Field(description="language version")
    name: str = Field(description="network name (a Python identifier: it names generated files and classes)")
    description: str = ""
    input: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1, max_length=3)] = Field(
        description="input shape without batch: [C, H, W]")
    params: dict[str, Union[Scalar, list[Scalar]]] = Field(
        default_factory=dict, description="parameters, overridable from the command line with --set k=v")
    vars: dict[str, Any] = Field(default_factory=dict, description="derived variables (may use $params)")
    imports: list[Import] = Field(default_factory=list)
    templates: dict[str, Template] = Field(default_factory=dict)
    layers: Annotated[list[Node], Field(min_length=1)]
    outputs: Optional[list[str]] = Field(None, description="order of the outputs a forward returns")
    init: Optional[Union[Preset, InitSpec]] = Field(
        None, description="weight initialisation: a preset name or {preset, rules} (see netc.spec.init)")
    meta: dict[str, Any] = Field(default_factory=dict, description="free-form facts: paper, reference model")
    lint: Optional[LintConfig] = Field(None, description="lint rules not to report anywhere in this spec")
    mapping: dict[str, str] = Field(
        default_factory=dict, description="weight transfer (netc convert-weights): this spec's module -> the "
                                          "source spec's module it takes its weights from")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        return _normalise_fields(data, lists=("layers",))

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        return check_identifier(v, "spec name")

    @field_validator("templates")
    @classmethod
    def _templates(cls, v):
        for key in v:
            check_identifier(key, "template name")
        return v

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, v):
        seen = set()
        for key in v or ():
            check_output_name(key)
            if key in seen:
                raise BadName(f"'outputs' names '{key}' twice")
            seen.add(key)
        return v


for _model in (LintConfig, Residual, NodeBase, Node, Template, Spec):
    _model.model_rebuild()
