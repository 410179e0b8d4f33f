"""The lint rule registry: one `Rule` per design principle, each with its source and its check.

A check is a function of a `Context` (the compiled network, its cost analysis and graph facts
computed once) that yields `Hit`s: the node that causes the finding, the message and, where the
rule has one, a suggestion with the numbers it would change (`saving`, from netc's own cost
functions). Adding a rule is adding one decorated function in one of the rule modules.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from netc.analysis.cost import CostReport, NodeCost, analyse
from netc.errors import Loc

SEVERITIES = ("note", "warning", "error")  # ascending; also SARIF's result levels


@dataclass(frozen=True)
class Hit:
    """What a check reports: the node at fault, what is wrong, and what to do about it."""

    node: int
    message: str
    suggestion: str | None = None
    saving: dict[str, int] = field(default_factory=dict)  # quantity -> change if the suggestion is taken


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    source: str  # paper and section
    severity: str
    check: Callable[[Context], Iterable[Hit]]
    doc: str  # what the rule fires on, and why


RULES: dict[str, Rule] = {}


def rule(id: str, title: str, source: str, severity: str):
    """Register a check function as rule `id`."""
    assert severity in SEVERITIES and id not in RULES, id

    def register(fn):
        doc = " ".join((fn.__doc__ or "").split())
        RULES[id] = Rule(id, title, source, severity, fn, doc)
        return fn

    return register


@dataclass(frozen=True)
class Finding:
    """One rule firing on one IR node, located at the spec layer that made the node."""

    rule: Rule
    spec: str
    scope: str
    loc: Loc | None
    via: tuple[Loc, ...]
    message: str
    suggestion: str | None
    saving: dict[str, int]

    @property
    def severity(self) -> str:
        return self.rule.severity


class Context:
    """The network as the checks see it: nodes, costs, consumers, shapes, computed once."""

    def __init__(self, network, report: CostReport | None = None):
        self.network = network
        self.graph = network.graph
        self.node = self.graph.node_table()
        self.report = report or analyse(network)
        self.cost: dict[int, NodeCost] = {r.id: r for r in self.report.rows}
        self.order = [nid for nid in network.order if nid != 0]
        consumers: dict[int, list[int]] = {nid: [] for nid in network.order}
        for nid in self.order:
            for src in self.node[nid].inputs:
                consumers[src].append(nid)
        self.consumers = consumers

    def ops(self, *names: str):
        """(id, node) of the nodes running one of the ops `names`, in execution order."""
        for nid in self.order:
            d = self.node[nid]
            if d.op in names:
                yield nid, d

    def in_shape(self, nid: int) -> tuple[int, ...]:
        return self.node[self.node[nid].inputs[0]].shape

    def only_consumer(self, nid: int) -> int | None:
        c = self.consumers.get(nid, [])
        return c[0] if len(c) == 1 else None

    @cached_property
    def main_output(self) -> int:
        return next(nid for _, nid, aux in self.network.outputs if not aux)

    @cached_property
    def trunk(self) -> list[int]:
        """The nodes every path from the input to the main output passes through, in order:
        block boundaries (a concat, a residual sum) but not the branches inside a block."""
        import networkx as nx

        idom = nx.immediate_dominators(self.graph, 0)
        chain, nid = [], self.main_output
        while nid != 0:
            chain.append(nid)
            nid = idom[nid]
        return chain[::-1]

    @cached_property
    def shortcuts(self) -> dict[int, tuple[int, list[int]]]:
        """Residual sums: add node -> (the fork it rejoins, the nodes of its shortcut path; [] = identity).

        Each input of a two-input add is followed back through single-consumer nodes to the node
        both paths leave from; the shorter path is the shortcut (a projection has fewer ops than
        the body it bypasses). Every node is walked at most once, by the sum it feeds."""
        out = {}
        for nid, d in self.ops("add"):
            if len(d.inputs) != 2:
                continue
            (fa, pa), (fb, pb) = (self._walk_back(i) for i in d.inputs)
            if fa == fb:
                out[nid] = (fa, pa if len(pa) < len(pb) else pb)
        return out

    def _walk_back(self, nid: int) -> tuple[int, list[int]]:
        path = []
        while nid != 0 and len(self.consumers[nid]) == 1 and len(self.node[nid].inputs) == 1:
            path.append(nid)
            nid = self.node[nid].inputs[0]
        return nid, path[::-1]

    @cached_property
    def in_shortcut(self) -> set[int]:
        return {n for _, path in self.shortcuts.values() for n in path}


def change(what: str, before: int, after: int) -> str:
    """'-28% MACs (-12.3 M)': the relative and absolute change of a count."""
    from netc.analysis.formats import human

    diff = after - before
    sign = "+" if diff > 0 else "-"
    pct = f"{sign}{abs(diff) / before:.0%} " if before else ""
    count = human(abs(diff)) if what == "MACs" else f"{abs(diff):,}"
    return f"{pct}{what} ({sign}{count})"


def conv_cost(in_shape, out_hw: tuple[int, int], out: int, k: tuple[int, int], groups: int = 1,
              bias: bool = False) -> tuple[int, int]:
    """(params, MACs) of a conv that is not in the network, by the conv op's own cost functions."""
    from netc.ops import REGISTRY

    op = REGISTRY["conv"]
    attrs = op.Attrs(out=out, k=list(k), groups=groups, bias=bias)
    shapes = [tuple(in_shape)]
    return op.params(attrs, shapes), op.macs(attrs, shapes, (out, *out_hw))
