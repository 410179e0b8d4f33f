"""`netc diff`: two compiled networks compared block by block (no torch).

Layers are matched by scope name. A layer is changed when its op, label, output shape, params or
MACs differ; a layer only in one network is added or removed, except that an unmatched pair in
the same block with the same op, label, shape and params is a rename (a relu that moved from
`layer1.0.5` to `layer1.0.6` because a shortcut took a position), not a change. Layers are
grouped into blocks: the innermost template instance around them (`layer1.0`, `Mixed_5b`), else
their innermost named block, or, with `depth`, their block at that nesting level. For each
block with a change: its params, MACs, activation memory, output shape and receptive field in
both networks, from the cost analysis (`netc.analysis.cost`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from netc.analysis.cost import Cost, CostReport, HasFields, NodeCost, analyse, subtotal

TOP = "(top level)"


@dataclass
class LayerChange:
    status: str  # 'added' | 'removed' | 'changed' | 'renamed'
    a: NodeCost | None
    b: NodeCost | None
    fields: list[str] = field(default_factory=list)  # what differs, for 'changed'

    @property
    def scope(self) -> str:
        return (self.b or self.a).scope


@dataclass
class Side(HasFields):
    """A block as one network has it."""

    label: str
    cost: Cost
    shape: tuple
    fields: tuple  # its output's receptive field along H and W (netc.analysis.cost.Field)


@dataclass
class BlockChange:
    scope: str
    status: str  # 'added' | 'removed' | 'changed'
    a: Side | None
    b: Side | None
    layers: list[LayerChange]

    def delta(self, what: str) -> int:
        return getattr(self.b.cost if self.b else Cost(), what) - getattr(self.a.cost if self.a else Cost(), what)


@dataclass
class Diff:
    a: CostReport
    b: CostReport
    blocks: list[BlockChange]  # changed blocks only, in the order of b (removed ones after their a-neighbours)

    @property
    def layers(self) -> list[LayerChange]:
        return [c for b in self.blocks for c in b.layers]


def _key(r: NodeCost):
    return (r.op, r.label, r.shape, r.cost.params, r.cost.macs)


def _what_changed(a: NodeCost, b: NodeCost) -> list[str]:
    names = ("op", "label", "shape", "params", "MACs")
    return [n for n, x, y in zip(names, _key(a), _key(b)) if x != y]


def block_of(row: NodeCost, report: CostReport, depth: int | None) -> str:
    if depth is not None:
        chain = row.blocks[:depth]
        return chain[-1] if chain else TOP
    uses = [s for s in row.blocks if report.blocks[s].kind == "use"]
    return uses[-1] if uses else (row.blocks[-1] if row.blocks else TOP)


def _side(report: CostReport, scope: str, rows: list[NodeCost]) -> Side:
    last = next((r for r in reversed(rows) if not r.aux), rows[-1])
    b = report.blocks.get(scope)
    return Side(b.label if b else "", subtotal(rows), last.shape, last.fields)


def diff(a_net, b_net, depth: int | None = None, dtype: str = "float32") -> Diff:
    a, b = analyse(a_net, dtype), analyse(b_net, dtype)
    rows_a, rows_b = {r.scope: r for r in a.rows}, {r.scope: r for r in b.rows}
    members: dict[str, tuple[list, list]] = {}
    order: list[str] = []
    for report, rows, i in ((b, b.rows, 1), (a, a.rows, 0)):
        for r in rows:
            blk = block_of(r, report, depth)
            if blk not in members:
                members[blk] = ([], [])
                order.append(blk)
            members[blk][i].append(r)
    out = []
    for blk in order:
        in_a, in_b = members[blk]
        changes = _layer_changes(in_a, in_b, rows_a, rows_b)
        if not any(c.status != "renamed" for c in changes):
            continue
        status = "added" if not in_a else "removed" if not in_b else "changed"
        out.append(BlockChange(blk, status, _side(a, blk, in_a) if in_a else None,
                               _side(b, blk, in_b) if in_b else None, changes))
    return Diff(a, b, out)


def _layer_changes(in_a, in_b, rows_a, rows_b) -> list[LayerChange]:
    changes, removed, added = [], [], []
    for r in in_b:
        other = rows_a.get(r.scope)
        if other is None:
            added.append(r)
        elif _key(other) != _key(r):
            changes.append(LayerChange("changed", other, r, _what_changed(other, r)))
    removed = [r for r in in_a if r.scope not in rows_b]
    unmatched = {}
    for r in removed:
        unmatched.setdefault(_key(r), []).append(r)
    for r in added:
        twins = unmatched.get(_key(r))
        if twins:
            changes.append(LayerChange("renamed", twins.pop(0), r))
        else:
            changes.append(LayerChange("added", None, r))
    changes += [LayerChange("removed", r, None) for rs in unmatched.values() for r in rs]
    position = {r.scope: i for i, r in enumerate(in_b)}
    position_a = {r.scope: i for i, r in enumerate(in_a)}
    changes.sort(key=lambda c: (position.get(c.b.scope, -1) if c.b else position_a.get(c.a.scope, 0) + 0.5))
    return changes
