"""Naming scopes and the context that expansion carries down the spec.

Consumes the names and locations of the nodes expansion places; produces their module paths
and the per-node context (scope, variables, template stack, depth, flags). Naming follows
nn.Sequential so that specs can reproduce torchvision's state_dict keys: a node placed in a
scope takes its `name:` or, without one, its position in that scope. Named structures (seq,
concat, residual, use, side, repeat) open a scope (`layer1`, `layer1.0`); unnamed ones are
transparent and their children continue the enclosing numbering. Nodes that expansion itself
adds (the concat of branches, a residual's add and scale) and unnamed joins a spec writes (`add`,
`mul`, `cat`: functions in PyTorch, not modules) are named `_cat`, `_add`, `_scale` and take no
position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netc.errors import Loc, error
from netc.expr import is_expr, substitute
from netc.spec.yamlload import value_loc


@dataclass
class Frame:
    """A naming scope: its module path prefix and the names placed directly in it."""

    prefix: str
    counter: int = 0
    names: dict[str, Loc | None] = field(default_factory=dict)
    next_generated: dict[str, int] = field(default_factory=dict)  # kind -> first suffix not yet tried

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def place(self, name: str | None, loc: Loc | None) -> str:
        """Take the next position; return the node's name (its own or its position)."""
        auto = str(self.counter)
        self.counter += 1
        name = auto if name is None else name
        self.claim(name, loc)
        return name

    def claim(self, name: str, loc: Loc | None) -> None:
        if name in self.names:
            first = self.names[name]
            raise error("name", f"duplicate name '{self.path(name)}'" + (f" (first used at {first})" if first else ""),
                        loc, "names must be unique within their block")
        self.names[name] = loc

    def generated(self, kind: str) -> str:
        """`_add`, `_add1`, …: the first free one; suffixes already tried are not tried again,
        so naming n of them is linear in n."""
        n = self.next_generated.get(kind, 0)
        name = f"_{kind}{n or ''}"
        while name in self.names:
            n += 1
            name = f"_{kind}{n}"
        self.next_generated[kind] = n + 1
        self.names[name] = None
        return name


@dataclass(frozen=True)
class Ctx:
    frame: Frame
    env: dict[str, Any]
    via: tuple[Loc, ...] = ()
    depth: int = 0
    stack: tuple[str, ...] = ()  # templates being instantiated
    aux: bool = False
    blocks: tuple[str, ...] = ()
    lint_ignore: frozenset = frozenset()  # lint rules a `lint: {ignore}` of this node or a parent silences
    template_input: int | None = None  # the node feeding the template instance being expanded ('from: input')

    def but(self, **kw) -> "Ctx":
        return Ctx(**{**self.__dict__, **kw})


def evaluate(value, ctx: Ctx, loc):
    """`value` with the context's variables substituted (expressions, and those inside mappings and lists)."""
    return substitute(value, ctx.env, loc) if (is_expr(value) or isinstance(value, (dict, list))) else value


def node_loc(node) -> Loc | None:
    raw = getattr(node, "_raw", None)
    return getattr(raw, "loc", None)


def name_loc(raw, loc: Loc | None) -> Loc | None:
    """Where a node's name is written (its `name:` value), else the node itself."""
    return value_loc(raw, "name", loc) if "name" in raw else loc
