"""Training cost before a run: peak memory and FLOPs of one training step, from the IR alone.

The step modelled is the usual loop, in training mode with every output (aux heads included)
in the loss: `opt.zero_grad(set_to_none=True); loss = cross_entropy(model(x), y);
loss.backward(); opt.step()`, after a first step (so the optimizer state exists).

Memory is what stays — parameters, buffers, optimizer state, the input batch — plus a replay
of the step over tensors, one per IR node output (a view or in-place op shares its input's):

- forward, in execution order: a node allocates its output and what its op saves beyond its
  inputs and output (`Op.autograd`: batch-norm statistics, max-pool indices, dropout masks); a
  tensor is freed once its last reader has run, unless an op saved it for the backward;
- backward, in reverse execution order (autograd runs ready nodes by decreasing sequence
  number, which is the reverse of the forward order): a node's backward allocates the gradient
  of each input that needs one (add, cat and views hand their gradient on instead) and its
  parameters' gradients, which stay; then its output gradient and what it saved are released;
  a gradient reaching a tensor that already has one is summed in place when either is no longer
  shared (as autograd's input buffers do), else into a new tensor;
- optimizer step: parameters, gradients and state, plus the step's temporaries (Adam's
  `sqrt(v) / c + eps` per parameter on the CPU; all parameters at once with CUDA's foreach
  kernels).
The peak is the largest total at any of these points, with the copies oneDNN's CPU convolutions
make into and out of their blocked layouts (`_onednn_workspace`: measured on AVX-512, where
only channel counts that are no multiple of 16 cost one, and on AVX2, where every call
reorders; the CPU's flags in /proc/cpuinfo choose). Not modelled:
other workspace that kernels allocate and free inside one call, allocator rounding, and (with
`amp`) everything autocast does beyond halving activations and caching half copies of
conv/linear weights — `amp` is an estimate.

FLOPs per step, as counted here (2 FLOPs per MAC): forward = 2·MACs + other FLOPs; backward =
2·MACs for the weight gradient of every conv/linear plus 2·MACs for its input gradient where the
input needs one (not for the first layer on the image), plus the other FLOPs once more for every
other op on the gradient's path; optimizer = per parameter 4 (SGD with momentum) or 13 (Adam;
AdamW 15). Auxiliary heads are included (they train).

Nothing here imports torch.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from netc.ops import REGISTRY, numel
from netc.ops.base import pair

OPTIMIZERS = ("sgd", "adam", "adamw")
# optimizer -> (state tensors per parameter, FLOPs per parameter per step)
_OPTIMIZER = {"sgd": (1, 4), "adam": (2, 13), "adamw": (2, 15)}
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}
MAX_BATCH = 1 << 24
# the budget solver keeps this share of the predicted peak free: measured peaks were within 2%
# of the prediction on the bundled networks (benchmarks/bench_train_memory.py)
HEADROOM = 0.05


@dataclass(frozen=True)
class TrainCost:
    """Predicted cost of one training step; sizes in bytes."""

    name: str
    batch: int
    optimizer: str
    amp: bool
    device: str
    params: int
    buffers: int
    grads: int
    optimizer_state: int
    input: int  # the image batch and its targets
    saved: int  # activations held for the backward when the forward ends
    peak: int
    peak_at: str  # 'forward', 'backward of SCOPE' or 'optimizer step'
    forward_flops: int
    backward_flops: int
    optimizer_flops: int
    matmul_flops: int  # the conv/linear share of forward + backward (what FlopCounterMode counts)

    @property
    def flops(self) -> int:
        return self.forward_flops + self.backward_flops + self.optimizer_flops

    @property
    def resident(self) -> int:
        """Bytes held across steps: parameters, buffers, optimizer state and the input batch."""
        return self.params + self.buffers + self.optimizer_state + self.input


class _Memory:
    """Storages with reference counts and the running and peak total of the live ones."""

    def __init__(self, base: int):
        self.size: list[int] = []
        self.refs: list[int] = []
        self.live = self.peak = base
        self.peak_at = "forward"

    def new(self, nbytes: int, refs: int = 1) -> int:
        self.size.append(nbytes)
        self.refs.append(refs)
        self.live += nbytes
        return len(self.size) - 1

    def drop(self, s: int) -> None:
        self.refs[s] -= 1
        if self.refs[s] == 0:
            self.live -= self.size[s]

    def mark(self, where: str, extra: int = 0) -> None:
        if self.live + extra > self.peak:
            self.peak, self.peak_at = self.live + extra, where


def predict(network, batch: int, optimizer: str = "sgd", amp: bool = False, device: str = "cpu") -> TrainCost:
    """The training cost of `network` (a `netc.api.Network`) at `batch` images per step."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if optimizer not in _OPTIMIZER:
        raise ValueError(f"unknown optimizer '{optimizer}'; one of {', '.join(OPTIMIZERS)}")
    act = 2 if amp else 4
    kind_bytes = {"act": act * batch, "index": 8 * batch, "stat": 4,
                  "mask": batch if device.startswith("cuda") else act * batch}
    node = network.graph.node_table()
    order = [nid for nid, _ in network.nodes()]
    shapes = {nid: node[nid].shape for nid in [0, *order]}
    params = sum(node[n].params for n in order)
    buffers = sum(node[n].buffers for n in order)
    n_state, opt_flops = _OPTIMIZER[optimizer]
    outputs = [nid for _, nid, _ in network.outputs]
    x_bytes = 4 * batch * numel(shapes[0]) + sum(8 * batch * numel(shapes[n][1:]) for n in outputs)
    resident = 4 * (params + buffers + n_state * params) + x_bytes

    # pass 1: storages, who reads and who saves them, the autograd facts of each node
    stor: dict[int, int] = {0: 0}
    sizes = [act * batch * numel(shapes[0]) if amp else 0]  # under autocast the first conv saves a half copy
    refs = [0]
    saved: dict[int, list[int]] = {}
    new_at: dict[int, list[int]] = {}
    grad_alias: dict[int, bool] = {}
    work: dict[int, tuple[int, int]] = {}  # node -> kernel workspace in its forward, its backward
    needs_grad = {0: False}
    flops = [0, 0, 0]
    for nid in order:
        d = node[nid]
        op, ins = REGISTRY[d.op], d.inputs
        in_shapes = [shapes[i] for i in ins]
        ag = op.autograd(d.attrs, in_shapes, d.shape)
        needs_grad[nid] = d.params > 0 or any(needs_grad[i] for i in ins)
        other = op.other_flops(d.attrs, in_shapes, d.shape)
        backward = 2 * d.macs * (1 + any(needs_grad[i] for i in ins)) if needs_grad[nid] else 0
        flops[0] += 2 * d.macs + other
        flops[1] += backward + (other if needs_grad[nid] else 0)
        flops[2] += 2 * d.macs + backward
        created = []
        if ag.alias:
            stor[nid] = stor[ins[0]]
        else:
            stor[nid] = len(sizes)
            sizes.append(act * batch * numel(d.shape))
            refs.append(0)
            created.append(stor[nid])
        for s in {stor[i] for i in ins}:
            refs[s] += 1
        keep = []
        if needs_grad[nid]:
            keep = [stor[ins[k]] for k in ag.inputs] + ([stor[nid]] if ag.output else [])
            for elems, kind in ag.extra:
                keep.append(len(sizes))
                sizes.append(elems * kind_bytes[kind])
                refs.append(0)
                created.append(keep[-1])
            if amp and d.macs:
                keep.append(len(sizes))  # autocast's half copy of the weights, held for the backward
                sizes.append(2 * d.params)
                refs.append(0)
                created.append(keep[-1])
            keep = list(dict.fromkeys(keep))
            for s in keep:
                refs[s] += 1
        saved[nid], new_at[nid], grad_alias[nid] = keep, created, ag.grad_alias
        if device == "cpu" and d.op in ("conv", "sepconv"):
            work[nid] = _onednn_workspace(d.op, d.attrs, in_shapes[0], d.shape, act * batch,
                                          needs_grad[ins[0]], 4 * d.params)
    for nid in outputs:
        refs[stor[nid]] += 1  # held until the loss has read it

    # pass 2: the forward
    mem = _Memory(resident)
    mem.size, mem.refs = sizes, refs
    mem.live += sizes[0]
    refs[0] += 1  # the input batch is never freed
    for nid in order:
        for s in new_at[nid]:
            mem.live += sizes[s]
        mem.mark("forward", work.get(nid, (0, 0))[0])
        for s in {stor[i] for i in node[nid].inputs}:
            mem.drop(s)
        if stor[nid] in new_at[nid] and refs[stor[nid]] == 0:
            mem.live -= sizes[stor[nid]]  # read by nothing (cannot happen in a checked graph)
    saved_bytes = mem.live - resident
    # the loss: log-softmax of each output, kept for its backward, then the outputs' gradients
    loss = [mem.new(4 * batch * numel(shapes[n])) for n in outputs]
    mem.mark("forward")
    for nid in outputs:
        mem.drop(stor[nid])
    grad = {nid: mem.new(act * batch * numel(shapes[nid])) for nid in outputs}
    for s in loss:
        mem.drop(s)

    # pass 3: the backward
    param_grads = 0
    for nid in reversed(order):
        g = grad.pop(nid, None)
        if g is None or not needs_grad[nid]:
            continue
        ins = [i for i in dict.fromkeys(node[nid].inputs) if needs_grad[i]]
        news = []
        for i in ins:
            if grad_alias[nid]:
                mem.refs[g] += 1
                news.append(g)
            else:
                news.append(mem.new(act * batch * numel(shapes[i])))
        param_grads += 4 * node[nid].params
        mem.mark(f"backward of {_layer(node[nid])}", param_grads + work.get(nid, (0, 0))[1])
        mem.drop(g)
        for s in saved[nid]:
            mem.drop(s)
        for i, s in zip(ins, news):
            _accumulate(mem, grad, i, s)
    for s in grad.values():
        mem.drop(s)

    # the optimizer step
    largest = max((node[n].params for n in order), default=0)
    temp = 0
    if optimizer != "sgd":
        temp = 4 * params if device.startswith("cuda") else 2 * 4 * largest
    mem.live = resident + param_grads
    mem.mark("optimizer step", temp)
    return TrainCost(network.name, batch, optimizer, amp, device, 4 * params, 4 * buffers, 4 * params,
                     4 * n_state * params, x_bytes, saved_bytes, mem.peak, mem.peak_at, batch * flops[0],
                     batch * flops[1], opt_flops * params, batch * flops[2])


def _onednn_workspace(op: str, a, x: tuple, y: tuple, nbytes: int, input_grad: bool,
                      wbytes: int) -> tuple[int, int]:
    """What oneDNN's CPU convolutions allocate beyond their output (forward) and beyond the input
    and weight gradients (backward), as extra bytes at those points of the replay."""
    if _channel_block() == 16:
        # AVX-512 (measured there): 16-channel blocks; with a channel count that is no multiple
        # of 16 the forward writes a padded copy of the output first, and the backward pads the
        # output gradient and the input gradient likewise
        def padded(shape):
            return 0 if shape[0] % 16 == 0 else -(-shape[0] // 16) * 16 * numel(shape[1:]) * nbytes

        return padded(y), padded(y) + (padded(x) if input_grad else 0)
    k1, strided = pair(a.k) == (1, 1), pair(a.s) != (1, 1)
    if op == "conv":
        return _avx2_conv(x, y, a.groups, k1, strided, nbytes, input_grad, wbytes)
    # sepconv: a depthwise k x k conv to `mid` (saved, so live at the replay's points), then a
    # pointwise 1 x 1 one; the output does not exist yet in the first's forward, and in the
    # first's backward the output gradient is gone and mid's gradient has replaced mid
    mid = (x[0], *y[1:])
    dw = _avx2_conv(x, mid, x[0], k1, strided, nbytes, input_grad, wbytes)
    pw = _avx2_conv(mid, y, 1, True, False, nbytes, True, wbytes)
    Y, X = nbytes * numel(y), nbytes * numel(x) if input_grad else 0
    return max(dw[0] - Y, pw[0]), max(dw[1] - Y, pw[1] + nbytes * numel(mid) - X)


def _avx2_conv(x: tuple, y: tuple, groups: int, k1: bool, strided: bool, nbytes: int,
               input_grad: bool, wbytes: int) -> tuple[int, int]:
    """oneDNN without AVX-512 (measured with torch 2.x on an AVX2 CPU, NCHW tensors): the kernels
    work in 8-channel blocks (a channel count that is no multiple of 8 is padded up) for plain
    and depthwise convs and for grouped ones with a multiple of 8 channels per group; torch
    hands them NCHW tensors and gets NCHW back, so each call reorders:
    - forward: the input into blocks (not for fewer than 8 input channels and a kernel over
      1x1: the first-layer kernel reads NCHW), the weights, a blocked output, then the NCHW
      output copied from it;
    - backward data: the output gradient and a blocked input gradient, copied to NCHW; strided
      (not grouped): an NCHW input gradient, and its copy goes through a temporary;
    - backward weights: the output gradient again and the input (not for exactly 3 input
      channels and a kernel over 1x1), while the input gradient is held.
    Other grouped convs run on plain layouts: a copy of the output (forward), of the input
    gradient (backward). The kernels' scratchpads (a few % of the batch) are left out."""
    X, Y = nbytes * numel(x), nbytes * numel(y)
    if not (groups == 1 or groups == x[0] == y[0] or (x[0] // groups % 8 == 0 and y[0] // groups % 8 == 0)):
        return Y, X if input_grad else 0

    def blocked(shape):
        return -(-shape[0] // 8) * 8 * numel(shape[1:]) * nbytes

    xb, yb = blocked(x), blocked(y)
    x_fwd = 0 if groups == 1 and x[0] < 8 and not k1 else xb
    x_bwd = 0 if groups == 1 and x[0] == 3 and not k1 else xb
    forward = max(x_fwd + yb + wbytes - Y, yb)  # the blocked input and output, then the output and its copy
    backward = yb + x_bwd  # the weight gradient's phase; the data phase before it:
    if input_grad and groups == 1 and strided:  # the weights' copy is gone by then
        backward = max(backward, 2 * X - wbytes)
    elif input_grad:
        backward = max(backward, yb + xb - X, xb)
    return forward, backward


@functools.cache
def _channel_block() -> int:
    """oneDNN's channel block on this CPU: 16 with AVX-512, else 8."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return 16 if "avx512f" in f.read(1 << 16) else 8
    except OSError:
        return 16


def _accumulate(mem: _Memory, grad: dict[int, int], nid: int, s: int) -> None:
    """Add gradient storage `s` into node `nid`'s input buffer, as autograd does."""
    old = grad.get(nid)
    if old is None:
        grad[nid] = s
    elif mem.refs[old] == 1:  # summed in place into the old one
        mem.drop(s)
    elif mem.refs[s] == 1:  # or into the new one
        mem.drop(old)
        grad[nid] = s
    else:  # both shared (slices of one gradient): a new tensor
        grad[nid] = mem.new(mem.size[s])
        mem.drop(old)
        mem.drop(s)


def max_batch(network, budget: int, optimizer: str = "sgd", amp: bool = False, device: str = "cpu",
              headroom: float = HEADROOM) -> TrainCost | None:
    """The cost at the largest batch whose predicted peak, plus `headroom` of it for what the
    model leaves out, fits in `budget` bytes; None if not even batch 1 fits. The peak never
    falls as the batch grows, so a bisection finds it."""
    def fits(b):
        return predict(network, b, optimizer, amp, device).peak * (1 + headroom) <= budget

    if not fits(1):
        return None
    lo, hi = 1, 2
    while hi <= MAX_BATCH and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, MAX_BATCH + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return predict(network, lo, optimizer, amp, device)


def parse_bytes(text: str) -> int:
    """'24GiB', '500 MB', '1.5g', '1048576' -> bytes; ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = m and m.group(2).lower()
    if not m or unit not in _UNITS:
        raise ValueError(f"expected a size like 24GiB, 512MiB or 8GB, got '{text}'")
    n = int(float(m.group(1)) * _UNITS[unit])
    if n <= 0:
        raise ValueError(f"the size must be positive, got '{text}'")
    return n


def describe(cost: TrainCost, budget: int | None = None) -> str:
    """The text report of `netc table --train`."""
    from netc.analysis.formats import human

    def size(n):
        return human(n, "B", 1024)

    opt = {"sgd": "SGD with momentum", "adam": "Adam", "adamw": "AdamW"}[cost.optimizer]
    precision = ("float16" if cost.device.startswith("cuda") else "bfloat16") + " autocast" if cost.amp else "float32"
    lines = [f"{cost.name}: one training step, batch {cost.batch}, {opt}, {precision}, on {cost.device}"]
    if budget is not None:
        lines[0] += f" (the largest batch whose peak fits in {size(budget)})"
    rows = [("parameters", cost.params), ("buffers", cost.buffers), ("gradients", cost.grads),
            ("optimizer state", cost.optimizer_state), ("input batch", cost.input),
            ("saved activations", cost.saved)]
    lines += [f"  {name:<18}{size(n):>12}" for name, n in rows]
    lines.append(f"  {'peak':<18}{size(cost.peak):>12}   ({cost.peak_at})")
    lines.append(f"  {'FLOPs per step':<18}{human(cost.flops, 'FLOPs'):>12}   (forward {human(cost.forward_flops)}, "
                 f"backward {human(cost.backward_flops)}, optimizer {human(cost.optimizer_flops)})")
    return "\n".join(lines) + "\n"


def as_dict(cost: TrainCost) -> dict:
    from dataclasses import asdict

    return {**asdict(cost), "flops": cost.flops, "resident": cost.resident}


def _layer(data) -> str:
    """A layer for a reader: its scope, with its op where the scope is only a position (DenseNet's
    functional relu after norm5 is layer `1`)."""
    scope = data.scope
    return f"{scope} ({data.op})" if scope.rpartition(".")[2].isdigit() else scope
