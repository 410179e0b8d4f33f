"""The named scopes of the IR as a tree of boxes, each with its data flow in execution order.

A box is one named block (template instance, repeat, named seq/concat/residual/side) or the
network itself: its own op nodes, its child boxes, the values that enter and leave it, and its
items (ops and child boxes) ordered by their dependencies, ties broken by the spec's order. A
box that is a plain chain (one input, each item consuming the previous one's result) can be
an `nn.Sequential`; the code generator turns every other box into a class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netc.errors import error
from netc.ir.sized import SIZED

# parameter-free joins and views written as expressions, not modules
INLINE_OPS = {"add", "cat", "scale", "mul", "chunk", "slice"}


@dataclass(eq=False)
class Box:
    """A named scope of the IR: its direct op nodes and child boxes."""

    scope: str
    local: str
    block: Any
    parent: Box | None
    ops: list[int] = field(default_factory=list)
    children: list[Box] = field(default_factory=list)
    nodes: set[int] = field(default_factory=set)  # every op node inside, nested included
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    items: list = field(default_factory=list)  # ('op', nid) | ('box', Box), in execution order
    chain: bool = False
    aux: bool = False
    instance: Any = None  # set by the code generator: the class instance this box becomes


def local_name(data, nid: int, box: Box) -> str:
    """An op's name inside its box (the last part of its scope)."""
    scope = data[nid].scope
    return scope[len(box.scope) + 1:] if box.scope else scope


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
        owner = {nid: ("op", nid) for nid in box.ops}
        for child in box.children:
            for nid in child.nodes:
                owner[nid] = ("box", child)
        # order items by dependencies, ties by first node id (the spec's order)
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
        while pending:
            for k in pending:
                if deps[k] <= done:
                    order.append(k)
                    done.add(k)
                    pending.remove(k)
                    break
            else:
                stuck = [items[k] for k in pending]
                blocks = [it for kind, it in stuck if kind == "box"]
                names = ", ".join(f"'{it.scope}'" if kind == "box" else f"'{self.data[it].scope}'"
                                  for kind, it in stuck)
                raise error("codegen", f"the data flow leaves block '{blocks[0].scope}' and re-enters it "
                            f"(through {names}); generated code cannot call it as one module",
                            blocks[0].block.loc, "take the 'from:' input from outside the block, "
                            "or leave the block unnamed")
        box.items = [items[k] for k in order]
        box.aux = all(self.data[n].aux for n in inside) if inside else False
        box.chain = self._is_chain(box)

    def _is_chain(self, box: Box) -> bool:
        if box.parent is None or (box.block is not None and box.block.kind == "use"):
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
