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

from dataclasses import dataclass, replace
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


class HasFields:
    """`rf` and `jump` pairs of something with `fields` (its receptive field along H and W)."""

    __slots__ = ()

    @property
    def rf(self) -> tuple[int, int]:
        return self.fields[0].size, self.fields[1].size

    @property
    def jump(self) -> tuple[int, int]:
        return self.fields[0].jump, self.fields[1].jump


@dataclass(slots=True)
class NodeCost(HasFields):
    """One IR node's row: what it computes, its output and its costs."""

    id: int
    scope: str
    op: str
    label: str
    shape: Shape
    cost: Cost
    fields: tuple[Field, Field]  # the receptive field along H and W
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


@dataclass(frozen=True)
class Field:
    """Where one node's output positions look in the input, along one axis (Araujo, Norris & Sim
    2019, "Computing Receptive Fields of Convolutional Neural Networks", Distill): output position
    i depends on input pixels i*jump - start .. i*jump - start + size - 1, or on all of them
    (`whole`: through a global pool, a linear, a gate computed from one). `exact` is False
    downstream of an op whose dependence is no such interval (upsampling, reflected padding):
    the numbers are then estimates. `dense` is False after a dilated window: the interval is the
    field's extent, with pixels inside it that the position does not read."""

    size: int = 1
    jump: int = 1
    start: int = 0
    whole: bool = False
    exact: bool = True
    dense: bool = True

    def through(self, w_k: int, w_s: int, w_d: int, w_p: int) -> Field:
        """After a window of kernel `w_k`, stride `w_s`, dilation `w_d`, `w_p` padding before it."""
        return replace(self, size=self.size + w_d * (w_k - 1) * self.jump, jump=self.jump * w_s,
                       start=self.start + w_p * self.jump, dense=self.dense and (w_d == 1 or w_k == 1))


def merge(fields: list[Field], spans: list[bool]) -> Field:
    """The field of an op over several inputs (add, mul, cat): the union of what its inputs see.
    An input that does not span the output grid (a 1x1 gate broadcast over a map) sees the whole
    input for every position; the inputs that span it share one jump where the graph is sound."""
    spatial = [f for f, spanning in zip(fields, spans) if spanning] or fields
    start = max(f.start for f in spatial)
    end = max(f.size - f.start for f in spatial)  # the last pixel, relative to i*jump
    broadcast = [f for f, spanning in zip(fields, spans) if not spanning]
    return Field(size=start + end, jump=max(f.jump for f in spatial), start=start,
                 whole=any(f.whole for f in fields),
                 exact=all(f.exact and (f.whole or f in spatial) for f in fields) and len({f.jump for f in spatial}) == 1
                 and all(f.whole for f in broadcast), dense=all(f.dense for f in fields))


def covers(f: Field, n: int, extent: int) -> bool:
    """Whether `n` positions of field `f` together see every one of `extent` input pixels (not
    provable with holes in the field, where a dilated window skips pixels)."""
    return f.whole or (f.dense and f.size >= f.jump and (n - 1) * f.jump - f.start + f.size >= extent)


def _fields(op, a, ins: list[Field], in_shapes: list[Shape], grid, out_grid, extent,
            layout: str) -> tuple[Field, Field]:
    """The (H, W) fields of an op's output from its inputs' (`ins`: per input, (H, W)); `extent`
    is the network input's H and W, `layout` names the first input's axes ('chw', 'hwc', ...)."""
    spans = [_grid(s, grid) == out_grid or len(s) != 3 for s in in_shapes]
    axes = []
    for axis in range(2):
        f = merge([i[axis] for i in ins], spans) if len(ins) > 1 else ins[0][axis]
        if not op.rf_exact(a):
            f = replace(f, exact=False)
        axes.append(f)
    zoom = op.upsampling(a, in_shapes)  # first: a transposed conv's window runs on the finer grid
    axes = [replace(f, jump=finer(f.jump, z), exact=False) if z != 1 else f for f, z in zip(axes, zoom)]
    mixed = {layout[k] for k in op.mixed_axes(a, in_shapes) if k < len(layout)}
    # an op reading every position of H or W (statistics, a softmax, a linear over W): each output
    # sees what all of them see
    axes = [(replace(f, whole=True) if covers(f, grid[i], extent[i]) else replace(f, exact=False))
            if "hw"[i] in mixed else f for i, f in enumerate(axes)]
    w = op.rf_window(a, grid, in_shapes)
    if w is not None and (not w.even or len(layout) == 3 and layout != "chw"):  # uneven, or over permuted axes
        axes = [replace(f, exact=False) for f in axes]
    if w is not None:  # a window that sees its whole map sees all of the input that map sees
        axes = [replace(f.through(w.k[i], w.s[i], w.d[i], w.p[i]),
                        whole=_sees_map(w, i, grid[i], out_grid[i]) and covers(f, grid[i], extent[i]) or f.whole)
                for i, f in enumerate(axes)]
        # positions that read only padding see nothing: 'the whole input' no longer holds
        axes = [replace(f, whole=False, exact=False) if f.whole and _pads_only(w, i, grid[i], out_grid[i]) else f
                for i, f in enumerate(axes)]
    return axes[0], axes[1]


def _pads_only(w, axis: int, n: int, out: int) -> bool:
    """Whether some window along `axis` may read padding alone (a pad op's border, a window
    narrower than its padding, a dilated one whose taps step over a small map)."""
    extent = w.d[axis] * (w.k[axis] - 1) + 1
    return extent <= w.p[axis] or (w.k[axis] == 1 and w.s[axis] == 1 and out > n) or (w.d[axis] > 1 and w.k[axis] > 1)


def _layout(order, layout: str, rank: int) -> str:
    """The names of an output's axes: permuted by `order`, kept, or unknown ('?') where the rank changed."""
    if order is not None and len(order) == len(layout):
        return "".join(layout[k] for k in order)
    return layout if len(layout) == rank else "?" * rank


def _sees_map(w, axis: int, n: int, out: int) -> bool:
    """Whether every one of `out` windows along `axis` spans all `n` positions of its map (a
    global pool, a linear over a flattened map; not a padded window that merely is as wide)."""
    k, s, d, p = w.k[axis], w.s[axis], w.d[axis], w.p[axis]
    return d == 1 and (out - 1) * s - p <= 0 and k - 1 - p >= n - 1


def analyse(network, dtype: str = "float32") -> CostReport:
    """Per-node costs of a compiled `netc.api.Network` (shapes already inferred), batch 1."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype '{dtype}'; one of {', '.join(DTYPE_BYTES)}")
    size = DTYPE_BYTES[dtype]
    g = network.graph
    node = g.node_table()  # plain dict lookups: networkx's node view is slower
    inp = node[0].shape
    # fields and spatial grid per node; flat tensors carry the grid they came from
    extent = _grid(inp, (1, 1))
    state = {0: ((Field(), Field()), extent)}
    layouts = {0: "chw" if len(inp) == 3 else "?" * len(inp)}  # which axis is which, through permutes
    rows = []
    for nid, d in network.nodes():
        ins = d.inputs
        grid = state[ins[0]][1]
        op, a = REGISTRY[d.op], d.attrs
        in_shapes = [node[i].shape for i in ins]
        w = op.rf_window(a, grid, in_shapes)
        out_grid = (-(-grid[0] // w.s[0]), -(-grid[1] // w.s[1])) if w is not None else grid
        out = d.shape
        out_grid = _grid(out, out_grid)  # what a flat output still carries
        fields = _fields(op, a, [state[i][0] for i in ins], in_shapes, grid, out_grid, extent, layouts[ins[0]])
        layouts[nid] = _layout(op.axis_order(a), layouts[ins[0]], len(out))
        state[nid] = (fields, out_grid)
        cost = Cost(d.params, d.buffers, d.macs, op.other_flops(a, in_shapes, out),
                    numel(out) * size)
        rows.append(NodeCost(nid, d.scope, d.op, op.label(a), out, cost, fields, d.aux, d.blocks))
    total, aux = subtotal(rows), subtotal(r for r in rows if r.aux)
    outputs = [(name, node[nid].shape, is_aux) for name, nid, is_aux in network.outputs]
    return CostReport(network.name, network.file, inp, dtype, rows, outputs, dict(g.blocks), total, aux)
