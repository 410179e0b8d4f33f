"""The IR's scopes as nested blocks, each with the data flow a module needs to compute it.

Consumes a compiled `Network` and its outputs in forward order; produces the scope tree: every
prefix of an op's scope (`layer1`, `layer1.0`, ...) is a `Scope` whose children are in the spec's
order, and every block that can run on its own gets a `Plan` — the values entering and leaving it
and the calls of its forward, in execution order. Backends build one module per scope from it.

Two orders, as in hand-written PyTorch models:
- registration follows the spec: node ids, the order layers are written (a residual's body and
  shortcut in the order its mapping lists them), so state_dict keys come in the spec's order;
- execution follows the data flow the way Python evaluates a forward: the layers in the order
  written, each after the inputs it still needs, in argument order (a residual's body before its
  shortcut, a concat's branches left to right); an item of a list (numbered items that do not
  chain: a ModuleList a loop indexes) when a layer reads it, after the list's earlier items, so
  lists indexed in one loop alternate (Res2Net's convs[i] and bns[i]); a block whose ops then do
  not run in one stretch is a container its parent calls into. A branch the main output does not
  need runs right after the value it reads: a training-only side head
  (`aux: true`) as torchvision's GoogLeNet and Inception3 run their auxiliary heads, any other output
  also not before the main-path layers the spec writes above it (torchvision's segmentation models
  run their `aux` classifier after the main one), so dropout draws the same random numbers.

A block cannot run on its own when the data flow leaves it and comes back (a `from:` takes a
value out of the block into a layer whose result re-enters it), or when two sibling blocks each
need the other's result. Its parent then calls its parts itself; the block is only a container
and `Scope.reason` says why (the torch backend raises that when the block is called).
"""
from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field

import networkx as nx

from netc.ir.transform import RESIDUAL


@dataclass(frozen=True)
class Call:
    """One call of a block's forward: the child at `target` (a path from the block) on `inputs`."""

    target: str
    inputs: tuple[int, ...]  # IR node ids (0 = the network input)
    outputs: tuple[int, ...]  # the values it returns in training mode
    eval_outputs: tuple[int, ...]  # ... and in eval mode
    # an op owning a parameter at `target` (`OwnedParam`): the call is `apply(param, *inputs)`
    apply: str = ""


@dataclass(frozen=True)
class Plan:
    """The forward of one block: `inputs` and `outputs` are IR node ids; `aux` marks training-only
    outputs; `names` are the network's output names (the root only)."""

    scope: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    aux: tuple[bool, ...]
    calls: tuple[Call, ...]
    names: tuple[str, ...] = ()

    @property
    def eval_outputs(self) -> tuple[int, ...]:
        """An eval forward leaves out training-only outputs (unless there is nothing else)."""
        main = tuple(v for v, a in zip(self.outputs, self.aux) if not a)
        return main or self.outputs

    @property
    def has_aux(self) -> bool:
        return self.eval_outputs != self.outputs

    def schedule(self, training: bool) -> list[tuple[Call, tuple[int, ...]]]:
        """The calls a forward makes, each with the values it returns: those its outputs need."""
        wanted = set(self.outputs if training else self.eval_outputs)
        live = []
        for call in reversed(self.calls):
            made = call.outputs if training else call.eval_outputs
            if wanted.intersection(made):
                live.append((call, made))
                wanted.update(call.inputs)
        return live[::-1]


@dataclass(eq=False)
class Scope:
    """A module of the hierarchy: one op (`op` is its node id) or a block of them."""

    path: str
    name: str
    parent: Scope | None
    op: int | None = None
    block: object = None  # the IR's Block record, where the scope is a named block
    children: list[Scope] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)  # op nodes inside, in spec order
    plan: Plan | None = None
    reason: str = ""  # why a block has no plan

    def walk(self):
        stack = [self]
        while stack:
            s = stack.pop()
            yield s
            stack.extend(reversed(s.children))


def plan_blocks(network, outputs: list[tuple[str, int, bool]]) -> Scope:
    """The root scope of `network`, every callable block planned; `outputs` as (name, node, aux)
    in the order the network's forward returns them (main output first)."""
    return _Planner(network, outputs).run()


def run_order(network, outputs) -> dict[int, int]:
    """Position of every op node in execution order (see the module doc)."""
    data = network.graph.node_table()
    order: list[int] = []
    seen = {0}
    side = set()  # nodes only training-only outputs need
    for _, out, aux in outputs:
        start = len(order)
        _post_order(out, lambda nid: data[nid].inputs, seen, order)
        if aux:
            side.update(order[start:])
    main = {nid for nid in order[:order.index(outputs[0][1]) + 1]}
    order = _written_order(network, data, main, outputs[0][1]) + [nid for nid in order if nid not in main]
    written = _main_written_before(order, main)
    key: dict[int, tuple] = {0: (-1, 0, 0)}
    for k, nid in enumerate(order):
        if nid in main:
            key[nid] = (k, 0, 0)
            continue
        # right after the latest value of the main path it depends on; an output the eval forward
        # returns too (torchvision's segmentation `aux`) not before the main path the spec writes above it
        after = max(key[i][0] for i in data[nid].inputs)
        key[nid] = (after if nid in side else max(after, written(nid)), 1, k)
    return {nid: k for k, nid in enumerate(sorted(order, key=key.__getitem__))}


def _written_order(network, data, nodes: set[int], out: int) -> list[int]:
    """`nodes` (those the main output needs) as a forward's statements run: each layer in the
    order written, after the inputs it still needs (in argument order); an item of a list
    (`list_items`) runs when a layer needs it, after the list's earlier items, as a loop over
    the list in the forward that reads it runs them; a residual's shortcut when its join reads
    it, after the body, wherever the spec writes it (first, where the source registers it first)."""
    items = list_items(data)
    pulled = set(items) | shortcuts(network, data)
    try:
        return _walk(sorted(n for n in nodes if n not in pulled) + [out],
                     lambda nid: items.get(nid, []) + data[nid].inputs)
    except _Cycle:  # an earlier item needs a later one (a spec's `from:`): the lists impose no order
        return _walk(sorted(n for n in nodes if n not in pulled) + [out], lambda nid: data[nid].inputs)


class _Cycle(Exception):
    pass


def _walk(roots: list[int], inputs) -> list[int]:
    order, seen = [], {0}
    for root in roots:
        _post_order(root, inputs, seen, order)
    return order


def _post_order(root: int, inputs, seen: set[int], order: list[int]) -> None:
    """Append to `order` the nodes `root` needs that are not `seen`, each after its `inputs(node)`
    in their order (a depth-first walk)."""
    stack, active = [(root, 0, None)], set()
    while stack:
        nid, k, ins = stack.pop()
        if k == 0 and nid in seen:
            continue
        if k == 0 and nid in active:
            raise _Cycle(nid)  # only an order `inputs` adds to the data flow's can close a cycle
        active.add(nid)
        ins = inputs(nid) if ins is None else ins
        if k < len(ins):
            stack.append((nid, k + 1, ins))
            if ins[k] not in seen:
                stack.append((ins[k], 0, None))
        else:
            active.discard(nid)
            seen.add(nid)
            order.append(nid)


def list_items(data) -> dict[int, list[int]]:
    """Nodes of the items of lists -> the result of the list's item before (which runs after the
    ones before it: one edge per node, linear in the list's length). A list is a block
    with numbered children, some of which reads other than the previous one's result (a repeat
    whose iterations say `from:`, a ModuleList a loop indexes; a chain is a Sequential)."""
    children: dict[str, dict[int, list[int]]] = {}
    for nid, d in data.items():
        parts = d.scope.split(".") if nid else []
        for j in range(1, len(parts)):
            if parts[j].isdigit():
                children.setdefault(".".join(parts[:j]), {}).setdefault(int(parts[j]), []).append(nid)
    out: dict[int, tuple[str, list[int]]] = {}
    for path, by_index in children.items():
        ks = sorted(by_index)
        results = [max(by_index[k]) for k in ks]
        if len(ks) < 2 or all(_reads_only(data, by_index[b], results[i]) for i, b in enumerate(ks[1:])):
            continue
        for i, k in enumerate(ks):
            for nid in by_index[k]:
                if nid not in out or len(path) > len(out[nid][0]):  # the innermost list
                    out[nid] = (path, results[i - 1:i] if i else [])
    return {nid: before for nid, (_, before) in out.items()}


def shortcuts(network, data) -> set[int]:
    """The layers of residual shortcuts: the chain of single-use values the join reads besides its body."""
    out = set()
    for d in data.values():
        if RESIDUAL not in d.meta:
            continue
        v = d.inputs[1 - d.meta[RESIDUAL]]
        while v and v not in out and len(network.graph.succ[v]) == 1:
            out.add(v)
            v = data[v].inputs[0] if len(data[v].inputs) == 1 else 0
    return out


def _reads_only(data, nodes: list[int], value: int) -> bool:
    inside = set(nodes)
    return {i for n in nodes for i in data[n].inputs if i not in inside} == {value}


def _main_written_before(order: list[int], main: set[int]):
    """nid -> the latest post-order position of a main-path node written before it (a smaller id), or -1."""
    ids = sorted(main)
    position = {nid: k for k, nid in enumerate(order)}
    latest, best = [], -1
    for nid in ids:
        best = max(best, position[nid])
        latest.append(best)
    return lambda nid: latest[k - 1] if (k := bisect.bisect_left(ids, nid)) else -1


def schedule(items: list[list[int]], data, pos: dict[int, int]) -> tuple[list[int], set[int]]:
    """Items (each a list of op nodes) in execution order: a topological order, the one whose
    first node runs earliest (`pos`, from `run_order`) first; and those left over when their
    dependencies form a cycle."""
    owner = {nid: k for k, nodes in enumerate(items) for nid in nodes}
    deps: list[set[int]] = [set() for _ in items]
    users: list[list[int]] = [[] for _ in items]
    for k, nodes in enumerate(items):
        for nid in nodes:
            for i in data[nid].inputs:
                j = owner.get(i)
                if j is not None and j != k and j not in deps[k]:
                    deps[k].add(j)
                    users[j].append(k)
    first = [min(pos[n] for n in nodes) for nodes in items]
    waiting = [len(d) for d in deps]
    ready = [(first[k], k) for k in range(len(items)) if not waiting[k]]
    heapq.heapify(ready)
    order = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(k)
        for u in users[k]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready, (first[u], u))
    return order, set(range(len(items))) - set(order)


class _Planner:
    def __init__(self, network, outputs):
        self.network, self.outputs = network, outputs
        self.g = network.graph
        self.data = self.g.node_table()
        self.pos = run_order(network, outputs)
        self.external = {nid for _, nid, _ in outputs}

    def run(self) -> Scope:
        root = self.tree()
        names = tuple(name for name, _, _ in self.outputs)
        self.plan(root, (0,), tuple(nid for _, nid, _ in self.outputs), names)
        return root

    def tree(self) -> Scope:
        root = Scope("", "", None)
        by_path = {"": root}
        blocks = self.g.blocks

        def scope_at(path: str) -> Scope:
            if path in by_path:
                return by_path[path]
            parent_path, _, name = path.rpartition(".")
            s = Scope(path, name, scope_at(parent_path), block=blocks.get(path))
            s.parent.children.append(s)
            by_path[path] = s
            return s

        for nid in sorted(nid for nid, _ in self.network.nodes()):  # the spec's order
            path = self.data[nid].scope
            parent_path, _, name = path.rpartition(".")
            leaf = Scope(path, name, scope_at(parent_path), op=nid, nodes=[nid])
            leaf.parent.children.append(leaf)
            by_path[path] = leaf
            s = leaf.parent
            while s is not None:
                s.nodes.append(nid)
                s = s.parent
        return root

    def interface(self, box: Scope) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The values entering a block (in order of first use) and leaving it (in execution order)."""
        inside = set(box.nodes)
        ins: dict[int, None] = {}
        ordered = sorted(box.nodes, key=self.pos.__getitem__)
        for nid in ordered:
            for i in self.data[nid].inputs:
                if i not in inside:
                    ins.setdefault(i)
        outs = tuple(nid for nid in ordered
                     if nid in self.external or any(s not in inside for s in self.g.successors(nid)))
        return tuple(ins), outs

    def plan(self, box: Scope, inputs, outputs, names=()) -> None:
        items = list(box.children)
        while True:
            order, stuck = self.schedule(items)
            victims = self.victims(box, items, stuck) if stuck else self.interleaved(items)
            if not victims:
                break
            for victim in victims:
                i = items.index(victim)
                items[i:i + 1] = victim.children
        calls = []
        for it in (items[k] for k in order):
            target = it.path[len(box.path) + 1:] if box.path else it.path
            if it.op is not None:
                owned = self.data[it.op].owned
                calls.append(Call(target, tuple(self.data[it.op].inputs), (it.op,), (it.op,),
                                  owned.fn if owned else ""))
                continue
            ins, outs = self.interface(it)
            self.plan(it, ins, outs)
            calls.append(Call(target, ins, outs, it.plan.eval_outputs))
        aux = tuple(bool(self.data[v].aux) for v in outputs)
        box.plan = Plan(box.path, tuple(inputs), tuple(outputs), aux, tuple(calls), names)

    def schedule(self, items: list[Scope]) -> tuple[list[int], set[int]]:
        return schedule([it.nodes for it in items], self.data, self.pos)

    def interleaved(self, items: list[Scope]) -> list[Scope]:
        """The blocks whose ops do not run in one stretch: another item reads one of their results
        before their last op runs (Res2Net's bns[i] reads convs[i] before convs[i + 1] runs: lists
        that one loop indexes together), so no call of the block runs them in order."""
        owner = {nid: k for k, it in enumerate(items) for nid in it.nodes}
        last = {}
        for nid, k in owner.items():
            last[k] = max(last.get(k, -1), self.pos[nid])
        apart = set()
        for nid, k in owner.items():  # an op that reads a block's result before the block's last op runs
            apart.update(j for i in self.data[nid].inputs if (j := owner.get(i, k)) != k and self.pos[nid] < last[j])
        out = [items[j] for j in sorted(apart) if items[j].op is None]
        for it in out:
            it.reason = "its parts run between other layers (a list indexed in one loop beside another)"
        return out

    def victims(self, box: Scope, items: list[Scope], stuck: set[int]) -> list[Scope]:
        """The blocks to open so that the items can be ordered: in each cycle of dependencies,
        those the data flow leaves and re-enters, else the one written last."""
        g = nx.DiGraph()
        owner = {nid: k for k in stuck for nid in items[k].nodes}
        for k in stuck:
            g.add_node(k)
            for nid in items[k].nodes:
                for i in self.data[nid].inputs:
                    if owner.get(i, k) != k:
                        g.add_edge(owner[i], k)
        out = []
        region = set(box.nodes) if box.path else None
        for comp in nx.strongly_connected_components(g):
            if len(comp) < 2:
                continue
            blocks = [items[k] for k in sorted(comp) if items[k].op is None]
            found = []
            for b in blocks:
                via = self.reentry(b, region)
                if via is not None:
                    b.reason = (f"the data flow leaves it and comes back through '{self.data[via].scope}'")
                    found.append(b)
            if not found:
                last = max(blocks, key=lambda b: b.nodes[0])
                others = ", ".join(f"'{b.path}'" for b in blocks if b is not last)
                last.reason = f"it and {others} each need the other's result"
                found = [last]
            out.extend(found)
        return out

    def reentry(self, b: Scope, region: set[int] | None) -> int | None:
        """A node outside block `b` (within `region`) that takes a value from `b` and gives one back."""
        inside = set(b.nodes)
        stack = [s for n in b.nodes for s in self.g.successors(n) if s not in inside]
        seen: set[int] = set()
        while stack:
            v = stack.pop()
            if v in seen or (region is not None and v not in region):
                continue
            seen.add(v)
            for s in self.g.successors(v):
                if s in inside:
                    return v
                stack.append(s)
        return None
