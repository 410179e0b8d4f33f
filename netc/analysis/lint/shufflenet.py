"""Rules from ShuffleNet V2's guidelines for fast networks (Ma et al. 2018, "ShuffleNet V2:
Practical Guidelines for Efficient CNN Architecture Design", §2: G2, G3, G4). G1 (equal channel
widths) is not a rule: it contradicts Inception-v3's principle 3 (1×1 reductions before spatial
convs), which every Inception module and bottleneck in the catalogue follows on purpose."""
from __future__ import annotations

import math

from netc.analysis.lint.registry import Hit, rule
from netc.ops.base import pair

MANY_GROUPS = 8  # Table 2 compares g = 1, 2, 4, 8: at equal FLOPs, g = 8 ran at about a third of g = 1's speed on GPU
MANY_BRANCHES = 5  # Table 3 measures up to 4 parallel fragments
REDUNDANT = {("relu", "relu"), ("relu6", "relu6"), ("relu", "relu6"), ("relu6", "relu")}


def memory_access(hw: int, c_in: int, c_out: int, k: tuple[int, int], groups: int) -> int:
    """G2's memory access cost of a conv: input and output feature maps plus its weights (elements)."""
    return hw * (c_in + c_out) + c_in * c_out * k[0] * k[1] // groups


@rule("NL401", "excessive group convolution", "Ma et al. 2018 §2, G2", "warning")
def many_groups(ctx):
    """A grouped conv with 8 or more groups that is not depthwise: at the same FLOPs, more groups
    mean wider feature maps and more memory access (MAC). The suggestion compares its MAC with a
    dense conv of the same MACs and equal widths, G1's minimum."""
    for nid, d in ctx.ops("conv"):
        a = d.attrs
        c_in = ctx.in_shape(nid)[0]
        if a.groups < MANY_GROUPS or a.groups == c_in:
            continue
        k, hw = pair(a.k), d.shape[1] * d.shape[2]
        mac = memory_access(hw, c_in, a.out, k, a.groups)
        width = max(1, round(math.sqrt(c_in * a.out / a.groups)))
        dense = memory_access(hw, width, width, k, 1)
        yield Hit(nid, f"conv with {a.groups} groups: memory access {mac:,} elements, {mac / dense:.1f}x a dense "
                       f"conv of the same MACs ({width} -> {width} channels)",
                  "use fewer groups (2 or 4), or depthwise + pointwise convs", {"memory access": dense - mac})


@rule("NL402", "fragmented module", "Ma et al. 2018 §2, G3", "note")
def fragmented(ctx):
    """A concatenation of 5 or more parallel branches: each branch is a separate small kernel
    launch and synchronisation, and Table 3's 4-fragment structures already ran at about half the
    speed of one fragment on GPU."""
    for nid, d in ctx.ops("cat"):
        n = len(d.inputs)
        if n >= MANY_BRANCHES:
            yield Hit(nid, f"{n} parallel branches joined here", "merge branches, or nest them so fewer run in parallel")


@rule("NL403", "redundant element-wise op", "Ma et al. 2018 §2, G4", "warning")
def redundant_elementwise(ctx):
    """An element-wise op that changes nothing: a ReLU on a ReLU's output, a scale by
    1 or a dropout with p = 0. Element-wise ops are not free: each reads and writes a whole tensor."""
    for nid in ctx.order:
        d = ctx.node[nid]
        op, a = d.op, d.attrs
        prev = ctx.node[d.inputs[0]].op if d.inputs else None
        if (prev, op) in REDUNDANT:
            why = f"'{op}' on the output of '{prev}', which is already non-negative"
        elif op == "scale" and a.factor == 1:
            why = "scale by 1"
        elif op == "dropout" and a.p == 0:
            why = "dropout with p = 0"
        else:
            continue
        c = ctx.cost[nid].cost
        yield Hit(nid, f"{why} changes nothing",
                  f"remove it: -{c.other_flops:,} FLOPs and one {c.activation_bytes:,}-byte tensor per image",
                  {"other FLOPs": -c.other_flops, "activation bytes": -c.activation_bytes})
