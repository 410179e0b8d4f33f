"""The static cost pass: per-node parameters, MACs, memory and receptive field, from the IR alone.

Conventions (also stated in every table header):
- MACs are multiply-accumulates of conv and linear layers for one image (batch 1), the count
  torchvision publishes as "GFLOPS" and half of `torch.utils.flop_counter.FlopCounterMode`.
  Everything else (normalisation, pooling, activations, sums) is in `other_flops`.
- Activation memory is a node's output elements × the dtype size (float32 by default); in-place
  ops and buffer reuse are not modelled, so the sum is an upper bound of what a forward pass holds.
- Receptive field and jump (effective stride) are per axis (H, W), in input pixels, computed with
  r_out = r_in + (d·(k−1)) · j_in and j_out = j_in · s through every windowed op; an upsampling
  op (upsample, a transposed conv) first divides the jump by its factor. A node with
  several inputs (add, cat) takes the largest receptive field and jump of its inputs. Global and
  adaptive pooling and linear layers are windows over their whole input grid (for linear, the
  grid that was flattened), so their output covers the whole input. The values are theoretical:
  they can exceed the image size (the window then reaches into padding).
- Auxiliary (training-only) side heads: their parameters count in the totals, as in torchvision's
  models; their MACs, other FLOPs and activations are reported apart and excluded from the
  inference totals (torchvision's inception_v3 "5.713 GFLOPS" at 299 is without the aux head).

Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from netc.ops import REGISTRY, Shape, numel

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


# slots, not frozen: a frozen dataclass's __init__ costs ~3x more, and a table builds thousands
@dataclass(slots=True)
class Cost:
    """Summable costs of one node or of a group of nodes."""

    params: int = 0
    buffers: int = 0
    macs: int = 0
    other_flops: int = 0
    activation_bytes: int = 0

    def __add__(self, o: Cost) -> Cost:
        return Cost(self.params + o.params, self.buffers + o.buffers, self.macs + o.macs,
                    self.other_flops + o.other_flops, self.activation_bytes + o.activation_bytes)


@dataclass(slots=True)
class NodeCost:
    """One IR node's row: what it computes, its output and its costs."""

    id: int
    scope: str
    op: str
    label: str
    shape: Shape
    cost: Cost
    rf: tuple[int, int]
    jump: tuple[int, int]
    aux: bool
    blocks: tuple[str, ...]


@dataclass(frozen=True)
class CostReport:
    """The cost pass's result: rows in execution order, inference totals and the aux heads apart."""

    name: str
    file: str
    input: Shape
    dtype: str
    rows: list[NodeCost]
    outputs: list[tuple[str, Shape, bool]]
    blocks: dict  # scope -> netc.ir.graph.Block
    total: Cost  # parameters and buffers of every node; MACs, FLOPs, memory of the inference path
    aux: Cost  # the training-only side heads alone

    @property
    def by_id(self) -> dict[int, NodeCost]:
        return {r.id: r for r in self.rows}

    def block(self, scope: str) -> Cost:
        """Subtotal of a named block (see `subtotal`)."""
        return subtotal(r for r in self.rows if scope in r.blocks)


def subtotal(rows: Iterable[NodeCost]) -> Cost:
    """Sum of a group of rows. Aux members' MACs, FLOPs and memory are left out unless every
    member is aux (a side head's own subtotal), matching the network totals."""
    rows = list(rows)
    every_aux = all(r.aux for r in rows)
    total = Cost()
    for r in rows:
        c = r.cost
        total += c if every_aux or not r.aux else Cost(params=c.params, buffers=c.buffers)
    return total


def finer(jump: int, factor: int) -> int:
    """The jump (or stride) after upsampling by `factor`; kept where it is not a multiple (an
    upsample before enough striding, whose sub-pixel jump the integer table cannot show: the
    receptive fields after it are then upper bounds)."""
    return jump // factor if jump % factor == 0 else jump


def _grid(shape: Shape, carried: tuple[int, int]) -> tuple[int, int]:
    return (shape[1], shape[2]) if len(shape) == 3 else carried


def analyse(network, dtype: str = "float32") -> CostReport:
    """Per-node costs of a compiled `netc.api.Network` (shapes already inferred), batch 1."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype '{dtype}'; one of {', '.join(DTYPE_BYTES)}")
    size = DTYPE_BYTES[dtype]
    g = network.graph
    node = g.node_table()
    inp = node[0].shape
    # receptive field, jump and spatial grid per node; flat tensors carry the grid they came from
    state = {0: ((1, 1), (1, 1), _grid(inp, (1, 1)))}
    rows = []
    for nid, d in network.nodes():
        ins = d.inputs
        (rh, rw), (jh, jw), grid = state[ins[0]]
        for i in ins[1:]:  # several inputs: the widest receptive field and jump
            (rh2, rw2), (jh2, jw2), _ = state[i]
            rh, rw, jh, jw = max(rh, rh2), max(rw, rw2), max(jh, jh2), max(jw, jw2)
        op, a = REGISTRY[d.op], d.attrs
        in_shapes = [node[i].shape for i in ins]
        zh, zw = op.upsampling(a, in_shapes)  # first: a transposed conv's window runs on the finer grid
        jh, jw = finer(jh, zh), finer(jw, zw)
        w = op.rf_window(a, grid, in_shapes)
        if w is not None:
            rh += w.d[0] * (w.k[0] - 1) * jh
            rw += w.d[1] * (w.k[1] - 1) * jw
            jh, jw = jh * w.s[0], jw * w.s[1]
            grid = (-(-grid[0] // w.s[0]), -(-grid[1] // w.s[1]))  # what a flat output still carries
        out = d.shape
        grid = _grid(out, grid)
        state[nid] = ((rh, rw), (jh, jw), grid)
        cost = Cost(d.params, d.buffers, d.macs, op.other_flops(a, in_shapes, out),
                    numel(out) * size)
        rows.append(NodeCost(nid, d.scope, d.op, op.label(a), out, cost, (rh, rw), (jh, jw), d.aux,
                             d.blocks))
    total, aux = subtotal(rows), subtotal(r for r in rows if r.aux)
    outputs = [(name, node[nid].shape, is_aux) for name, nid, is_aux in network.outputs]
    return CostReport(network.name, network.file, inp, dtype, rows, outputs, dict(g.blocks), total, aux)
