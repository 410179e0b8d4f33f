"""One node of the graph IR: a primitive op with named, typed fields (as torch.fx's `Node`).

Expansion (`netc.spec.expand`) fills the fields above the line; the shape pass
(`netc.ir.passes.infer_node`) fills those below it. Results of other passes go in `meta`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from netc.errors import Loc


@dataclass(slots=True, eq=False)
class Node:
    op: str  # registered op name ('input' for the network input, '_ref' for an unresolved `from:`)
    attrs: Any  # the op's validated attribute model (frozen pydantic); None for the input
    scope: str  # hierarchical module path, e.g. 'layer1.0.conv1'
    inputs: list[int]  # ordered input node ids (the graph's edges hold the same set, for graph algorithms)
    loc: Loc | None  # source location of the YAML node it came from
    via: tuple = ()  # the instantiation chain that led to it
    aux: bool = False  # inside an auxiliary (training-only) side branch
    blocks: tuple[str, ...] = ()  # enclosing named blocks, outermost first (keys of `Graph.blocks`)
    template_input: int | None = None  # inside a template: the node feeding its instance (`$in_c`, `from: input`)
    lint_ignore: frozenset = frozenset()  # lint rules a `lint: {ignore}` of this node or a parent silences
    # ---- filled by the shape pass
    inferred: bool = False  # the shape pass has visited it (`shape` is None where it failed)
    shape: tuple[int, ...] | None = None
    params: int = 0
    buffers: int = 0
    macs: int = 0
    owned: Any = None  # the `OwnedParam` of an op that keeps a parameter on its enclosing block, else None
    meta: dict[str, Any] = field(default_factory=dict)  # results of other passes, keyed by the pass

    def copy(self) -> Node:
        """A node whose mutable fields (inputs, meta) are its own."""
        return replace(self, inputs=list(self.inputs), meta=dict(self.meta))
