"""Throughput and latency of a module's forward on its device (`Network.bench`, `netc bench`).

Each timed iteration is one forward of a full batch under `torch.inference_mode()`, closed by a
device synchronisation, so a latency is the wall time the caller waits for that batch. Warm-up
iterations run first (oneDNN/cuDNN pick their kernels, caches fill) and are not counted.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class Timing:
    batch: int
    latencies: tuple[float, ...]  # seconds per batch, in run order

    @property
    def total(self) -> float:
        return sum(self.latencies)

    @property
    def images_per_s(self) -> float:
        return self.batch * len(self.latencies) / self.total

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the per-batch latencies (q in 0..100)."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    def flops_per_s(self, macs_per_image: int) -> float:
        """Achieved FLOP/s at the median latency, counting 2 FLOPs per conv/linear MAC."""
        return 2 * macs_per_image * self.batch / self.percentile(50)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: bool):
    """Mixed precision: float16 on CUDA, bfloat16 on the CPU; a no-op without `amp`."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


def measure(module: torch.nn.Module, x: torch.Tensor, iters: int, warmup: int = 3, amp: bool = False,
            tick: Callable[[str], None] | None = None) -> Timing:
    """Time `iters` forwards of `x` after `warmup` untimed ones; `tick(phase)` after each."""
    device = x.device
    latencies = []
    with torch.inference_mode(), autocast(device, amp):
        for _ in range(warmup):
            module(x)
            synchronize(device)
            if tick:
                tick("warmup")
        for _ in range(iters):
            t0 = time.perf_counter()
            module(x)
            synchronize(device)
            latencies.append(time.perf_counter() - t0)
            if tick:
                tick("timed")
    return Timing(x.shape[0], tuple(latencies))


@dataclass(frozen=True)
class Bench:
    """One benchmark of a network's built module: where it ran, how, and the timing."""

    spec: str
    device: torch.device
    where: str  # the GPU's name, or the CPU and its thread count
    precision: str
    optimize: str | None
    warmup: int
    macs: int  # conv/linear MACs per image
    timing: Timing

    @property
    def flops_per_s(self) -> float:
        return self.timing.flops_per_s(self.macs)


def bench(network: Any, device="auto", batch: int = 8, iters: int = 20, warmup: int = 3, amp: bool = False,
          optimize: str | None = None, threads: int | None = None,
          tick: Callable[[str], None] | None = None) -> Bench:
    """Build `network` (a `netc.api.Network`) on `device`, eval mode, and time its forward on a
    random batch; `threads` sets torch's CPU thread count first."""
    from netc.backends.torch.memory import check_activations
    from netc.backends.torch.module import resolve_device

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    check_activations(network, dev, batch)
    module = network.build(dev, optimize=optimize).eval()
    x = torch.randn(batch, *network.input_shape, device=dev)
    timing = measure(module, x, iters, warmup, amp, tick)
    n = torch.get_num_threads()
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {n} thread{'s' * (n != 1)}"
    precision = ("float16" if dev.type == "cuda" else "bfloat16") + " autocast" if amp else "float32"
    return Bench(network.name, dev, where, precision, optimize, warmup, network.macs, timing)
