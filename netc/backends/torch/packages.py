"""Compiled packages: the backends, their entries' names in the cache (`cache.py`), and finding
and opening one for inference. Torch is imported only to open inductor's packages: a hit of the
onnxruntime backend needs onnxruntime alone (see `recipe.py`)."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netc.backends.torch import cache as store
from netc.errors import error

MAX_BATCH = 4096  # the exported program's batch dimension ranges over 1..MAX_BATCH
BACKENDS = ("inductor", "onnxruntime")
OPSET = 17
EXTENSION = {"inductor": ".pt2", "onnxruntime": ".onnx"}


def default_backend() -> str:
    """onnxruntime where it is installed (the faster of the two as measured, see `compile.py`), else inductor."""
    import importlib.util

    return "onnxruntime" if importlib.util.find_spec("onnxruntime") else "inductor"


def backend_of(compile: bool | str | None) -> str:
    """The backend `compile` names (True or 'default': `default_backend()`); an unknown one is an error."""
    backend = compile if isinstance(compile, str) and compile != "default" else default_backend()
    if backend not in BACKENDS:
        raise error("usage", f"unknown compile backend '{backend}'", None, f"one of {', '.join(BACKENDS)}")
    return backend


def options(backend: str) -> str:
    """The compile step's settings a package depends on (part of every key)."""
    return f"max_batch={MAX_BATCH}|" + ("freezing" if backend == "inductor" else f"opset{OPSET}|ort-optimised")


def cache_folder(cache=None) -> tuple[Path, int]:
    """The cache's folder (created private) and size bound: a bad NETC_CACHE_SIZE or folder is an
    error before anything is built or compiled."""
    limit = store.max_bytes()
    return store.private_dir(Path(cache) if cache is not None else store.cache_dir()), limit


def entry_name(name: str, key: str, backend: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:64]}-{key}{EXTENSION[backend]}"


@dataclass
class Package:
    """A compiled package opened for inference: `runner` is onnxruntime's session or inductor's
    loaded package; `seconds` the compile step (a miss) or the finding and opening (a hit)."""

    path: Path
    backend: str
    runner: Any
    seconds: float
    cached: bool
    note: dict = field(default_factory=dict)  # what netc recorded with it (`confirmed`: see `netc.api.build`)


def open_runner(path: Path, backend: str, threads: int | None = None):
    if backend == "inductor":
        import torch._inductor

        return torch._inductor.aoti_load_package(str(path))
    return ort_session(str(path), threads)


def find(folder: Path, filename: str, backend: str, limit: int, threads: int | None = None) -> Package | None:
    """The verified entry `folder/filename` opened (the cache then pruned to `limit` bytes), or None."""
    started = time.perf_counter()
    path = store.lookup(folder, filename)
    if path is None:
        return None
    runner = open_runner(path, backend, threads)
    store.evict(folder, limit, keep=path)
    return Package(path, backend, runner, time.perf_counter() - started, True, store.note(path))


def ort_session(model: bytes | str, threads: int | None = None, save_to: Path | None = None):
    """An onnxruntime CPU session with every graph optimisation (`threads`: intra-op threads,
    default onnxruntime's own choice); `save_to`: write the optimised graph there. It may hold
    kernels of this CPU's ISA (NCHWc blocks), which the cache's key records (`recipe.machine`)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise error("usage", "the onnxruntime backend needs the onnxruntime package", None,
                    "pip install onnxruntime, or use the inductor backend") from None
    settings = ort.SessionOptions()
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        settings.intra_op_num_threads = threads
    if save_to is not None:
        settings.optimized_model_filepath = str(save_to)
        settings.log_severity_level = 3  # not the warning that the saved graph fits this CPU only
    return ort.InferenceSession(model, settings, providers=["CPUExecutionProvider"])
