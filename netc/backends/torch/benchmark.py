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

from netc.backends.torch.timing import interleaved, paired_ratio


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
          tick: Callable[[str], None] | None = None, compile: bool | str = False) -> Bench:
    """Build `network` (a `netc.api.Network`) on `device`, eval mode, and time its forward on a
    random batch; `threads` sets torch's CPU thread count first; `compile` as `Network.build`'s."""
    from netc.backends.torch.memory import check_activations
    from netc.backends.torch.module import resolve_device

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    check_activations(network, dev, batch)
    module = network.build(dev, optimize=optimize, compile=compile).eval()
    x = torch.randn(batch, *network.input_shape, device=dev)
    timing = measure(module, x, iters, warmup, amp, tick)
    n = torch.get_num_threads()
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {n} thread{'s' * (n != 1)}"
    precision = ("float16" if dev.type == "cuda" else "bfloat16") + " autocast" if amp else "float32"
    return Bench(network.name, dev, where, precision, optimize, warmup, network.macs, timing)


# --- against a peer: `netc bench --vs torchvision|compile|onnxruntime` ------------------------

PEERS = ("torchvision", "compile", "onnxruntime")


def reference_model(network, weights: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The published implementation the spec reproduces (`meta: {torchvision: NAME}` or
    `{timm: NAME}`, see `reference.build_reference`), in eval mode with `weights`' state_dict;
    else netc's plain module itself. Returns the model and what it is."""
    from netc.backends.torch.reference import build_reference

    found = build_reference(network, weights)
    if found is not None:
        return found
    # a plain fx.GraphModule of the eval forward: exporters trace it like any module
    from netc.backends.torch.optimize import eval_graph_module

    return eval_graph_module(weights), "netc's plain module (the spec names no torchvision or timm model)"


def peer_runner(peer: str, reference: torch.nn.Module, example: torch.Tensor) -> Callable:
    """`reference` under the peer runtime: eager, `torch.compile` (default options) or
    onnxruntime (exported to ONNX, all graph optimisations, as many threads as torch uses)."""
    if peer == "torchvision":
        return reference
    if peer == "compile":
        return torch.compile(reference)
    if peer == "onnxruntime":
        return onnx_runner(reference, example)
    raise ValueError(f"unknown peer '{peer}'")


def onnx_runner(model: torch.nn.Module, example: torch.Tensor) -> Callable:
    from netc.backends.torch.compile import onnx_bytes, ort_runner

    return ort_runner(onnx_bytes(model, example))


@dataclass(frozen=True)
class Versus:
    batch: int
    netc_s: float  # median seconds per batch
    peer_s: float
    speedup: float  # median of paired peer time / netc time (> 1: netc is faster)
    max_diff: float  # largest absolute difference of the outputs


def versus(module, peer: Callable, input_shape, batches=(1, 8), reps: int = 10, warmup: int = 2,
           atol: float = 1e-3) -> list[Versus]:
    """Compare outputs on one random batch, then time `module` and `peer` interleaved per batch
    size; raises AssertionError if the outputs differ by more than `atol` (relative to their scale)."""
    import statistics

    results = []
    with torch.inference_mode():
        for batch in batches:
            x = torch.randn(batch, *input_shape)
            ours, theirs = _outputs(module(x)), _outputs(peer(x))
            if len(ours) != len(theirs):
                raise AssertionError(f"{len(ours)} outputs against the peer's {len(theirs)}")
            diff = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
            if diff > atol * max(1.0, *(b.abs().max().item() for b in theirs)):
                raise AssertionError(f"outputs differ at batch {batch}: max abs diff {diff:.3g}")
            times = interleaved({"netc": lambda: module(x), "peer": lambda: peer(x)}, reps, warmup)
            results.append(Versus(batch, statistics.median(times["netc"]), statistics.median(times["peer"]),
                                  paired_ratio(times, "peer", "netc"), diff))
    return results


def _outputs(value) -> list:
    """A forward's result as a list of tensors: one, or a spec's several (a namedtuple, or the
    list onnxruntime returns)."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run_versus(network, peer: str, optimize: str | None = None, compile: bool = False, batches=(1, 8),
               reps: int = 10, warmup: int = 2, threads: int | None = None) -> tuple[str, list[Versus]]:
    """netc's module of `network` (as `Network.build(optimize=, compile=)` makes it) against the
    reference implementation under `peer`, both with the same random weights on the CPU (with
    `threads` torch CPU threads, if given)."""
    if threads:
        torch.set_num_threads(threads)
    from netc.backends.torch.compile import optimize as optimize_module

    weights = network.build().eval()
    reference, what = reference_model(network, weights)
    ours = weights
    if optimize or compile:
        ours = optimize_module(weights, optimize, compile, network.input_shape, network.name)
    runner = peer_runner(peer, reference, torch.randn(max(batches), *network.input_shape))
    label = f"{what} under {'eager PyTorch' if peer == 'torchvision' else peer}"
    return label, versus(ours, runner, network.input_shape, batches, reps, warmup)
