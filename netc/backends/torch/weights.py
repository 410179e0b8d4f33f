"""Reading a state_dict file (torch.save of a module's state_dict, tensors only)."""
from __future__ import annotations

import os
import stat

from netc.errors import error


def read_state_dict(path) -> dict:
    """The state_dict in `path`: a regular file, unpickled with weights_only (no code runs), a
    mapping of str to tensors (or one under a 'state_dict' key, as training checkpoints keep it)."""
    import torch

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error("io", f"no such weights file: '{path}'") from None
    if not stat.S_ISREG(mode):
        raise error("io", f"'{path}' is not a regular file", None, "give a state_dict saved with torch.save")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - not a torch file, or one holding more than tensors
        raise error("io", f"cannot read weights '{path}': {type(exc).__name__}: {exc}", None,
                    "expected a state_dict saved with torch.save (netc build --save)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise error("io", f"'{path}' holds a {type(state).__name__}, not a state_dict")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise error("io", f"'{path}' is not a state_dict: entry {bad[0]!r} is not a name and a tensor")
    return state
