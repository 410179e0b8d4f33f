"""Weight initialisation schemes: the spec's `init:` key.

```yaml
init: resnet                       # a preset: torchvision's scheme for that family
init:                              # or a preset plus rules; later rules win
  preset: inception
  rules:
    - {scope: "AuxLogits.conv1", weight: {trunc_normal: {std: 0.01}}}
    - {op: linear, weight: {normal: {std: 0.01}}, bias: 0}
```

A rule matches ops by registry name (`op`) and/or module path (`scope`, a glob); it fills every
parameter of the op's module whose name ends in `weight` and/or `bias`. A parameter an op keeps
on its block (`layer_scale`) starts at the op's own `init:` and no rule changes it. A parameter
that no rule fills keeps PyTorch's default for its module (`reset_parameters`), as constructing
the module directly would; batch-norm running statistics are always reset. The presets are
torchvision's `__init__` loops. The models here are pydantic and torch-free (the spec model
and `netc schema` use them); `netc.backends.torch.init` applies a scheme to a module.
"""
from __future__ import annotations

import fnmatch
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from netc.errors import error
from netc.ops import REGISTRY, Op


class _Model(BaseModel):
    # strictly typed and finite like the rest of the language: 'nan', '1e999' or 'inf' given as
    # strings must not become NaN weights (or `nan` in generated code)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class _Range(_Model):
    @model_validator(mode="after")
    def _ordered(self):
        if not self.a < self.b:
            raise ValueError(f"the range needs a < b, got a: {self.a}, b: {self.b}")
        return self


class Normal(_Model):
    mean: float = 0.0
    std: Annotated[float, Field(gt=0)] = 1.0


class Uniform(_Range):
    a: float = 0.0
    b: float = 1.0


class TruncNormal(_Range):
    """Normal(mean, std) truncated to [a, b] (absolute bounds, as torch.nn.init.trunc_normal_)."""

    mean: float = 0.0
    std: Annotated[float, Field(gt=0)] = 1.0
    a: float = -2.0
    b: float = 2.0


class Kaiming(_Model):
    mode: Literal["fan_in", "fan_out"] = "fan_in"
    nonlinearity: Literal["relu", "leaky_relu", "linear", "tanh", "sigmoid", "selu"] = "leaky_relu"
    a: float = 0.0


class Xavier(_Model):
    gain: float = 1.0


FILLS = ("constant", "normal", "uniform", "trunc_normal", "kaiming_normal", "kaiming_uniform",
         "xavier_normal", "xavier_uniform", "orthogonal")


class Fill(_Model):
    """How to fill a tensor: exactly one initialiser (torch.nn.init's names)."""

    constant: Optional[float] = None
    normal: Optional[Normal] = None
    uniform: Optional[Uniform] = None
    trunc_normal: Optional[TruncNormal] = None
    kaiming_normal: Optional[Kaiming] = None
    kaiming_uniform: Optional[Kaiming] = None
    xavier_normal: Optional[Xavier] = None
    xavier_uniform: Optional[Xavier] = None
    orthogonal: Optional[Xavier] = None

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in FILLS if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("an initialiser has exactly one of: " + ", ".join(FILLS))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in FILLS if k in self.model_fields_set)


# a number is a constant; `default` keeps PyTorch's default for that tensor
FillSpec = Union[float, Literal["default", "zeros", "ones"], Fill]


class InitRule(_Model):
    op: Optional[Union[str, list[str]]] = Field(None, description="op name(s) the rule applies to: conv, linear, bn, …")
    scope: Optional[str] = Field(None, description="module path glob, e.g. 'AuxLogits.*' or 'layer*.conv1'")
    weight: Optional[FillSpec] = None
    bias: Optional[FillSpec] = None

    @field_validator("op")
    @classmethod
    def _known_op(cls, v):
        from netc.errors import did_you_mean

        for name in [v] if isinstance(v, str) else v or ():
            if name not in REGISTRY:
                hint = did_you_mean(name, REGISTRY)
                raise ValueError(f"unknown op '{name}'" + (f"; {hint}" if hint else ""))
            if type(REGISTRY[name]).owned is not Op.owned:  # a parameter on its block, with its own init
                raise ValueError(f"'{name}' starts at its own 'init:' value, which init rules do not change; "
                                 f"set it on the {name} layer")
        return v

    def matches(self, op: str, scope: str) -> bool:
        if self.op is not None and op not in ([self.op] if isinstance(self.op, str) else self.op):
            return False
        return self.scope is None or fnmatch.fnmatchcase(scope, self.scope) \
            or fnmatch.fnmatchcase(scope, self.scope + ".*")


PRESETS_DOC = {
    "default": "PyTorch's per-module defaults",
    "resnet": "torchvision ResNet: conv kaiming_normal(fan_out, relu); BN 1/0",
    "vgg": "torchvision VGG: conv kaiming_normal(fan_out, relu), bias 0; BN 1/0; linear normal(0, 0.01), bias 0",
    "googlenet": "torchvision GoogLeNet: conv and linear weights trunc_normal(std 0.01, [-2, 2]); BN 1/0",
    "inception": "torchvision Inception3: conv and linear weights trunc_normal(std 0.1, [-2, 2]); BN 1/0",
}
Preset = Literal["default", "resnet", "vgg", "googlenet", "inception"]


class InitSpec(_Model):
    """`init:` of a spec: a preset (torchvision's scheme of a family) and rules on top of it."""

    preset: Preset = Field("default", description="; ".join(f"{k}: {v}" for k, v in PRESETS_DOC.items()))
    rules: list[InitRule] = Field(default_factory=list, description="applied after the preset; later rules win")

    def in_order(self) -> list[InitRule]:
        """The preset's rules, then the spec's: later rules win."""
        return PRESETS[self.preset] + self.rules

    def plan(self, ops: list[tuple[str, str]]) -> dict[str, dict[str, FillSpec]]:
        """scope -> {'weight': fill, 'bias': fill} for every (op, scope) some rule covers."""
        rules = self.in_order()
        out: dict[str, dict[str, FillSpec]] = {}
        for op, scope in ops:
            fills: dict[str, FillSpec] = {}
            for rule in rules:
                if rule.matches(op, scope):
                    for kind in ("weight", "bias"):
                        value = getattr(rule, kind)
                        if value is not None:
                            fills[kind] = value
            fills = {k: v for k, v in fills.items() if v != "default"}
            if fills:
                out[scope] = fills
        return out


def _r(op, weight=None, bias=None) -> InitRule:
    return InitRule(op=op, weight=weight, bias=bias)


_KAIMING_OUT = Fill(kaiming_normal=Kaiming(mode="fan_out", nonlinearity="relu"))
_BN = _r("bn", 1.0, 0.0)
PRESETS: dict[str, list[InitRule]] = {
    "default": [],
    "resnet": [_r(["conv", "sepconv"], _KAIMING_OUT), _BN],
    "vgg": [_r(["conv", "sepconv"], _KAIMING_OUT, 0.0), _BN, _r("linear", Fill(normal=Normal(std=0.01)), 0.0)],
    "googlenet": [_r(["conv", "sepconv", "linear"], Fill(trunc_normal=TruncNormal(std=0.01))), _BN],
    "inception": [_r(["conv", "sepconv", "linear"], Fill(trunc_normal=TruncNormal(std=0.1))), _BN],
}


def as_init_spec(value) -> InitSpec:
    """The spec's `init:` value (None, a preset name, a mapping or an InitSpec) as an InitSpec; a
    programmatic scheme that is none of these is an `error[schema]`."""
    if value is None:
        return InitSpec()
    if isinstance(value, InitSpec):
        return value
    try:
        return InitSpec(preset=value) if isinstance(value, str) else InitSpec.model_validate(value)
    except ValidationError as exc:
        raise error("schema", f"invalid init scheme: {exc}", None) from None


def unmatched_rules(spec, ops: list[tuple[str, str]]) -> list:
    """A warning, located at the rule, for each `init:` rule with a `scope` that matches none of
    `ops` ((op, scope) of the compiled graph): most likely a mistyped module path. A warning, not
    an error: a rule may name layers that only some parameter values create (inception_v3's
    AuxLogits rules under `--set aux_logits=false`)."""
    from netc.errors import Diagnostic, did_you_mean
    from netc.spec.budget import spend
    from netc.spec.yamlload import value_loc

    if not isinstance(spec.init, InitSpec):
        return []
    raw = spec._raw.get("init") if isinstance(spec._raw, dict) else None
    rules_raw = raw.get("rules") if isinstance(raw, dict) else None
    out = []
    for i, rule in enumerate(spec.init.rules):
        if rule.scope is not None:
            spend(len(ops), value_loc(rules_raw, i, None))  # each scoped rule is compared with every op
        if rule.scope is not None and not any(rule.matches(op, scope) for op, scope in ops):
            what = f"op {rule.op} and " if rule.op else ""
            out.append(Diagnostic("init", f"init rule {i + 1}: no layer has {what}scope '{rule.scope}'; "
                                          "the rule changes nothing", value_loc(rules_raw, i, None),
                                  did_you_mean(rule.scope, {s for _, s in ops}), severity="warning"))
    return out
