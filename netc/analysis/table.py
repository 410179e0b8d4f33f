"""The cost table model: per-layer rows under per-block subtotal rows, down to a chosen depth.

Blocks are the IR's named block scopes (`layer1`, `layer1.0`, `Mixed_5b`, …); a block's level is
its position in a node's `blocks` chain (top-level blocks are level 1). With `depth=N`, blocks
at level N are collapsed into one subtotal row and blocks above it are shown as a subtotal row
followed by their members (like torchinfo's depth); `depth=None` shows every layer; `depth=0`
has no rows (only the totals are printed).
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.analysis.cost import Cost, CostReport, Field, HasFields, NodeCost, subtotal
from netc.ops import Shape


@dataclass(frozen=True)
class Row(HasFields):
    kind: str  # 'layer' | 'block'
    scope: str
    level: int  # indentation: number of enclosing shown blocks
    op: str  # the op name, or the block's kind ('repeat', 'use', 'seq', 'concat', 'residual', 'side')
    label: str  # diagram text of a layer (`conv 3x3/2, 64`) or the block's template and repeat
    shape: Shape
    cost: Cost
    fields: tuple[Field, Field]  # the receptive field along H and W
    aux: bool


@dataclass(frozen=True)
class Table:
    report: CostReport
    depth: int | None
    rows: list[Row]


class _Group:
    def __init__(self, scope: str | None):
        self.scope = scope
        self.items: list = []  # NodeCost or _Group, in order of first appearance
        self.children: dict[str, _Group] = {}

    def members(self):
        for item in self.items:
            yield from (item.members() if isinstance(item, _Group) else (item,))


def _tree(rows: list[NodeCost], depth: int | None) -> _Group:
    root = _Group(None)
    for r in rows:
        group = root
        for scope in r.blocks[:depth]:
            if scope not in group.children:
                group.children[scope] = _Group(scope)
                group.items.append(group.children[scope])
            group = group.children[scope]
        group.items.append(r)
    return root


def _layer(r: NodeCost, level: int) -> Row:
    return Row("layer", r.scope, level, r.op, r.label, r.shape, r.cost, r.fields, r.aux)


def _block(group: _Group, report: CostReport, level: int) -> Row:
    members = list(group.members())
    # the block's output: its last node in execution order, not counting a side head inside it
    last = next((m for m in reversed(members) if not m.aux), members[-1])
    b = report.blocks.get(group.scope)
    kind, label = (b.kind, b.label) if b else ("block", "")
    return Row("block", group.scope, level, kind, label, last.shape, subtotal(members), last.fields,
               all(m.aux for m in members))


def build(report: CostReport, depth: int | None = None) -> Table:
    """The rows of the cost table at `depth` (None: every layer)."""
    if depth is not None and depth < 0:
        raise ValueError("depth must be >= 0")
    out: list[Row] = []

    def walk(group: _Group, level: int) -> None:
        for item in group.items:
            if isinstance(item, _Group):
                out.append(_block(item, report, level))
                if depth is None or level + 1 < depth:
                    walk(item, level + 1)
            else:
                out.append(_layer(item, level))

    if depth != 0:
        walk(_tree(report.rows, depth), 0)
    return Table(report, depth, out)
