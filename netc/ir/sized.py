"""Op attributes that follow the input size at run time: the frontend (netc.spec.symbolic) records,
for each op whose attribute it computed from `$in_h`/`$in_w` by integer arithmetic alone, that
attribute's Python source over `{H}` and `{W}`; generated code (netc.backends.codegen.sizes) writes
it on the runtime size of the tensor that binds them."""
from __future__ import annotations

SIZED = "symbolic.sized"  # `Node.meta` key: {attribute: source over `{H}`, `{W}`} (see `bound`)


def bound(node) -> int:
    """The node whose height and width `{H}` and `{W}` are in `node`'s sized attributes: its
    template instance's input, else the network's input."""
    return node.template_input if node.template_input is not None else 0
