"""Growing concatenations (DenseNet's dense block) as blocks that each concatenate their input.

A dense block runs sibling blocks B1..Bn on a growing list: Bk's first op concatenates the run's
input x0 and the results o1..ok-1 of the blocks before it, and the run is followed by the cat of
x0, o1..on. Traced as written, every block reads every earlier one (no two blocks are alike: a
`from:` list per block). Since cat(cat(x0..ok-1), ok) == cat(x0..ok), the same computation is a
chain: Bk reads Bk-1's result, concatenated with its own as `concat: [identity, body]`, so the
blocks unify into one template and repeat. Only where that is exact: each ok is read by nothing
but the run's cats, and the closing cat reads them all in order. The concatenations are
functions, not modules, so module names, registration order and hook order stay the source's.
"""
from __future__ import annotations

from netc.interop.structure import Block
from netc.interop.trace import TracedOp, _Value


def rewrite(root: Block, protected: set) -> int:
    """Rewrite every growing run in the tree in place; returns how many runs. `protected`:
    ids of values that must keep their node (named outputs)."""
    ops = list(root.ops)
    readers: dict[int, list] = {}
    for op in ops:
        for v in op.inputs:
            readers.setdefault(id(v), []).append(op)
    count, queue = 0, [root]
    for block in queue:
        start = 0
        while start < len(block.items):
            end = _run(block.items, start, readers, protected)
            if end is None:
                start += 1
                continue
            _chain(block, start, end, readers)
            count += 1
            start = end
        queue.extend(item for item in block.items if isinstance(item, Block))
    return count


def _first_op(block: Block):
    first = block.items[0] if block.items else None
    return first if isinstance(first, TracedOp) else None


def _run(items: list, start: int, readers: dict, protected: set):
    """End index (exclusive) of the growing run of blocks at items[start], or None: at least
    two blocks, block k >= 2 opening with cat(x0, o1..ok-1)."""
    head = items[start]
    if not isinstance(head, Block) or _first_op(head) is None or len(_first_op(head).inputs) != 1:
        return None
    x0 = _first_op(head).inputs[0]
    outs, end = [head.out], start + 1
    while end < len(items) and isinstance(items[end], Block):
        first = _first_op(items[end])
        if first is None or first.op != "cat" or first.inputs != [x0, *outs]:
            break
        outs.append(items[end].out)
        end += 1
    closing = items[end] if end < len(items) else None
    if end - start < 2 or not (isinstance(closing, TracedOp) and closing.op == "cat"
                               and closing.inputs == [x0, *outs]) or id(closing.node) in protected:
        return None
    cats = {id(items[k].items[0]) for k in range(start + 1, end)} | {id(closing)}
    for o in outs:
        if id(o) in protected or any(id(r) not in cats for r in readers.get(id(o), [])):
            return None
    return end


def _chain(block: Block, start: int, end: int, readers: dict) -> None:
    """Blocks items[start:end] as a chain, each closing with cat(its input, its result); the run's closing cat goes."""
    items = block.items
    x0 = _first_op(items[start]).inputs[0]
    entry = x0
    for k in range(start, end):
        b = items[k]
        first = _first_op(b)
        scope = first.scope if not first.named else f"{b.path}.cat"
        if k > start or (first.op in ("identity", "cat") and not first.named):
            b.items.pop(0)  # the cat of the list so far: its value is now the block's input
            _substitute(readers.get(id(first.node), []), first.node, entry)
        joined = TracedOp("cat", {}, scope, first.parents, [entry, b.out], _Value(f"{scope}:grown"), "", False)
        b.items.append(joined)
        entry = joined.node
    closing = items.pop(end)  # cat(x0, o1..on): the last block's result now
    _substitute(readers.get(id(closing.node), []), closing.node, entry)


def _substitute(ops: list, old, new) -> None:
    for op in ops:
        op.inputs = [new if v is old else v for v in op.inputs]
