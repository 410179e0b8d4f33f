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
make into and out of their blocked layouts, which depend on the CPU's instruction set
(`netc.analysis.onednn`: a rule per ISA, measured; this CPU's unless one is named). Not modelled:
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

import re
from dataclasses import dataclass

from netc.analysis import onednn
from netc.ops import REGISTRY, numel

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
    isa: str | None  # the CPU ISA whose convolution kernels were modelled (netc.analysis.onednn)
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


def predict(network, batch: int, optimizer: str = "sgd", amp: bool = False, device: str = "cpu",
            isa: str | None = None) -> TrainCost:
    """The training cost of `network` (a `netc.api.Network`) at `batch` images per step, on
    `device`; on the CPU with the convolution kernels of `isa` (one of `onednn.ISAS`; None: this
    CPU's, `onednn.detect_isa`)."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if optimizer not in _OPTIMIZER:
        raise ValueError(f"unknown optimizer '{optimizer}'; one of {', '.join(OPTIMIZERS)}")
    isa = resolve_isa(device, isa)
    step = _Step(network, batch, optimizer, amp, device, isa)
    plan = _plan(step)
    mem = _Memory(step.resident)
    saved_bytes, grads = _forward(step, plan, mem)
    param_grads = _backward(step, plan, mem, grads)
    _optimizer_step(step, mem, param_grads)
    fwd, bwd, matmul = plan.flops
    n_state, opt_flops = _OPTIMIZER[optimizer]
    return TrainCost(network.name, batch, optimizer, amp, device, isa, 4 * step.params, 4 * step.buffers,
                     4 * step.params, 4 * n_state * step.params, step.x_bytes, saved_bytes, mem.peak, mem.peak_at,
                     batch * fwd, batch * bwd, opt_flops * step.params, batch * matmul)


def resolve_isa(device: str, isa: str | None) -> str | None:
    """The CPU ISA whose kernels are modelled: None off the CPU, else `isa` or this CPU's."""
    if not device.startswith("cpu"):
        return None
    if isa is None:
        return onednn.detect_isa()
    if isa not in onednn.ISAS:
        raise ValueError(f"unknown CPU ISA '{isa}'; one of {', '.join(onednn.ISAS)}")
    return isa


class _Step:
    """The facts of the network and step the replay reads: nodes in execution order, shapes,
    sizes per kind of saved tensor, what stays resident."""

    def __init__(self, network, batch: int, optimizer: str, amp: bool, device: str, isa: str | None):
        self.batch, self.optimizer, self.amp, self.device, self.isa = batch, optimizer, amp, device, isa
        self.act = 2 if amp else 4  # bytes per activation element
        self.kind_bytes = {"act": self.act * batch, "index": 8 * batch, "stat": 4,
                           "mask": batch if device.startswith("cuda") else self.act * batch}
        self.node = network.graph.node_table()
        self.order = [nid for nid, _ in network.nodes()]
        self.shapes = {nid: self.node[nid].shape for nid in [0, *self.order]}
        self.params = sum(self.node[n].params for n in self.order)
        self.buffers = sum(self.node[n].buffers for n in self.order)
        self.outputs = [nid for _, nid, _ in network.outputs]
        self.x_bytes = 4 * batch * numel(self.shapes[0]) + sum(8 * batch * numel(self.shapes[n][1:])
                                                               for n in self.outputs)
        n_state = _OPTIMIZER[optimizer][0]
        self.resident = 4 * (self.params + self.buffers + n_state * self.params) + self.x_bytes

    def bytes_of(self, nid: int) -> int:
        """Bytes of node `nid`'s output (or gradient) at this batch."""
        return self.act * self.batch * numel(self.shapes[nid])


@dataclass
class _Plan:
    """Pass 1: a storage per tensor, who reads and who saves it, each node's autograd facts."""

    stor: dict[int, int]  # node -> the storage of its output
    sizes: list[int]
    refs: list[int]
    saved: dict[int, list[int]]  # node -> storages it saves for its backward
    new_at: dict[int, list[int]]  # node -> storages its forward creates
    grad_alias: dict[int, bool]  # node -> it hands its output's gradient on to its inputs
    needs_grad: dict[int, bool]
    work: dict[int, tuple[int, int]]  # node -> kernel workspace in its forward, its backward
    flops: list[int]  # per image: forward, backward, conv/linear share of both

    def new(self, nbytes: int) -> int:
        self.sizes.append(nbytes)
        self.refs.append(0)
        return len(self.sizes) - 1


def _plan(step: _Step) -> _Plan:
    # under autocast the first conv saves a half copy of the input
    first = step.bytes_of(0) if step.amp else 0
    plan = _Plan({0: 0}, [first], [0], {}, {}, {}, {0: False}, {}, [0, 0, 0])
    for nid in step.order:
        d = step.node[nid]
        op, ins = REGISTRY[d.op], d.inputs
        in_shapes = [step.shapes[i] for i in ins]
        ag = op.autograd(d.attrs, in_shapes, d.shape)
        needs = plan.needs_grad[nid] = d.params > 0 or any(plan.needs_grad[i] for i in ins)
        _count_flops(plan.flops, op.other_flops(d.attrs, in_shapes, d.shape), d.macs, needs,
                     any(plan.needs_grad[i] for i in ins))
        created = []
        if ag.alias:
            plan.stor[nid] = plan.stor[ins[0]]
        else:
            plan.stor[nid] = plan.new(step.bytes_of(nid))
            created.append(plan.stor[nid])
        for s in {plan.stor[i] for i in ins}:
            plan.refs[s] += 1
        keep = []
        if needs:
            keep = [plan.stor[ins[k]] for k in ag.inputs] + ([plan.stor[nid]] if ag.output else [])
            extra = [elems * step.kind_bytes[kind] for elems, kind in ag.extra]
            if step.amp and d.macs:
                extra.append(2 * d.params)  # autocast's half copy of the weights, held for the backward
            for nbytes in extra:
                keep.append(plan.new(nbytes))
                created.append(keep[-1])
            keep = list(dict.fromkeys(keep))
            for s in keep:
                plan.refs[s] += 1
        plan.saved[nid], plan.new_at[nid], plan.grad_alias[nid] = keep, created, ag.grad_alias
        if step.isa and d.op in ("conv", "sepconv"):
            plan.work[nid] = onednn.conv_workspace(step.isa, d.op, d.attrs, in_shapes[0], d.shape,
                                                   step.act * step.batch, plan.needs_grad[ins[0]], 4 * d.params)
    for nid in step.outputs:
        plan.refs[plan.stor[nid]] += 1  # held until the loss has read it
    return plan


def _count_flops(flops: list[int], other: int, macs: int, needs_grad: bool, input_grad: bool) -> None:
    backward = 2 * macs * (1 + input_grad) if needs_grad else 0
    flops[0] += 2 * macs + other
    flops[1] += backward + (other if needs_grad else 0)
    flops[2] += 2 * macs + backward


def _forward(step: _Step, plan: _Plan, mem: _Memory) -> tuple[int, dict[int, int]]:
    """Replays the forward and the loss into `mem`; returns the bytes saved for the backward and
    the storage of each output's gradient."""
    mem.size, mem.refs = sizes, refs = plan.sizes, plan.refs
    mem.live += sizes[0]
    refs[0] += 1  # the input batch is never freed
    for nid in step.order:
        for s in plan.new_at[nid]:
            mem.live += sizes[s]
        mem.mark("forward", plan.work.get(nid, (0, 0))[0])
        for s in {plan.stor[i] for i in step.node[nid].inputs}:
            mem.drop(s)
        if plan.stor[nid] in plan.new_at[nid] and refs[plan.stor[nid]] == 0:
            mem.live -= sizes[plan.stor[nid]]  # read by nothing (cannot happen in a checked graph)
    saved_bytes = mem.live - step.resident
    # the loss: log-softmax of each output, kept for its backward, then the outputs' gradients
    loss = [mem.new(4 * step.batch * numel(step.shapes[n])) for n in step.outputs]
    mem.mark("forward")
    for nid in step.outputs:
        mem.drop(plan.stor[nid])
    grads = {nid: mem.new(step.bytes_of(nid)) for nid in step.outputs}
    for s in loss:
        mem.drop(s)
    return saved_bytes, grads


def _backward(step: _Step, plan: _Plan, mem: _Memory, grad: dict[int, int]) -> int:
    """Replays the backward in reverse execution order from the outputs' gradients `grad`;
    returns the parameters' gradient bytes."""
    param_grads = 0
    for nid in reversed(step.order):
        g = grad.pop(nid, None)
        if g is None or not plan.needs_grad[nid]:
            continue
        ins = [i for i in dict.fromkeys(step.node[nid].inputs) if plan.needs_grad[i]]
        news = []
        for i in ins:
            if plan.grad_alias[nid]:
                mem.refs[g] += 1
                news.append(g)
            else:
                news.append(mem.new(step.bytes_of(i)))
        param_grads += 4 * step.node[nid].params
        mem.mark(f"backward of {_layer(step.node[nid])}", param_grads + plan.work.get(nid, (0, 0))[1])
        mem.drop(g)
        for s in plan.saved[nid]:
            mem.drop(s)
        for i, s in zip(ins, news):
            _accumulate(mem, grad, i, s)
    for s in grad.values():
        mem.drop(s)
    return param_grads


def _optimizer_step(step: _Step, mem: _Memory, param_grads: int) -> None:
    """Parameters, gradients and state, plus the step's temporaries (Adam's `sqrt(v) / c + eps`
    per parameter on the CPU; all parameters at once with CUDA's foreach kernels)."""
    largest = max((step.node[n].params for n in step.order), default=0)
    temp = 0
    if step.optimizer != "sgd":
        temp = 4 * step.params if step.device.startswith("cuda") else 2 * 4 * largest
    mem.live = step.resident + param_grads
    mem.mark("optimizer step", temp)


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
              isa: str | None = None, headroom: float = HEADROOM) -> TrainCost | None:
    """The cost at the largest batch whose predicted peak, plus `headroom` of it for what the
    model leaves out, fits in `budget` bytes; None if not even batch 1 fits. The peak never
    falls as the batch grows, so a bisection finds it."""
    isa = resolve_isa(device, isa)  # detected once

    def fits(b):
        return predict(network, b, optimizer, amp, device, isa).peak * (1 + headroom) <= budget

    if not fits(1):
        return None
    lo, hi = 1, 2
    while hi <= MAX_BATCH and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, MAX_BATCH + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return predict(network, lo, optimizer, amp, device, isa)


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
    lines = [f"{cost.name}: one training step, batch {cost.batch}, {opt}, {precision}, on {cost.device}"
             + (f" with {cost.isa} kernels" if cost.isa else "")]
    if budget is not None:
        lines[0] += f" (the largest batch whose peak fits in {size(budget)})"
    if cost.isa and not onednn.RULES[cost.isa].measured:
        lines.append(f"  note: the {cost.isa} rule is the AVX-512 one, not measured on such a CPU")
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
