"""Will the parameters fit? The figure from the IR, checked before anything is allocated."""
from __future__ import annotations

import torch

from netc.errors import error


def available_bytes(device: torch.device) -> int | None:
    """Free memory on `device` (CUDA: the driver's figure; CPU: MemAvailable), None if unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(network, device: torch.device, dtype: torch.dtype) -> int:
    """Parameter and buffer bytes of `network` in `dtype`; a NetcError (limit) if they do not fit
    on `device`. The meta device allocates nothing, so everything fits there."""
    elems = sum(d["params"] + d["buffers"] for _, d in network.nodes())
    need = elems * dtype.itemsize
    free = available_bytes(device) if device.type != "meta" else None
    if free is not None and need > free:
        raise error("limit", f"the parameters need {need / 2**30:.2f} GiB on {device}, but only "
                    f"{free / 2**30:.2f} GiB is available", None,
                    "use --dtype bfloat16/float16, a smaller width (--set), or another device")
    return need
