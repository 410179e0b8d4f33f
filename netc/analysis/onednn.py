"""What oneDNN's CPU convolutions allocate beyond their tensors, per instruction set (ISA).

torch hands oneDNN NCHW tensors and gets NCHW back; oneDNN's kernels work on channel-blocked
layouts, so each call copies (reorders) into and out of them, and the copies are live at the peak
of a training step. Which copies are made depends on the kernels the CPU's ISA selects. Each rule
here was read from `ONEDNN_VERBOSE=1` (the layouts every kernel ran with) and checked against
the CPU allocator's peak of real training steps (torch 2.x, float32, NCHW):

- avx2: 8-channel blocks.
- avx512 (avx512_core: avx512f + bw + vl + dq): 16-channel blocks; the weight-gradient kernel of
  a first-layer-like conv (k > 1x1, ungrouped) reads the input as NCHW for 1-3 input channels and
  falls back to the AVX2 kernel's 8-channel blocks for 4-15.
- amx (AVX-512 with AMX tiles): AMX has no float32 mode, so oneDNN runs float32 convolutions on
  its avx512_core kernels: the avx512 rule, not measured on an AMX CPU (none was at hand).

The ISA is read from /proc/cpuinfo, capped as oneDNN itself caps it by ONEDNN_MAX_CPU_ISA (or
DNNL_MAX_CPU_ISA), or named by the caller. Nothing here imports torch.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from netc.ops import numel
from netc.ops.base import pair

ISAS = ("avx2", "avx512", "amx")  # weakest first
# oneDNN's names for them, as ONEDNN_MAX_CPU_ISA takes them
ONEDNN_NAMES = {"avx2": "AVX2", "avx512": "AVX512_CORE", "amx": "AVX512_CORE_AMX"}


@dataclass(frozen=True)
class Rule:
    """The layout facts of one ISA's convolution kernels."""

    block: int  # channels per block of the blocked layouts
    plain_weight_grad: tuple[int, ...]  # input channels for which the weight gradient reads NCHW input
    narrow_block: int | None  # the block of the fallback weight-gradient kernel below `block` channels
    measured: bool = True


RULES = {
    "avx2": Rule(block=8, plain_weight_grad=(3,), narrow_block=None),
    "avx512": Rule(block=16, plain_weight_grad=(1, 2, 3), narrow_block=8),
    "amx": Rule(block=16, plain_weight_grad=(1, 2, 3), narrow_block=8, measured=False),
}


def conv_workspace(isa: str, op: str, a, x: tuple, y: tuple, nbytes: int, input_grad: bool,
                   wbytes: int) -> tuple[int, int]:
    """Extra bytes a conv or sepconv holds in its forward (beyond its output) and in its backward
    (beyond its input and weight gradients), for activations of `nbytes` per element and batch."""
    rule = RULES[isa]
    k1, strided = pair(a.k) == (1, 1), pair(a.s) != (1, 1)
    if op == "conv":
        return _conv(rule, x, y, a.groups, k1, strided, nbytes, input_grad, wbytes)
    # sepconv: a depthwise k x k conv to `mid` (saved, so live at the replay's points), then a
    # pointwise 1 x 1 one; the output does not exist yet in the first's forward, and in the
    # first's backward the output gradient is gone and mid's gradient has replaced mid
    mid = (x[0], *y[1:])
    dw = _conv(rule, x, mid, x[0], k1, strided, nbytes, input_grad, wbytes)
    pw = _conv(rule, mid, y, 1, True, False, nbytes, True, wbytes)
    Y, X = nbytes * numel(y), nbytes * numel(x) if input_grad else 0
    return max(dw[0] - Y, pw[0]), max(dw[1] - Y, pw[1] + nbytes * numel(mid) - X)


def _conv(rule: Rule, x: tuple, y: tuple, groups: int, k1: bool, strided: bool, nbytes: int,
          input_grad: bool, wbytes: int) -> tuple[int, int]:
    """One conv, NCHW in and out. Plain and depthwise convs, and grouped ones with a multiple of 8
    channels per group, run blocked (a channel count that is no multiple of the block is padded up):
    - forward: the input into blocks (not for fewer input channels than a block and a kernel over
      1x1: the first-layer kernel reads NCHW), the weights, a blocked output, then the NCHW
      output copied from it;
    - backward data: the output gradient and a blocked input gradient, copied to NCHW; strided
      (not grouped): an NCHW input gradient, and its copy goes through a temporary;
    - backward weights: the output gradient again and the input (see `Rule` for the exceptions),
      while the input gradient is held.
    Other grouped convs run on plain layouts: a copy of the output (forward), of the input
    gradient (backward). The kernels' scratchpads (a few % of the batch) are left out."""
    X, Y = nbytes * numel(x), nbytes * numel(y)
    if not (groups == 1 or groups == x[0] == y[0] or (x[0] // groups % 8 == 0 and y[0] // groups % 8 == 0)):
        return Y, X if input_grad else 0

    def blocked(shape, block=rule.block):
        return -(-shape[0] // block) * block * numel(shape[1:]) * nbytes

    xb, yb = blocked(x), blocked(y)
    first_layer = groups == 1 and not k1
    x_fwd = 0 if first_layer and x[0] < rule.block else xb
    if first_layer and x[0] in rule.plain_weight_grad:
        x_wgrad, y_wgrad = 0, yb
    elif first_layer and rule.narrow_block and x[0] < rule.block:
        x_wgrad, y_wgrad = blocked(x, rule.narrow_block), blocked(y, rule.narrow_block)
    else:
        x_wgrad, y_wgrad = xb, yb
    forward = max(x_fwd + yb + wbytes - Y, yb)  # the blocked input and output, then the output and its copy
    backward = y_wgrad + x_wgrad  # the weight gradient's phase; the data phase before it:
    if input_grad and groups == 1 and strided:  # the weights' copy is gone by then
        backward = max(backward, 2 * X - wbytes)
    elif input_grad:
        backward = max(backward, yb + xb - X, xb)
    return forward, backward


def detect_isa() -> str:
    """The ISA oneDNN's kernels use on this CPU: its flags, capped by ONEDNN_MAX_CPU_ISA."""
    return _cap(_cpu_isa(), os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "")


@functools.cache
def cpu_flags() -> tuple[str, ...] | None:
    """The feature flags /proc/cpuinfo lists for the first CPU; None where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            text = f.read(1 << 16)
    except OSError:
        return None
    return tuple(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def _cpu_isa() -> str:
    flags = cpu_flags()
    if flags is None:
        return "avx2"
    if not {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags):
        return "avx2"
    return "amx" if "amx_tile" in flags else "avx512"


def _cap(isa: str, limit: str) -> str:
    """`isa` lowered to oneDNN's ISA limit (its names: AVX2, AVX512_CORE, AVX512_CORE_AMX, ALL, ...);
    a limit below AVX2 (SSE41, AVX) is modelled as AVX2, which it is not measured to be."""
    limit = limit.strip().upper()
    if not limit or limit in ("ALL", "DEFAULT"):
        return isa
    allowed = "amx" if "AMX" in limit else "avx512" if limit.startswith("AVX512") else "avx2"
    return min(isa, allowed, key=ISAS.index)
