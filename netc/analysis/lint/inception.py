"""Rules from Inception-v3's design principles (Szegedy et al. 2015, "Rethinking the Inception
Architecture for Computer Vision", §2, §3, §5)."""
from __future__ import annotations

from itertools import pairwise

from netc.analysis.lint.registry import Hit, change, conv_cost, rule
from netc.ops import REGISTRY, fmt_shape, numel
from netc.ops.base import pair

# §3.2: asymmetric factorisation "does not work well on early layers, but gives very good results
# on medium grid-sizes (on m×m feature maps, where m ranges between 12 and 20)"
MEDIUM_GRID = range(12, 21)
BOTTLENECK_FACTOR = 8  # a one-step drop beyond a stride-2 halving's 4x (with rounding slack)


def plain_convs(ctx, min_k: int):
    """Square k×k convs (k >= min_k, odd) with stride 1, no dilation and no groups: the ones a
    factorisation replaces exactly (same receptive field and output grid)."""
    for nid, d in ctx.ops("conv"):
        a = d.attrs
        k = pair(a.k)
        if k[0] == k[1] >= min_k and k[0] % 2 and pair(a.s) == (1, 1) and pair(a.d) == (1, 1) and a.groups == 1:
            yield nid, d, k[0]


def _saving(ctx, nid, params, macs):
    c = ctx.cost[nid].cost
    return {"params": params - c.params, "MACs": macs - c.macs}, c


@rule("NL101", "representational bottleneck", "Szegedy et al. 2015 §2, principle 1", "warning")
def bottleneck(ctx):
    """The representation size C·H·W along the trunk (the tensors every path to the output passes
    through) shrinks more than 8x in one step while it still has a spatial grid: "avoid
    representational bottlenecks, especially early in the network"; a stride-2 halving (4x) is
    the gentle decrease the paper allows."""
    trunk = [0] + ctx.trunk
    for prev, cur in pairwise(trunk):
        a, b = ctx.node[prev].shape, ctx.node[cur].shape
        if len(b) != 3 or b[1] * b[2] == 1 or numel(b) * BOTTLENECK_FACTOR >= numel(a):
            continue
        yield Hit(cur, f"the representation shrinks {numel(a) / numel(b):.0f}x in one step: {fmt_shape(a)} "
                       f"({numel(a):,}) -> {fmt_shape(b)} ({numel(b):,})",
                  "reduce the grid by at most 2x per step, and widen the channels as it shrinks")


@rule("NL102", "factorise a large kernel into 3×3 convs", "Szegedy et al. 2015 §3.1; Simonyan & Zisserman 2014 §2.3",
      "note")
def large_kernel(ctx):
    """A k×k conv (k >= 5, stride 1) that a stack of (k-1)/2 3×3 convs with the same output
    channels would replace with the same receptive field and fewer MACs (5×5 -> two 3×3: 28%
    fewer when channels are equal; 7×7 -> three 3×3: 27C² weights instead of 49C²). Fires only
    where the stack is cheaper, and not on medium grids, where NL103's factorisation applies.
    Strided kernels (AlexNet's 11×11/4 and ResNet's 7×7/2 stems) are left alone: a stack with the
    stride on its first conv would not keep the receptive field."""
    for nid, d, k in plain_convs(ctx, 5):
        a, shape, inp = d.attrs, d.shape, ctx.in_shape(nid)
        if shape[1] in MEDIUM_GRID and shape[2] in MEDIUM_GRID:
            continue
        n, hw = (k - 1) // 2, shape[1:]
        p1, m1 = conv_cost(inp, hw, a.out, (3, 3), bias=a.bias)
        pn, mn = conv_cost((a.out, *hw), hw, a.out, (3, 3), bias=a.bias)
        saving, c = _saving(ctx, nid, p1 + (n - 1) * pn, m1 + (n - 1) * mn)
        if saving["MACs"] >= 0:
            continue
        yield Hit(nid, f"{k}x{k} conv ({inp[0]} -> {a.out} channels) could be {n} stacked 3x3 convs "
                       "with the same receptive field",
                  f"factorise into {n} 3x3 convs of {a.out} channels: {change('MACs', c.macs, c.macs + saving['MACs'])}"
                  f", {change('params', c.params, c.params + saving['params'])}", saving)


@rule("NL103", "factorise n×n into 1×n and n×1 on a medium grid", "Szegedy et al. 2015 §3.2", "note")
def asymmetric(ctx):
    """A k×k conv (k >= 5, stride 1) on a 12..20 grid, where the paper replaces n×n by 1×n
    followed by n×1 (its 17×17 modules use n = 7): 2n instead of n² weights per channel pair.
    3×3 is left out: on the catalogue it would fire on every ResNet's and VGG's 14×14 stage, which
    the paper does not claim to improve."""
    for nid, d, k in plain_convs(ctx, 5):
        a, shape, inp = d.attrs, d.shape, ctx.in_shape(nid)
        if shape[1] not in MEDIUM_GRID or shape[2] not in MEDIUM_GRID:
            continue
        hw = shape[1:]
        p1, m1 = conv_cost(inp, hw, a.out, (1, k), bias=a.bias)
        p2, m2 = conv_cost((a.out, *hw), hw, a.out, (k, 1), bias=a.bias)
        saving, c = _saving(ctx, nid, p1 + p2, m1 + m2)
        if saving["MACs"] >= 0:
            continue
        yield Hit(nid, f"{k}x{k} conv on a {hw[0]}x{hw[1]} grid could be a 1x{k} conv followed by a {k}x1 conv",
                  f"factorise: {change('MACs', c.macs, c.macs + saving['MACs'])}, "
                  f"{change('params', c.params, c.params + saving['params'])}", saving)


@rule("NL104", "pooling before a channel expansion", "Szegedy et al. 2015 §5, Fig. 9-10", "note")
def pool_then_expand(ctx):
    """A strided pooling whose only consumer is a conv that at least doubles the channels: the
    pooled tensor is a representational bottleneck (Fig. 9, left). Fig. 10's efficient grid
    reduction computes the new channels with a stride-2 conv in parallel with the pool and
    concatenates them; the suggestion counts that conv's MACs against the expanding conv's."""
    for nid, d in ctx.ops("maxpool", "avgpool"):
        _, s, _, _ = REGISTRY[d.op].geometry(d.attrs)
        nxt = ctx.only_consumer(nid)
        if s == (1, 1) or nxt is None or ctx.node[nxt].op != "conv":
            continue
        inp, pooled, conv = ctx.in_shape(nid), d.shape, ctx.node[nxt]
        grow = conv.attrs.out - pooled[0]
        if conv.attrs.out < 2 * pooled[0] or conv.attrs.groups != 1:
            continue
        kc = pair(conv.attrs.k)
        _, macs = conv_cost(inp, conv.shape[1:], grow, kc)
        before = ctx.cost[nxt].cost.macs
        yield Hit(nid, f"pooling {fmt_shape(inp)} to {fmt_shape(pooled)} before the conv '{conv.scope}' expands it "
                       f"to {fmt_shape(conv.shape)}: the pooled tensor is a bottleneck",
                  f"a stride-2 {kc[0]}x{kc[1]} conv to {grow} channels beside the pool, concatenated: "
                  f"{change('MACs', before, macs)} for the expansion", {"MACs": macs - before})
