"""Will it fit? Parameter and activation figures from the IR, checked before anything is allocated."""
from __future__ import annotations

import resource

import torch

from netc.errors import error


def available_bytes(device: torch.device) -> int | None:
    """Memory free to this process on `device`, None if unknown. CUDA: the driver's figure; CPU:
    MemAvailable, capped by the process's address-space limit (RLIMIT_AS) where one is set."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY:
        free = limit if free is None else min(free, limit)
    return free


def check_memory(network, device: torch.device, dtype: torch.dtype) -> int:
    """Parameter and buffer bytes of `network` in `dtype`; a NetcError (limit) if they do not fit
    on `device`. The meta device allocates nothing, so everything fits there."""
    elems = sum(d.params + d.buffers for _, d in network.nodes())
    need = elems * dtype.itemsize
    check_bytes(need, device, "the parameters", None,
                "use --dtype bfloat16/float16, a smaller width (--set), or another device")
    return need


def check_bytes(need: int, device: torch.device, what: str, loc=None, hint: str | None = None) -> None:
    """error[limit] at `loc` if `need` bytes of `what` cannot fit on `device` (the meta device
    allocates nothing, so everything fits there)."""
    free = available_bytes(device) if device.type != "meta" else None
    if free is not None and need > free:
        raise error("limit", f"{what} need {need / 2**30:.2f} GiB on {device}, but only "
                    f"{free / 2**30:.2f} GiB is available", loc, hint)


def check_activations(network, device: torch.device, batch: int,
                      hint: str = "use a smaller --batch or --input") -> None:
    """Refuse a forward whose tensors cannot fit, before allocating any: it holds at least the
    batch's input and the largest op's output (float32) besides the parameters. Every command
    that runs a real forward (bench, export, compile, import's verification) asks this first;
    the error points at the op whose output is the largest, or at the input."""
    from netc.ops.base import fmt_shape, numel

    params = sum(d.params + d.buffers for _, d in network.nodes()) * 4
    largest = max(network.nodes(), key=lambda n: numel(n[1].shape), default=(0, network.graph.node(0)))[1]
    inputs = numel(network.input_shape)
    need = params + batch * (inputs + numel(largest.shape)) * 4
    free = available_bytes(device)
    if free is None or need <= free:
        return
    what, shape, loc, via = "the input", network.input_shape, network.graph.input_loc, ()
    if numel(largest.shape) > inputs:
        what, shape = f"the output of '{largest.scope}' ({largest.op})", largest.shape
        loc, via = largest.loc, largest.via
    raise error("limit", f"a forward of batch {batch} needs at least {need / 2**30:,.1f} GiB on {device} (parameters, "
                         f"input and the largest activation, {what}: {fmt_shape(shape)} per sample), "
                         f"but only {free / 2**30:,.1f} GiB is available", loc, hint, via)
