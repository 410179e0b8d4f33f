"""Training-only side heads (auxiliary classifiers) recovered as `side:` layers.

A model whose eval forward skips submodules that hold weights (torchvision's GoogLeNet and
Inception3 with aux_logits=True) is traced again in training mode, where its forward returns the
main output and the heads' outputs; a namedtuple's field names become the spec's output names.
Each head must be one submodule of the region that reads the trunk and that nothing else reads.
It becomes `{name, from, side: {seq}, output, aux: true}`, written where the source registers
the submodule (so the state_dict keeps its order); the main path after it resumes with `from:`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Heads:
    main: str                 # the main output's name
    names: list               # every output's name, in the order the training forward returns them
    by_node: dict             # id(fx node) -> output name, for the side heads


def training_trace(module, where: str, input_shape=None):
    """(ops, main node, Heads, placeholder) of the training forward, or None if it returns one value."""
    from netc.interop.trace import trace

    was = module.training
    module.train()
    try:
        ops, returned, placeholder = trace(module, where, several=True, input_shape=input_shape)
    finally:
        module.train(was)
    if not isinstance(returned, tuple):
        return None
    fields = list(getattr(returned, "_fields", ())) or [f"out{k}" for k in range(len(returned))]
    main = next((k for k, r in enumerate(returned) if r is ops[-1].node), None)
    if main is None:
        return None
    by_node = {id(r): fields[k] for k, r in enumerate(returned) if k != main}
    return ops, returned[main], Heads(fields[main], fields, by_node), placeholder


def place(layers: list, sides: list, order: dict, parent: str) -> list:
    """`layers` with each side layer (name, input name, layer) inserted after the last layer whose
    module the source registers before the head's, and not before the layer it reads; the main
    layer after it reads its predecessor through `from:`."""
    out = list(layers)
    for name, source, side in sides:
        rank = order.get(_path(parent, name), len(order))
        pos, after_source = 0, 0
        for k, layer in enumerate(out):
            own = layer.get("name") if isinstance(layer, dict) else None
            if own is None:
                continue
            if own == source:
                after_source = k + 1
            if order.get(_path(parent, own), -1) < rank:
                pos = k + 1
        pos = max(pos, after_source)
        before = next((x for x in reversed(out[:pos]) if not (isinstance(x, dict) and "side" in x)), None)
        if pos < len(out) and isinstance(before, dict) and "name" in before:
            nxt = out[pos]
            nxt = {nxt: {}} if isinstance(nxt, str) else nxt
            if "from" not in nxt:
                nxt = {"name": nxt["name"], "from": before["name"], **nxt} if "name" in nxt else \
                    {"from": before["name"], **nxt}
            out[pos] = nxt
        elif pos < len(out):
            pos = after_source  # no named predecessor to resume from: run the head where it reads
        out.insert(pos, side)
    return out


def _path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name
