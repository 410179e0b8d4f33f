"""Input-output paths of a network's graph: the unraveled view of Veit et al. 2016.

A network of n residual blocks has 2^n paths from input to output, one per choice of body or
shortcut at each block; their lengths follow Binomial(n, 1/2) ("Residual Networks Behave Like
Ensembles of Relatively Shallow Networks", section 3). Here every path of the DAG is counted
exactly (Python integers: resnet1202 has 2^600), with its length measured two ways:

- in residual blocks: how many residual bodies the path goes through (netc.ir.transform's
  residual add: input 0 is the body);
- in weighted layers: how many conv / linear ops (MACs > 0) it goes through.

Counting is one pass over the graph in topological order. A length distribution is a list of
counts with an offset; an op with one input shares its input's list, shifted, so only merges
(add, cat) copy: linear in the graph size for chains, plus the lengths' span at each merge.
Only the main (first non-auxiliary) output's paths are counted.
"""
from __future__ import annotations

import math
import operator
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from netc.errors import error, int_exact, magnitude
from netc.ir.transform import is_residual_add, residual_parts


@dataclass(frozen=True)
class Distribution:
    """counts[i] paths of length offset + i."""

    offset: int
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def lengths(self) -> range:
        return range(self.offset, self.offset + len(self.counts))

    def count(self, length: int) -> int:
        i = length - self.offset
        return self.counts[i] if 0 <= i < len(self.counts) else 0

    def share(self, lo: int, hi: int) -> Fraction:
        """Fraction of paths whose length is in [lo, hi]."""
        return Fraction(sum(self.count(n) for n in range(max(lo, self.offset), min(hi, self.lengths[-1]) + 1)),
                        self.total)

    @property
    def mean(self) -> float:
        return float(Fraction(sum(n * c for n, c in zip(self.lengths, self.counts)), self.total))

    def central(self, mass: Fraction = Fraction(95, 100)) -> tuple[int, int]:
        """The central interval [lo, hi]: at most (1 - mass) / 2 of the paths below lo, and as many above hi."""
        tail = (1 - mass) / 2 * self.total
        lo, below = self.offset, 0
        for n, c in zip(self.lengths, self.counts):
            if below + c > tail:
                lo = n
                break
            below += c
        hi, above = self.lengths[-1], 0
        for n, c in zip(reversed(self.lengths), reversed(self.counts)):
            if above + c > tail:
                hi = n
                break
            above += c
        return lo, hi


# Length distributions grow with depth, so merging them costs the lengths' span at each merge,
# and each count is an integer of up to one bit per block: cubic for a hostile spec of thousands
# of chained merges. Work is counted in 64-bit word additions: resnet1202 needs ~7 M; a chain
# of 3,000 residual blocks passes this budget after ~9 s and is refused.
MAX_WORK = 500_000_000


def _merge(parts: list[tuple[int, list[int]]], work: list[int]) -> tuple[int, list[int]]:
    if len(parts) == 1:
        return parts[0]
    lo = min(o for o, _ in parts)
    out = [0] * (max(o + len(c) for o, c in parts) - lo)
    words = 1 + max(max(map(int.bit_length, c)) for _, c in parts) // 64
    work[0] += len(out) * len(parts) * words
    if work[0] > MAX_WORK:
        raise error("limit", f"counting paths by length takes more than {MAX_WORK:,} word additions here", None,
                    "the network has too many merges of long paths to tabulate")
    for o, c in parts:
        a = o - lo
        out[a:a + len(c)] = map(operator.add, out[a:a + len(c)], c)
    return lo, out


@dataclass(frozen=True)
class Paths:
    network: str
    output: str
    blocks: Distribution  # length in residual bodies
    layers: Distribution  # length in weighted (conv / linear) layers
    residual_blocks: int

    @property
    def count(self) -> int:
        return self.layers.total

    @property
    def log2(self) -> float:
        return math.log2(self.count)


def count_paths(network) -> Paths:
    """Every input-output path of the network's main output, by length in blocks and in layers."""
    g = network.graph
    name, out, _ = next(o for o in network.outputs if not o[2])
    blocks: dict[int, tuple[int, list[int]]] = {0: (0, [1])}
    layers: dict[int, tuple[int, list[int]]] = {0: (0, [1])}
    # a node's distributions are dropped once its last consumer has read them: only the frontier's
    # are held (a table per node is cubic memory in the blocks: 2 GB at 3,000)
    unread = Counter(i for nid in network.order for i in g.node(nid).inputs)
    residuals, work = 0, [0]
    for nid in network.order:
        if nid == 0:
            continue
        d = g.node(nid)
        ins = [i for i in d.inputs if i in layers]  # aux branches never feed the main path
        if ins:
            body = residual_parts(d)[0] if is_residual_add(d) else None
            residuals += body is not None
            blocks[nid] = _merge([(blocks[i][0] + (i == body), blocks[i][1]) for i in ins], work)
            o, c = _merge([layers[i] for i in ins], work)
            layers[nid] = (o + (d.macs > 0), c)
        for i in d.inputs:
            unread[i] -= 1
            if unread[i] == 0 and i != out:
                blocks.pop(i, None)
                layers.pop(i, None)
    return Paths(network.name, name, Distribution(blocks[out][0], tuple(blocks[out][1])),
                 Distribution(layers[out][0], tuple(layers[out][1])), residuals)


def _pct(f: Fraction) -> str:
    return f"{float(f) * 100:.2f}%"


def _big(n: int) -> str:
    return f"{n:,}" if n < 10**30 else magnitude(n)


def histogram(dist: Distribution, width: int = 40, rows: int = 30) -> list[str]:
    """ASCII histogram over the central 99.9% of lengths, at most `rows` bins."""
    lo, hi = dist.central(Fraction(999, 1000))
    step = max(1, math.ceil((hi - lo + 1) / rows))
    bins = [(a, min(a + step - 1, hi)) for a in range(lo, hi + 1, step)]
    shares = [dist.share(a, b) for a, b in bins]
    top = max(shares)
    out = []
    for (a, b), s in zip(bins, shares):
        label = f"{a}" if a == b else f"{a}-{b}"
        out.append(f"{label:>9} {_pct(s):>7} {'#' * round(width * s / top)}".rstrip())
    return out


def report(p: Paths, between: tuple[int, int] | None = None) -> str:
    """The text report of `netc paths`."""
    lines = [f"{p.network}: {_big(p.count)} path{'s' if p.count > 1 else ''} from input to {p.output} (log2 {p.log2:.2f}); "
             f"{p.residual_blocks} residual blocks"]
    dists = [("weighted layers", p.layers)]
    if p.residual_blocks:
        dists.insert(0, ("residual blocks", p.blocks))
    for what, dist in dists:
        lo, hi = dist.central()
        lines.append(f"length in {what}: {dist.offset}-{dist.lengths[-1]}, mean {dist.mean:.2f}; "
                     f"central 95%: {lo}-{hi} ({_pct(dist.share(lo, hi))} of paths)")
    main = dists[0][1]
    if between:
        lines.append(f"{between[0]}-{between[1]} {dists[0][0]}: {_pct(main.share(*between))} of paths")
    if p.count > 1:
        lines.append("")
        lines.append(f"paths by length in {dists[0][0]}:")
        lines += histogram(main)
    return "\n".join(lines) + "\n"


def as_json(p: Paths) -> dict:
    def dist(d: Distribution) -> dict:
        lo, hi = d.central()
        return {"min": d.offset, "max": d.lengths[-1], "mean": d.mean, "central95": [lo, hi],
                "counts": {str(n): int_exact(c) for n, c in zip(d.lengths, d.counts) if c}}

    return {"network": p.network, "output": p.output, "paths": int_exact(p.count), "log2": p.log2,
            "residual_blocks": p.residual_blocks, "blocks": dist(p.blocks), "layers": dist(p.layers)}
