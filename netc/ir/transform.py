"""Transformations of a compiled IR: lesion a residual block, reorder a stage's blocks.

The lesion and reordering experiments of Veit et al. 2016 ("Residual Networks Behave Like
Ensembles of Relatively Shallow Networks", sections 4.1-4.3) as graph rewrites: each takes a
shape-checked graph and returns a new one, shape-checked again, or raises a located NetcError.
Module scopes are kept, so a transformed network's parameters keep their state_dict keys: a
lesioned model loads the original's state_dict minus the removed body's keys, a reordered one
loads all of it.

A residual block in the IR is an `add` that expansion marks as a residual join (`RESIDUAL` in its
`meta`: the index of its body input): the `add` of a `residual:` construct, or an `add` inside a
template that joins a value computed there with the instance's own input (`from: [body, input]`,
MobileNet's inverted residual). Other adds (two branches summed, a fusion of resolutions, a
doubling) join no body and its shortcut, whatever their names.
"""
from __future__ import annotations

import networkx as nx

from netc.errors import NetcError, did_you_mean, error
from netc.ir.graph import Graph, Output, set_inputs
from netc.ir.node import Node
from netc.ir.passes import infer_shapes, topo_order

RESIDUAL = "residual.body"  # `Node.meta` key of a residual join: the index of its body input


def is_residual_add(data: Node) -> bool:
    """The add that joins a residual's body and its shortcut (see the module's docstring)."""
    return (data.op == "add" and RESIDUAL in data.meta and len(data.inputs) == 2
            and data.inputs[0] != data.inputs[1])


def mark_block_residual(data: Node, block_input: int) -> None:
    """Mark an `add` inside a template instance that joins a value with the instance's input as a
    residual join, its body being the other value."""
    ins = data.inputs
    if len(ins) == 2 and ins[0] != ins[1] and block_input in ins:
        data.meta[RESIDUAL] = 1 - ins.index(block_input)


def residual_parts(data: Node) -> tuple[int, int]:
    """(body, shortcut): the inputs of a residual join."""
    body = data.meta[RESIDUAL]
    return data.inputs[body], data.inputs[1 - body]


def _block(g: Graph, scope: str, what: str):
    blocks = g.blocks
    if scope not in blocks:
        raise error("transform", f"{what}: the network has no block '{scope}'", None,
                    did_you_mean(scope, blocks) or "name a block by its module path, e.g. layer3.4")
    return blocks[scope]


def _inside(data: Node, scope: str) -> bool:
    return scope in data.blocks


def _reshape_checked(g: Graph, what: str, loc, hint: str) -> Graph:
    """Shapes inferred afresh over the transformed graph; a shape error is the transform's, located at the block."""
    for n in g.nodes:
        if n:
            node = g.node(n)
            node.inferred, node.shape = False, None
    try:
        infer_shapes(g, topo_order(g))
    except NetcError as exc:
        raise error("transform", f"{what} is not shape-valid: {exc.diagnostics[0].message}", loc, hint) from None
    return g


def _drop_empty_blocks(g: Graph) -> None:
    used = {b for n in g.nodes if n for b in g.node(n).blocks}
    g.blocks = {s: b for s, b in g.blocks.items() if s in used}


def residual_of(g: Graph, scope: str) -> int | None:
    """The residual add of block `scope`: the outermost one inside it, which must be unique; None
    where the block has none."""
    block = g.blocks[scope]
    adds = [n for n in g.nodes if n and _inside(g.node(n), scope) and is_residual_add(g.node(n))]
    if not adds:
        return None
    depth = min(g.node(n).scope.count(".") for n in adds)
    outer = [n for n in adds if g.node(n).scope.count(".") == depth]
    if len(outer) > 1:
        names = sorted({g.node(n).scope.rsplit(".", 1)[0] for n in outer})
        raise error("transform", f"lesion '{scope}': the block holds {len(outer)} residual blocks", block.loc,
                    f"name one of them: {', '.join(names[:4])}{', …' if len(names) > 4 else ''}")
    return outer[0]


def lesion(g: Graph, scope: str) -> tuple[Graph, list[str]]:
    """Remove the body of the residual block `scope` (its shortcut remains), or delete the plain
    layer or block `scope` (its input passed on, as Veit et al. 2016 do for VGG); the new graph
    and the scopes of the removed ops."""
    if scope not in g.blocks:
        return delete_layer(g, scope)
    add = residual_of(g, scope)
    if add is None:
        return delete_layer(g, scope)
    block = g.blocks[scope]
    body_out, shortcut = residual_parts(g.node(add))
    keep = nx.ancestors(g, shortcut) | {shortcut}
    body, todo = set(), [body_out]
    while todo:  # backwards from the body's result to where it leaves the shortcut's past
        n = todo.pop()
        if n in body or n in keep:
            continue
        body.add(n)
        todo.extend(g.node(n).inputs)
    for n in body:
        for user in g.successors(n):
            if user not in body and user != add:
                raise error("transform", f"lesion '{scope}': '{g.node(user).scope}' also uses "
                                         f"'{g.node(n).scope}' of the block's body", g.node(user).loc,
                            "a body whose results are used elsewhere cannot be removed")
    h = g.copy()
    for user in list(h.successors(add)):
        set_inputs(h, user, [shortcut if i == add else i for i in h.node(user).inputs])
    h.outputs = [Output(name, shortcut if nid == add else nid, aux) for name, nid, aux in h.outputs]
    removed = [g.node(n).scope for n in sorted(body)]
    h.remove_nodes_from(body | {add})
    _drop_empty_blocks(h)
    return _reshape_checked(h, f"lesion '{scope}'", block.loc, "the shortcut alone must give the block's "
                            "output shape"), removed


def _layer_nodes(g: Graph, scope: str) -> set[int]:
    nodes = {n for n in g.nodes if n and (g.node(n).scope == scope or _inside(g.node(n), scope))}
    if not nodes:
        scopes = sorted({g.node(n).scope for n in g.nodes if n} | set(g.blocks))
        raise error("transform", f"lesion '{scope}': the network has no layer or block '{scope}'", None,
                    did_you_mean(scope, scopes) or "name a layer or block by its module path, e.g. layer3.4")
    return nodes


def delete_layer(g: Graph, scope: str) -> tuple[Graph, list[str]]:
    """The layer or block `scope` of a plain network deleted: what used its result takes its input.
    Refused, located, where the rest would no longer fit: a shape error, or a later layer whose
    parameters would change (a conv infers its input channels)."""
    nodes = _layer_nodes(g, scope)
    loc = g.blocks[scope].loc if scope in g.blocks else g.node(min(nodes)).loc
    sources = {s for v in nodes for s in g.node(v).inputs if s not in nodes}
    exits = {v for v in nodes for u in g.successors(v) if u not in nodes} | \
            {nid for _, nid, _ in g.outputs if nid in nodes}
    if len(sources) != 1 or len(exits) != 1:
        raise error("transform", f"lesion '{scope}': it has {len(sources)} inputs and {len(exits)} results used "
                                 "outside it", loc, "only a single-input, single-output layer or block can be deleted")
    (source,), (exit_,) = sources, exits
    h = g.copy()
    for user in list(h.successors(exit_)):
        if user not in nodes:
            set_inputs(h, user, [source if i == exit_ else i for i in h.node(user).inputs])
    h.outputs = [Output(name, source if nid == exit_ else nid, aux) for name, nid, aux in h.outputs]
    h.remove_nodes_from(nodes)
    _drop_empty_blocks(h)
    what = f"lesion '{scope}' ({_shape(g, source)} -> {_shape(g, exit_)})"
    _reshape_checked(h, what, loc, "only a layer whose output has its input's shape can be deleted")
    for v in h.nodes:
        if v and h.node(v).params != g.node(v).params:
            raise error("transform", f"{what} would change the parameters of '{g.node(v).scope}', which then "
                                     f"takes {_shape(h, h.node(v).inputs[0])}", loc,
                        "only a layer whose output has its input's shape can be deleted")
    return h, [g.node(n).scope for n in sorted(nodes)]


def _shape(g: Graph, nid: int) -> str:
    return "×".join(map(str, g.node(nid).shape))


def _iterations(g: Graph, stage: str, n: int) -> list[tuple[int, int, list[int]]]:
    """(entry source, exit node, nodes) of each block of a repeat, in order; each block must be a
    single-entry single-exit piece of the chain."""
    loc = g.blocks[stage].loc
    members: list[list[int]] = [[] for _ in range(n)]
    for node in g.nodes:
        if node:
            for b in g.node(node).blocks:
                if b.startswith(stage + ".") and b.count(".") == stage.count(".") + 1:
                    i = b[len(stage) + 1:]
                    if i.isdigit() and int(i) < n:
                        members[int(i)].append(node)
    out = []
    for i, nodes in enumerate(members):
        inside = set(nodes)
        sources = {s for v in nodes for s in g.node(v).inputs if s not in inside}
        exits = {v for v in nodes for u in g.successors(v) if u not in inside}
        exits |= {nid for _, nid, _ in g.outputs if nid in inside}
        if len(sources) != 1 or len(exits) != 1:
            raise error("transform", f"reorder '{stage}': block {stage}.{i} has {len(sources)} inputs and "
                                     f"{len(exits)} results used outside it", loc,
                        "only a chain of single-input, single-output blocks can be reordered")
        out.append((sources.pop(), exits.pop(), nodes))
    for i in range(1, n):
        if out[i][0] != out[i - 1][1]:
            raise error("transform", f"reorder '{stage}': block {stage}.{i} does not take block {stage}.{i - 1}'s "
                                     "result", loc, "only a chain of blocks can be reordered")
    return out


def shape_keeping(g: Graph, stage: str) -> list[int]:
    """Indices of the stage's blocks whose output shape equals their input shape."""
    block = _block(g, stage, f"reorder '{stage}'")
    its = _iterations(g, stage, block.repeat or 0)
    return [i for i, (src, exit_, _) in enumerate(its) if g.node(src).shape == g.node(exit_).shape]


def reorder(g: Graph, stage: str, order: list[int] | None = None) -> Graph:
    """Run the blocks of repeat `stage` in `order` (position k runs block order[k]); by default
    the shape-keeping blocks in reverse, the others in place."""
    block = _block(g, stage, f"reorder '{stage}'")
    if block.kind != "repeat" or not block.repeat:
        raise error("transform", f"reorder '{stage}': '{stage}' is a {block.kind}, not a named repeat of blocks",
                    block.loc, "name a stage such as layer3 (a named 'repeat:')")
    n = block.repeat
    its = _iterations(g, stage, n)
    if order is None:
        movable = shape_keeping(g, stage)
        order = list(range(n))
        if len(movable) < 2:
            raise error("transform", f"reorder '{stage}': the stage has {len(movable)} block(s) that keep their "
                                     "input's shape, nothing to reorder", block.loc,
                        "give an order explicitly: --reorder STAGE=i,j,...")
        for i, j in zip(movable, reversed(movable)):
            order[i] = j
    if sorted(order) != list(range(n)):
        raise error("transform", f"reorder '{stage}': {order} is not a permutation of the stage's blocks 0…{n - 1}",
                    block.loc, f"give each of the {n} block indices once")
    h = g.copy()
    first_src, last_exit = its[0][0], its[-1][1]
    new_src = [first_src if k == 0 else its[order[k - 1]][1] for k in range(n)]
    for k, j in enumerate(order):
        src, _, nodes = its[j]
        for v in nodes:
            if src in g.node(v).inputs:
                set_inputs(h, v, [new_src[k] if s == src else s for s in g.node(v).inputs])
    new_exit = its[order[-1]][1]
    members = {v for _, _, nodes in its for v in nodes}
    for user in g.successors(last_exit):
        if user not in members:
            set_inputs(h, user, [new_exit if s == last_exit else s for s in h.node(user).inputs])
    h.outputs = [Output(name, new_exit if nid == last_exit else nid, aux) for name, nid, aux in h.outputs]
    what = f"reorder '{stage}' as {order}"
    _reshape_checked(h, what, block.loc, "a block that changes the shape (a stage's first, downsampling block) "
                                         "cannot move")
    for v in members:  # convs infer their input channels: a moved block must keep its parameters' shapes
        if h.node(v).params != g.node(v).params:
            raise error("transform", f"{what} changes the parameters of '{g.node(v).scope}'", block.loc,
                        "only blocks of the same input shape can trade places")
    return h
