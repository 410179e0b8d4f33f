"""Interleaved timing and paired ratios: how netc compares two implementations on a noisy,
shared machine (used by `netc bench --vs` and by benchmarks/). Imports no torch."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each fn per repetition: one call of each per repetition, after `warmup` rounds.
    The order rotates by one each repetition, so no fn always runs first (or right after another)."""
    keys = list(fns)
    times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(warmup + reps):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter()
            fns[key]()
            if r >= warmup:
                times[key].append(time.perf_counter() - t)
    return times


def paired_ratio(times: dict[str, list[float]], num: str, den: str) -> float:
    """Median over repetitions of times[num][r] / times[den][r]: each ratio is taken within one
    repetition (seconds apart), so slow drifts of the machine's load cancel."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))
