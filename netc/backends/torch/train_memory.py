"""Measured peak memory of one training step on the CPU, to check `netc.analysis.train`.

The CPU has no `max_memory_allocated`; torch's profiler with `profile_memory=True` records every
allocation and free of the CPU allocator with its running total ("Total Allocated"). That total
counts only what was allocated while profiling, so the bytes already held when the step starts
— parameters, buffers, optimizer state, the input batch and targets — are added, summed over
their distinct storages. The step is the one `netc.analysis.train` models: after one warm-up
step (which creates the optimizer state) and `zero_grad(set_to_none=True)`, one forward,
cross-entropy loss over every output, backward and optimizer step.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile

import torch
from torch import nn
from torch.nn import functional as F


def make_optimizer(model: nn.Module, name: str) -> torch.optim.Optimizer:
    """The optimizer that `netc.analysis.train` models under `name`."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-4)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=1e-4)
    raise ValueError(f"unknown optimizer '{name}'")


def _targets(outputs, batch: int) -> list[torch.Tensor]:
    return [torch.zeros(batch, *o.shape[2:], dtype=torch.long) for o in outputs]


def _step(model, opt, x, ys, amp: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
        out = model(x)
        outs = list(out) if isinstance(out, tuple) else [out]
        loss = sum(F.cross_entropy(o.float(), y) for o, y in zip(outs, ys))
    loss.backward()
    opt.step()


def _held_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            total += s.nbytes()
    return total


def measure_training_peak(model: nn.Module, input_shape, batch: int, optimizer: str = "sgd",
                          amp: bool = False) -> int:
    """Peak bytes held during one training step of `model` (float32, on the CPU)."""
    torch.manual_seed(0)
    model.train()
    opt = make_optimizer(model, optimizer)
    x = torch.randn(batch, *input_shape)
    with torch.no_grad():
        out = model(x)
    ys = _targets(list(out) if isinstance(out, tuple) else [out], batch)
    del out
    _step(model, opt, x, ys, amp)
    opt.zero_grad(set_to_none=True)
    gc.collect()
    state = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    held = _held_bytes([*model.parameters(), *model.buffers(), *state, x, *ys])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(model, opt, x, ys, amp)
    return held + _peak_allocated(prof)


def _peak_allocated(prof) -> int:
    """The largest running total of the profiled allocations, from the start of profiling."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as f:
            events = json.load(f)["traceEvents"]
    finally:
        os.unlink(path)
    memory = [e["args"] for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    if not memory:
        return 0
    memory.sort(key=lambda a: a.get("Ev Idx", 0))
    # the running total may carry bytes left over from an earlier profile: start from the first
    start = memory[0]["Total Allocated"] - memory[0]["Bytes"]
    return max(a["Total Allocated"] for a in memory) - start
