"""Rules from VGG (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks for Large-Scale
Image Recognition"). Its §2.3 rule, three 3×3 convs for a 7×7, is NL102 (with Inception-v3's 5×5)."""
from __future__ import annotations

from netc.analysis.lint.registry import Hit, rule
from netc.ops import fmt_shape

ADAPTIVE = ("adaptive_avgpool", "adaptive_maxpool")


@rule("NL201", "fully connected head fixes the input size", "Simonyan & Zisserman 2014 §3.2", "note")
def fc_head(ctx):
    """A linear layer over a flattened C×H×W map with H·W > 1 accepts one input size only. VGG's
    dense evaluation turns it into an H×W conv (and later linears into 1×1 convs) with the same
    weights, so the network runs on any larger input and returns a class score map. A map that an
    adaptive pooling produces already has a fixed size whatever the input, so it is left alone."""
    adaptive, above = adaptive_grids(ctx), {}
    for nid, d in ctx.ops("linear"):
        flat = d.inputs[0]
        if ctx.node[flat].op == "dropout":
            flat = past_dropouts(ctx, flat, above)
        if ctx.node[flat].op != "flatten":
            continue
        shape = ctx.in_shape(flat)
        if len(shape) != 3 or shape[1] * shape[2] == 1 or adaptive[ctx.node[flat].inputs[0]]:
            continue
        size = "x".join(map(str, ctx.network.input_shape[1:]))
        yield Hit(nid, f"a fully connected layer over the flattened {fmt_shape(shape)} map fixes the input to {size}",
                  f"write it as a {shape[1]}x{shape[2]} conv to {d.attrs.out} channels (same "
                  f"{ctx.cost[nid].cost.params:,} params) and the linears after it as 1x1 convs, then evaluate "
                  "densely on larger inputs")


def adaptive_grids(ctx) -> dict[int, bool]:
    """Per node: whether its grid is set by an adaptive pooling upstream (through ops that keep
    the grid), in one pass in execution order (a walk back from each linear is quadratic)."""
    out = {0: False}
    for nid in ctx.order:
        d = ctx.node[nid]
        src = d.inputs[0] if d.inputs else 0
        out[nid] = d.op in ADAPTIVE or (src != 0 and ctx.node[src].shape[1:] == d.shape[1:] and out[src])
    return out


def past_dropouts(ctx, nid: int, memo: dict[int, int]) -> int:
    """The first node above a chain of dropouts; `memo` keeps each walked chain's top, so linears
    sharing a chain walk it once."""
    chain = []
    while ctx.node[nid].op == "dropout" and nid not in memo:
        chain.append(nid)
        nid = ctx.node[nid].inputs[0]
    top = memo.get(nid, nid)
    memo.update(dict.fromkeys(chain, top))
    return top
