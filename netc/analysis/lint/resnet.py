"""Rules about residual shortcuts and strides (He et al. 2015, "Deep Residual Learning for Image
Recognition", §3.3 and §4.1; He et al. 2019, "Bag of Tricks for Image Classification", §4.1)."""
from __future__ import annotations

from netc.analysis.cost import subtotal
from netc.analysis.lint.registry import Hit, change, rule
from netc.ops import fmt_shape
from netc.ops.base import pair


@rule("NL301", "projection shortcut where the shapes agree", "He et al. 2015 §3.3, §4.1 (option C)", "warning")
def needless_projection(ctx):
    """A residual shortcut with a conv although the block's input and output shapes agree, so an
    identity shortcut fits. The paper's option C does this everywhere and gains marginally over
    B (projections only where dimensions change); "projection shortcuts are not essential", and
    identity shortcuts add no parameters or MACs. The finding is at the shortcut's first layer."""
    for add, (fork, path) in ctx.shortcuts.items():
        if not path or not any(ctx.node[n].op in ("conv", "sepconv") for n in path):
            continue
        shape = ctx.node[add].shape
        if ctx.node[fork].shape != shape:
            continue
        c = subtotal(ctx.cost[n] for n in path)
        yield Hit(path[0], f"projection shortcut although the block keeps its shape {fmt_shape(shape)}",
                  f"use an identity shortcut: {change('params', c.params, 0)}, {change('MACs', c.macs, 0)}",
                  {"params": -c.params, "MACs": -c.macs})


@rule("NL302", "strided 1×1 conv ignores input", "He et al. 2019 §4.1 (ResNet-B)", "warning")
def strided_pointwise(ctx):
    """A 1×1 conv with stride s > 1 reads one input position in s² and ignores the rest: ResNet v1
    bottlenecks downsample this way in their first 1×1 conv, ResNet-B (torchvision's "v1.5")
    moves the stride to the 3×3 conv after it. Shortcut projections are left out (the residual
    path sees every position). The suggestion counts what moving the stride to the next conv costs."""
    for nid, d in ctx.ops("conv"):
        a = d.attrs
        s = pair(a.s)
        if pair(a.k) != (1, 1) or s == (1, 1) or nid in ctx.in_shortcut:
            continue
        ignored = 1 - 1 / (s[0] * s[1])
        nxt = next_conv(ctx, nid)
        if nxt is None or min(pair(ctx.node[nxt].attrs.k)) < max(s):
            yield Hit(nid, f"1x1 conv with stride {s[0]} ignores {ignored:.0%} of its input {fmt_shape(ctx.in_shape(nid))}")
            continue
        macs = ctx.cost[nid].cost.macs
        after = macs * s[0] * s[1]  # the 1x1 conv at full resolution; the next conv's output keeps its grid
        yield Hit(nid, f"1x1 conv with stride {s[0]} ignores {ignored:.0%} of its input {fmt_shape(ctx.in_shape(nid))}",
                  f"move the stride to '{ctx.node[nxt].scope}': {change('MACs', macs, after)} here, every input "
                  "position read", {"MACs": after - macs})


def next_conv(ctx, nid: int) -> int | None:
    """The next conv along a chain of single-consumer nodes (through norms and activations)."""
    cur = ctx.only_consumer(nid)
    while cur is not None and ctx.node[cur].op not in ("conv", "sepconv"):
        if len(ctx.node[cur].inputs) != 1:
            return None
        cur = ctx.only_consumer(cur)
    return cur
