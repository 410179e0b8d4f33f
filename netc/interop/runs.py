"""Runs of unnamed op layers that repeat in a list (VGG's `features`: conv, bn, relu, conv, bn, relu,
maxpool, ...) written once under `repeat:` (`{repeat: 2, seq: [{conv: {out: 64, k: 3, p: 1}}, bn, relu]}`).

An unnamed `seq` is transparent and an unnamed repeat's iterations take the next positions, so
every layer keeps the name (its position) and the registration order it had written out.
"""
from __future__ import annotations

from netc.interop.yamlout import flow
from netc.ops import REGISTRY

MAX_PERIOD = 8  # the layers one iteration of a run may hold
SHORT = 96  # a repeat written on one line (yamlout.WIDTH less an indent)


def fold(layers: list) -> None:
    """Rewrite, in place, each run of at least two copies of a few unnamed op layers in `layers`
    into one repeat, where that takes fewer lines."""
    texts = [flow(v) if _plain(v) else None for v in layers]
    k = 0
    while k < len(layers):
        period, count = _best_run(texts, k)
        if count:
            seq = layers[k:k + period]
            layers[k:k + period * count] = [{"repeat": count, "seq": seq}]
            texts[k:k + period * count] = [None]
        k += 1


def _best_run(texts: list, k: int) -> tuple[int, int]:
    """(period, count) of the run starting at `k` that saves the most lines, (0, 0) where none does."""
    best, saved = (0, 0), 1  # a repeat of two single layers saves one line: not worth the construct
    for period in range(1, MAX_PERIOD + 1):
        unit = texts[k:k + period]
        if len(unit) < period or None in unit or len(", ".join(unit)) + 24 > SHORT:
            break
        count = 1
        while texts[k + count * period:k + (count + 1) * period] == unit:
            count += 1
        if count > 1 and period * count - 1 > saved:
            best, saved = (period, count), period * count - 1
    return best


def _plain(layer) -> bool:
    """An op layer without a name, reference, condition or output: its place is its only identity."""
    if isinstance(layer, str):
        return layer in REGISTRY
    return isinstance(layer, dict) and len(layer) == 1 and next(iter(layer)) in REGISTRY
