"""Common defects: layers that waste parameters, fight each other, or behave differently in
other frameworks and exporters."""
from __future__ import annotations

import math

from netc.analysis.lint.registry import Hit, change, rule
from netc.ops import REGISTRY, fmt_shape
from netc.ops.base import pair
from netc.ops.conv import window_out

RECTIFIERS = ("relu", "relu6", "leaky_relu", "gelu", "silu")


@rule("NL501", "conv bias before batch norm", "Ioffe & Szegedy 2015 §3.2", "warning")
def bias_before_bn(ctx):
    """A conv with a bias whose only consumer is a batch norm: the norm subtracts the batch mean,
    which cancels any constant per channel, so the bias is a parameter that can never matter
    ("the bias b can be ignored since its effect will be canceled by the subsequent mean subtraction")."""
    for nid, d in ctx.ops("conv"):
        nxt = ctx.only_consumer(nid)
        if d.attrs.bias and nxt is not None and ctx.node[nxt].op == "bn":
            p = ctx.cost[nid].cost.params
            yield Hit(nid, f"the bias of this conv is cancelled by the batch norm '{ctx.node[nxt].scope}'",
                      f"bias: false: {change('params', p, p - d.attrs.out)}", {"params": -d.attrs.out})


@rule("NL502", "dropout directly before batch norm", "Li et al. 2019 (CVPR), §3", "warning")
def dropout_before_bn(ctx):
    """A dropout whose only consumer is a batch norm: dropout changes the variance of its output
    between training and inference, so the norm's running variance, collected in training, is
    wrong at inference ("variance shift")."""
    for nid, d in ctx.ops("dropout"):
        nxt = ctx.only_consumer(nid)
        if nxt is not None and ctx.node[nxt].op == "bn" and d.attrs.p > 0:
            yield Hit(nid, f"dropout before the batch norm '{ctx.node[nxt].scope}' shifts its variance at inference",
                      "move the dropout after the last batch norm (before the classifier)")


@rule("NL503", "rectifier on the logits", "common defect (output layer design)", "warning")
def rectified_logits(ctx):
    """An output computed by a rectifier (ReLU and relatives) right after its last layer: logits
    that cannot be negative cannot express "not this class" to a softmax cross-entropy loss, and
    units that go negative stop learning. A softmax or sigmoid output is not a logit and is fine."""
    for name, nid, _ in ctx.network.outputs:
        d = ctx.node[nid]
        if d.op in RECTIFIERS:
            yield Hit(nid, f"output '{name}' is the result of '{d.op}': its logits cannot be negative",
                      f"remove the {d.op} after the last layer")


@rule("NL504", "pooling stride larger than its window", "common defect (pooling geometry)", "warning")
def pool_skips_input(ctx):
    """A pooling window smaller than its stride: the windows leave gaps, so part of the input is
    never read (a strided 1×1 conv is NL302's case)."""
    for nid, d in ctx.ops("maxpool", "avgpool"):
        k, s, _, dil = REGISTRY[d.op].geometry(d.attrs)
        extent = tuple(dil[i] * (k[i] - 1) + 1 for i in range(2))
        if extent[0] >= s[0] and extent[1] >= s[1]:
            continue
        read = min(1, extent[0] / s[0]) * min(1, extent[1] / s[1])
        yield Hit(nid, f"{k[0]}x{k[1]} window with stride {s[0]}x{s[1]} never reads {1 - read:.0%} of its input",
                  f"use a window of at least {s[0]}x{s[1]}, or stride {extent[0]}x{extent[1]}")


@rule("NL505", "adaptive pooling that does not divide its input", "PyTorch ONNX export (adaptive_avg_pool2d)", "warning")
def adaptive_uneven(ctx):
    """An adaptive pooling whose output size does not divide its input size: its windows then
    differ in size, which ONNX's fixed-window pooling cannot express, so torch.onnx.export fails
    ("output size that are not factor of input size"). Evaluated at the spec's input size;
    training-only side heads are left out (an exported model runs in eval mode without them)."""
    for nid, d in ctx.ops("adaptive_avgpool", "adaptive_maxpool"):
        if d.aux:
            continue
        _, h, w = ctx.in_shape(nid)
        oh, ow = pair(d.attrs.out)
        if h % oh or w % ow:
            yield Hit(nid, f"adaptive pooling from {h}x{w} to {oh}x{ow}: the output does not divide the input",
                      f"feed a grid divisible by {oh}x{ow} (e.g. {h - h % oh or oh}x{w - w % ow or ow}), or pool "
                      "with a fixed window")


@rule("NL506", "ceil-mode pooling", "common defect (framework portability)", "note")
def ceil_mode(ctx):
    """A pooling with ceil_mode whose output is larger than floor mode's at the spec's input:
    frameworks without ceil mode (or with a different rule for the last window, e.g. TensorFlow's
    'SAME' padding) give another output size, so ported weights shift. Fires only when ceil mode
    changes the size."""
    for nid, d in ctx.ops("maxpool", "avgpool"):
        if not d.attrs.ceil_mode:
            continue
        k, s, p, dil = REGISTRY[d.op].geometry(d.attrs)
        _, h, w = ctx.in_shape(nid)
        floor = (window_out(h, k[0], s[0], p[0], dil[0]), window_out(w, k[1], s[1], p[1], dil[1]))
        if floor == tuple(d.shape[1:]):
            continue
        yield Hit(nid, f"ceil_mode gives {fmt_shape(d.shape)}; floor mode (the default elsewhere) gives "
                       f"{fmt_shape((d.shape[0], *floor))}",
                  "pad explicitly (p) so both modes agree, or state the mode when porting")


@rule("NL507", "linear over the width of a feature map", "common defect (nn.Linear acts on the last axis)", "warning")
def linear_over_width(ctx):
    """A linear layer on a C×H×W map that no permute, reshape or flatten has reordered: like
    nn.Linear it acts on the last axis, so it mixes the W columns of each channel and row, never
    the channels. Almost always a classifier missing its flatten (and global pool), or a pointwise
    layer missing its permute to H×W×C (ConvNeXt)."""
    reordered = {0: len(ctx.node[0].shape) != 3}
    for nid in ctx.order:
        d = ctx.node[nid]
        src = d.inputs[0]
        reordered[nid] = d.op in ("permute", "reshape", "flatten") or len(d.shape) != 3 or reordered[src]
        if d.op == "linear" and not reordered[src]:
            c, h, w = ctx.node[src].shape
            yield Hit(nid, f"linear over the last axis of a {fmt_shape((c, h, w))} map mixes its {w} columns, "
                           "not its channels", "add 'gap' and 'flatten' before a classifier, or "
                           "permute: {dims: [1, 2, 0]} to act on the channels")


@rule("NL508", "transposed conv whose kernel overlaps unevenly",
      "Odena, Dumoulin & Olah 2016, Deconvolution and Checkerboard Artifacts (Distill)", "warning")
def uneven_overlap(ctx):
    """A strided transposed conv whose kernel taps do not fall evenly on the output grid: output
    pixels of one stride phase sum more kernel taps than their neighbours', which draws a
    checkerboard that training must learn to cancel (with k = 3, s = 2: 2 taps, then 1). The taps
    of phase r are those t < k with t·d ≡ r (mod s)."""
    for nid, d in ctx.ops("conv_transpose"):
        a = d.attrs
        k, s, dil = pair(a.k), pair(a.s), pair(a.d)
        taps = [tap_counts(k[i], s[i], dil[i]) for i in range(2)]
        if all(len(t) == 1 for t in taps):
            continue
        axis = next(i for i in range(2) if len(taps[i]) > 1)
        fix = (f"a kernel that is a multiple of the stride ({s[axis] * -(-k[axis] // s[axis])} on that axis)"
               if dil[axis] == 1 else "a dilation that shares no factor with the stride")
        yield Hit(nid, f"a {k[0]}x{k[1]} kernel at stride {s[0]}x{s[1]}{f', dilation {dil[0]}x{dil[1]}' if dil != (1, 1) else ''} "
                       f"gives output pixels {' or '.join(map(str, taps[axis]))} kernel taps by their position: a "
                       "checkerboard pattern", f"use {fix}, or upsample then conv")


def tap_counts(k: int, s: int, d: int) -> list[int]:
    """The distinct numbers of kernel taps t < k with t·d ≡ r (mod s) over the phases r, in
    constant work whatever the stride: t·d mod s repeats with period p = s / gcd(d, s) and visits
    the multiples of gcd(d, s) only, so k = q·p + m taps give m phases q + 1 taps, the other
    reachable ones q, and the phases it never visits (when gcd(d, s) > 1) none."""
    g = math.gcd(d, s)
    q, m = divmod(k, s // g)
    counts = {q}
    if m:
        counts.add(q + 1)
    if g > 1:
        counts.add(0)
    return sorted(counts)
