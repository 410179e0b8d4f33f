"""The backbone contract in generated code: which feature maps its factory can return.

Consumes a compiled network; produces its default feature points (`netc.analysis.features`) as
(module name, reduction) pairs for the file's `FEATURES`, or None where a point is not a module
the generated forward calls once (an inline add or cat, an activation module shared by several
calls): the generated `features_only` cuts the traced forward at module outputs.
"""
from __future__ import annotations

from collections import Counter

from netc.analysis.features import default_features
from netc.backends.codegen.names import is_attribute
from netc.backends.codegen.scopes import INLINE_OPS, Box, local_name


def backbone_points(network, root: Box) -> list[tuple[str, int]] | None:
    points = default_features(network)
    data = network.graph.node_table()
    uses = Counter(d.scope for _, d in network.nodes())
    owner = {nid: box for box in _boxes(root) for nid in box.ops}
    by_scope = {d.scope: nid for nid, d in network.nodes()}

    def own_module(name: str) -> bool:
        """A block is a module; an op is one of its own unless it is written inline (add, cat) or
        is a parameter-free layer a class shares between calls (`self.relu`)."""
        if name in network.graph.blocks:
            return True
        nid = by_scope[name]
        d, box = data[nid], owner[nid]
        local = local_name(data, nid, box)
        named = is_attribute(local) and not local.startswith("_")
        return uses[name] == 1 and d.op not in INLINE_OPS and (box.chain or d.params or d.buffers or named)

    if not points or not all(own_module(f.name) for f in points):
        return None
    return [(f.name, f.reduction) for f in points]


def _boxes(box: Box):
    yield box
    for child in box.children:
        yield from _boxes(child)
