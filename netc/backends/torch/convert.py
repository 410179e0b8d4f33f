"""Weight transfer between two compiled specs whose layers correspond.

Consumes two Networks (source and destination) and a state_dict of the source; produces a
state_dict of the destination. The dense evaluation of Simonyan & Zisserman 2014, 3.2 is the
motivating case: VGG's first FC layer becomes a 7x7 conv, the other two 1x1 convs.

Correspondence of the layers that hold tensors (parameters or buffers), in this order:
1. the destination spec's `mapping:` (its module -> the source's module);
2. equal module paths;
3. the rest by position, when as many remain on both sides (unambiguous); otherwise refused.
Each pair's tensors must agree in their names and shapes, except that a linear weight becomes
a conv weight (and back) when the linear's flattened input is exactly the conv's window:
(C, kh, kw) = the shape the linear's input had before `flatten` (C, 1, 1 without one).
"""
from __future__ import annotations

from netc.errors import Loc, error

# ops that keep a flattened vector's layout: walked through to find what a linear's input was
_LAYOUT_KEEPING = {"dropout", "relu", "identity", "flatten"}


def _tensors(network) -> dict[str, dict[str, tuple[int, ...]]]:
    """Per layer scope holding tensors: {suffix: shape}, from the module built on `meta`."""
    state = network.build(device="meta", init=False).state_dict()
    scopes = {d.scope: nid for nid, d in network.nodes() if d.params or d.buffers}
    out: dict[str, dict[str, tuple[int, ...]]] = {s: {} for s in scopes}
    for key, value in state.items():
        scope, _, suffix = key.rpartition(".")
        while scope and scope not in out:  # nested module inside one op (e.g. a separable conv)
            scope, _, head = scope.rpartition(".")
            suffix = f"{head}.{suffix}"
        if scope:
            out[scope][suffix] = tuple(value.shape)
    return {s: t for s, t in out.items() if t}


def _by_scope(network) -> dict[str, dict]:
    return {d.scope: d for _, d in network.nodes()}


def _node(network, scope: str) -> dict:
    return next(d for _, d in network.nodes() if d.scope == scope)


def _window_of_linear_input(network, scope: str) -> tuple[int, ...]:
    """(C, H, W) a linear's input had before it was flattened; (n, 1, 1) for a plain vector."""
    g = network.graph
    d = _node(network, scope)
    nid = d.inputs[0]
    while nid and g.node(nid).op in _LAYOUT_KEEPING:
        if g.node(nid).op == "flatten":
            shape = g.node(g.node(nid).inputs[0]).shape
            return tuple(shape) if len(shape) == 3 else (shape[0], 1, 1)
        nid = g.node(nid).inputs[0]
    shape = g.node(nid).shape
    return tuple(shape) if len(shape) == 3 else (shape[0], 1, 1)


def correspondence(src, dst, src_t=None, dst_t=None) -> list[tuple[str, str]]:
    """(destination scope, source scope) for every destination layer holding tensors."""
    src_t, dst_t = src_t or _tensors(src), dst_t or _tensors(dst)
    mloc = dst.source.value_loc("mapping", default=Loc(dst.file))
    pairs: dict[str, str] = {}
    for d_scope, s_scope in dst.spec.mapping.items():
        where = dst.source.value_loc("mapping", d_scope, default=mloc)
        if d_scope not in dst_t:
            raise error("convert", f"mapping names '{d_scope}', which is not a layer with weights in {dst.name}",
                        where, "map the module paths of conv, linear and batch-norm layers")
        if s_scope not in src_t:
            raise error("convert", f"mapping takes '{d_scope}' from '{s_scope}', which is not a layer with "
                                   f"weights in {src.name}", where, "see `netc table` of the source for its layers")
        pairs[d_scope] = s_scope
    taken = set(pairs.values())
    for scope in dst_t:
        if scope not in pairs and scope in src_t and scope not in taken:
            pairs[scope] = scope
            taken.add(scope)
    rest_d = [s for s in dst_t if s not in pairs]
    rest_s = [s for s in src_t if s not in taken]
    if len(rest_d) != len(rest_s):
        first = rest_d[0] if rest_d else None
        where = _node(dst, first).loc if first else Loc(dst.file)
        what = (f"'{first}' and {len(rest_d) - 1} more layers of {dst.name}" if first else f"no layer of {dst.name}")
        raise error("convert", f"{what} have no counterpart: {len(rest_d)} unmatched layers with weights against "
                               f"{len(rest_s)} in {src.name} ({', '.join(rest_s[:3])}{'…' if len(rest_s) > 3 else ''})",
                    where, "declare the correspondence with a `mapping:` in the destination spec")
    pairs.update(zip(rest_d, rest_s))
    return [(d, pairs[d]) for d in dst_t]


def convert_state_dict(src, dst, state: dict) -> dict:
    """`state` (a state_dict of `src`) as a state_dict of `dst`; NetcError where layers cannot correspond."""
    src_t, dst_t = _tensors(src), _tensors(dst)
    expected = {f"{s}.{k}": shape for s, t in src_t.items() for k, shape in t.items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or extra or wrong:
        parts = [f"{label}: {', '.join(keys[:3])}{'…' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", extra), ("of another shape", wrong)) if keys]
        raise error("convert", f"the weights are not a state_dict of {src.name}: " + "; ".join(parts),
                    Loc(src.file), "pass the source spec the weights were trained with (and its --set values)")
    out = {}
    d_nodes, s_nodes = _by_scope(dst), _by_scope(src)
    for d_scope, s_scope in correspondence(src, dst, src_t, dst_t):
        d_node, s_node = d_nodes[d_scope], s_nodes[s_scope]
        if set(dst_t[d_scope]) != set(src_t[s_scope]):
            raise error("convert", f"'{d_scope}' ({d_node.op}) has tensors {sorted(dst_t[d_scope])}, but "
                                   f"'{s_scope}' ({s_node.op}) of {src.name} has {sorted(src_t[s_scope])}",
                        d_node.loc, "a layer takes the weights of a layer of the same kind (bias: alike)",
                        d_node.via)
        for suffix, shape in dst_t[d_scope].items():
            out[f"{d_scope}.{suffix}"] = _fit(state[f"{s_scope}.{suffix}"], shape, src, s_node, dst, d_node, suffix)
    return out


def _fit(tensor, shape, src, s_node, dst, d_node, suffix):
    if tuple(tensor.shape) == shape:
        return tensor.clone()
    ops = (s_node.op, d_node.op)
    if suffix == "weight" and ops == ("linear", "conv"):
        window = _window_of_linear_input(src, s_node.scope)
        if (shape[0],) + window == (tensor.shape[0], *shape[1:]):
            return tensor.reshape(shape).clone()
        why = f"its flattened input is {'×'.join(map(str, window))}, the conv's window {'×'.join(map(str, shape[1:]))}"
    elif suffix == "weight" and ops == ("conv", "linear"):
        window = _window_of_linear_input(dst, d_node.scope)
        if (tensor.shape[0],) + window == (shape[0], *tensor.shape[1:]):
            return tensor.reshape(shape).clone()
        why = f"the linear's flattened input is {'×'.join(map(str, window))}, the conv's window " \
              f"{'×'.join(map(str, tensor.shape[1:]))}"
    else:
        why = "only a linear weight and a conv weight over its input's window can be reshaped into each other"
    raise error("convert", f"'{d_node.scope}.{suffix}' is {'×'.join(map(str, shape))}, but '{s_node.scope}."
                           f"{suffix}' of {src.name} is {'×'.join(map(str, tensor.shape))}: {why}",
                d_node.loc, "the layers do not correspond; check the channels and the input size, or the "
                               "`mapping:`", d_node.via)
