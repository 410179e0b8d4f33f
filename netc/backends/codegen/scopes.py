"""The named scopes of the IR as a tree of boxes, each with its data flow in execution order.

A box is one named block (template instance, repeat, named seq/concat/residual/side) or the
network itself: its own op nodes, its child boxes, the values that enter and leave it, and its
items (ops and child boxes) ordered by their dependencies, ties broken by the spec's order. A
box that is a plain chain (one input, each item consuming the previous one's result) can be
an `nn.Sequential`. A box whose items are modules each called on values from outside it (Res2Net's
`convs`, `bns`; HRNet's `fuse_layers`) is a *list*: an `nn.ModuleList` (an `nn.ModuleDict` where
its children have names, not positions) that registers them, and whose items the parent's forward
calls one by one (`self.convs[i](sp)`) - the data flow may leave it and re-enter it between two
calls, as timm's Res2Net does between `convs[i]` and `bns[i]`. Its items are the parent's items.
The code generator turns every other box into a class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netc.errors import error
from netc.ir.sized import SIZED

# parameter-free joins and views written as expressions, not modules
INLINE_OPS = {"add", "cat", "scale", "mul", "chunk", "slice"}
# what an nn.ModuleDict owns beyond nn.Module (`netc.names.TORCH_OWNED`): no key of a list
DICT_OWNED = {"clear", "items", "keys", "update", "values"}


@dataclass(eq=False)
class Box:
    """A named scope of the IR: its direct op nodes and child boxes."""

    scope: str
    local: str
    block: Any
    parent: Box | None
    ops: list[int] = field(default_factory=list)
    children: list[Box] = field(default_factory=list)
    child: dict = field(default_factory=dict)  # local name -> child box
    nodes: set[int] = field(default_factory=set)  # every op node inside, nested included
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    items: list = field(default_factory=list)  # ('op', nid) | ('box', Box), in execution order
    chain: bool = False
    listed: bool = False  # a ModuleList/ModuleDict: its items are called by the parent's forward
    members: list = field(default_factory=list)  # a list's (kind, item, name) in registration order
    aux: bool = False
    instance: Any = None  # set by the code generator: the class instance this box becomes


def local_name(data, nid: int, box: Box) -> str:
    """An op's name inside its box (the last part of its scope)."""
    scope = data[nid].scope
    return scope[len(box.scope) + 1:] if box.scope else scope


def item_key(data, kind: str, it, box: Box) -> tuple[str, str]:
    """How a box refers to one of its items: its path below the box (`conv1`, `convs.0` of a list)."""
    if kind == "op":
        return "op", local_name(data, it, box)
    return "box", it.scope[len(box.scope) + 1:] if box.scope else it.scope


def item_path(key: tuple[str, str], box: Box) -> list[tuple[Box, str]]:
    """The lists an item of `box` sits in, outermost first, each with the item's name in it."""
    out, inner = [], box
    parts = key[1].split(".")
    for i, part in enumerate(parts[:-1]):
        inner = inner.child[part]
        out.append((inner, parts[i + 1]))
    return out


def scope_tree(network) -> Box:
    """The root box of a compiled `netc.api.Network`, analysed."""
    tree = _Tree(network)
    root = tree.build_tree()
    tree.analyse(root)
    return root


class _Tree:
    def __init__(self, network):
        self.network = network
        self.g = network.graph
        self.data = self.g.node_table()
        self.blocks = self.g.blocks

    def build_tree(self) -> Box:
        root = Box("", "", None, None)
        boxes = {"": root}

        def box_of(scope: str) -> Box:
            if scope in boxes:
                return boxes[scope]
            parent_scope = scope.rpartition(".")[0]
            parent = box_of(parent_scope if parent_scope in self.blocks or parent_scope == "" else
                            self._enclosing(parent_scope))
            local = scope[len(parent.scope) + 1:] if parent.scope else scope
            if "." in local:
                raise error("codegen", f"cannot generate code for the scope '{scope}': a name contains '.'",
                            self.blocks[scope].loc, "rename the layer without dots")
            b = Box(scope, local, self.blocks[scope], parent)
            boxes[scope] = b
            parent.children.append(b)
            parent.child[local] = b
            return b

        for nid, d in self.network.nodes():
            box = box_of(d.blocks[-1]) if d.blocks else root
            local = d.scope[len(box.scope) + 1:] if box.scope else d.scope
            if "." in local or not local:
                raise error("codegen", f"cannot generate code for '{d.scope}': a name contains '.'", d.loc,
                            "rename the layer without dots")
            box.ops.append(nid)
            b = box
            while b is not None:
                b.nodes.add(nid)
                b = b.parent
        return root

    def _enclosing(self, scope: str) -> str:
        while scope and scope not in self.blocks:
            scope = scope.rpartition(".")[0]
        return scope

    def analyse(self, box: Box) -> None:
        """Inputs, outputs and execution order of a box's items; chain detection."""
        for child in box.children:
            self.analyse(child)
        outs = {nid for _, nid, _ in self.g.outputs}
        inside = box.nodes
        ins: list[int] = []
        for nid in sorted(inside):
            for i in self.data[nid].inputs:
                if i not in inside and i not in ins:
                    ins.append(i)
        box.inputs = ins
        box.outputs = [nid for nid in sorted(inside)
                       if nid in outs or any(s not in inside for s in self.g.successors(nid))]
        for child in box.children:
            child.listed = self._is_list(child)
        while True:
            order, stuck = self._order(box)
            if not stuck:
                break
            # a block the data flow leaves and re-enters: opened, its items called by this forward
            blocks = [it for kind, it in stuck if kind == "box"]
            opened = [b for b in blocks if b.parent is box and self._open(b)]
            if not opened:
                names = ", ".join(f"'{it.scope}'" if kind == "box" else f"'{self.data[it].scope}'"
                                  for kind, it in stuck)
                raise error("codegen", f"the data flow leaves block '{blocks[0].scope}' and re-enters it "
                            f"(through {names}); generated code cannot call it as one module",
                            blocks[0].block.loc, "a template instance is one class with one forward: take "
                            "the 'from:' input from outside it, or write its layers in a named seq (a list "
                            "the parent's forward calls item by item)")
        box.items = order
        box.aux = all(self.data[n].aux for n in inside) if inside else False
        box.chain = self._is_chain(box)

    def _order(self, box: Box) -> tuple[list, list]:
        """The box's items (its ops, its child boxes, the items of its lists) in execution order:
        by dependencies, ties by first node id (the spec's order); and those a cycle leaves over."""
        inside = box.nodes
        owner = {nid: ("op", nid) for nid in box.ops}
        for child in box.children:
            for kind, it in child.items if child.listed else [("box", child)]:
                for nid in ([it] if kind == "op" else it.nodes):
                    owner[nid] = (kind, it)
        items = {id(v[1]) if v[0] == "box" else v[1]: v for v in owner.values()}
        first = {}
        for nid in sorted(inside):
            k = id(owner[nid][1]) if owner[nid][0] == "box" else nid
            first.setdefault(k, nid)
        deps = {k: set() for k in items}
        for nid in inside:
            k = id(owner[nid][1]) if owner[nid][0] == "box" else nid
            for i in self.data[nid].inputs:
                if i in inside:
                    ki = id(owner[i][1]) if owner[i][0] == "box" else i
                    if ki != k:
                        deps[k].add(ki)
        order, done = [], set()
        pending = sorted(items, key=lambda k: first[k])
        progress = True
        while pending and progress:
            progress = False
            for k in pending:
                if deps[k] <= done:
                    order.append(items[k])
                    done.add(k)
                    pending.remove(k)
                    progress = True
                    break
        return order, [items[k] for k in pending]

    def _is_list(self, box: Box) -> bool:
        """Its items are modules (no inline join) that each read only values from outside it."""
        for kind, it in box.items:
            if kind == "op" and self.data[it].op in INLINE_OPS:
                return False
            if any(i in box.nodes for i in (self.data[it].inputs if kind == "op" else it.inputs)):
                return False
        return self._open(box)

    def _open(self, box: Box) -> bool:
        """Make a block a list whose items its parent's forward calls, where it can be one: not a
        template's class, no parameter of its own (layer scale), children named as a ModuleDict's
        keys may be. Its inline ops (joins, slices) are written in the parent's forward."""
        if box.parent is None or box.chain or box.block is None or box.block.kind == "use" or not box.items:
            return False
        if any(self.data[nid].owned for nid in box.ops):
            return False
        members = [("op", nid, local_name(self.data, nid, box)) for nid in box.ops
                   if self.data[nid].op not in INLINE_OPS] + [("box", c, c.local) for c in box.children]
        members.sort(key=lambda m: m[1] if m[0] == "op" else min(m[1].nodes))
        box.members = members
        if not positional(box) and DICT_OWNED & {name for _, _, name in members}:
            return False
        box.listed = True
        return True

    def _is_chain(self, box: Box) -> bool:
        if box.parent is None or (box.block is not None and box.block.kind == "use"):
            return False
        if any(c.listed for c in box.children):
            return False
        if len(box.inputs) != 1 or len(box.outputs) != 1 or not box.items:
            return False
        prev = [box.inputs[0]]
        for kind, it in box.items:
            if kind == "op":
                # a parameter an op owns (layer scale) is the block's own: no nn.Sequential holds it
                if self.data[it].op in INLINE_OPS or self.data[it].owned or self.data[it].inputs != prev or \
                        SIZED in self.data[it].meta:  # its forward passes the runtime size
                    return False
                prev = [it]
            else:
                if it.inputs != prev or len(it.outputs) != 1:
                    return False
                prev = it.outputs
        return prev == box.outputs


def positional(box: Box) -> bool:
    """A list whose children are numbered 0..n-1 in order (an nn.ModuleList, not an nn.ModuleDict)."""
    return [name for _, _, name in box.members] == [str(i) for i in range(len(box.members))]
