"""The compile cache's key of a build whose weights are fixed before it starts (`--seed N`,
`--weights FILE`): computed from what the module would be built from, not from the built module,
so that a hit skips building, initialising, folding and exporting altogether.

A compiled package is a function of:
- the compiled IR: every node's op, attributes, scope, inputs and inferred shape, the blocks the
  module is assembled from, the outputs and their order, the input shape (source locations are
  left out: editing a comment or moving a line of the spec keeps the key);
- the `init:` scheme, the seed, the weights (a file's SHA-256, a state_dict's tensors), the
  dtype, `init=False`, the optimisation level and the backend with its options;
- netc's own code: the files of the installed `netc` package are hashed, so a change to how netc
  builds, initialises or rewrites a module is a new key, not a stale hit;
- the versions of Python, torch and the backend, and the CPU: its feature flags and
  `ATEN_CPU_CAPABILITY`, which decide `torch.backends.cpu.get_cpu_capability()` (the kernels that
  draw the seeded weights: AVX2's and AVX-512's `normal_` may differ in the last bit; where
  /proc/cpuinfo cannot be read, torch is asked), and for inductor the vector ISA its C++ is
  compiled for.

Torch is not imported for onnxruntime on Linux: a hit of the default backend loads the ONNX file
into an onnxruntime session and never starts torch (benchmarks/bench_compile_cache.py).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

from netc.errors import Loc

VERSION = 1  # of this key's layout
NODE_FIELDS_LEFT_OUT = ("loc", "via", "meta", "lint_ignore")  # where it was written, lint and pass notes


def recipe_key(network, backend: str, dtype: str, init: bool, seed: int | None, weights, options: str) -> str:
    """The key (32 hex digits) of `network` built with these choices and compiled by `backend`
    with `options` (the compile step's own settings); `weights`: a path or a state_dict."""
    h = hashlib.sha256()
    h.update(f"netc-recipe-{VERSION}|{source_digest()}|{versions(backend)}|{machine(backend)}|".encode())
    h.update(f"{backend}|{options}|{dtype}|init={init}|seed={seed}|".encode())
    h.update(graph_text(network).encode())
    if weights is not None:
        h.update(weights_digest(weights).encode())
    return h.hexdigest()[:32]


def graph_text(network) -> str:
    """The compiled network as canonical JSON: everything the built module depends on, nothing
    of where the spec wrote it."""
    g = network.graph
    nodes = [[nid, {f.name: _plain(getattr(node, f.name)) for f in dataclasses.fields(node)
                    if f.name not in NODE_FIELDS_LEFT_OUT}] for nid, node in g.node_items()]
    whole = {"name": network.name, "input": list(g.input_shape), "nodes": nodes, "order": list(network.order),
             "outputs": _plain(g.outputs), "wanted_outputs": _plain(network.spec.outputs),
             "blocks": _plain(g.blocks), "init": _plain(network.init_scheme()),
             "fixed_size": g.size_from_input is not None, "transforms": list(network.transforms),
             "removed": sorted(network.removed)}
    return json.dumps(whole, sort_keys=True, separators=(",", ":"))


def _plain(value):
    """`value` as JSON-able data, source locations dropped; an unknown object by its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Loc):
        return None
    if hasattr(value, "model_dump"):  # an op's attributes, an init scheme (pydantic)
        return [type(value).__name__, _plain(value.model_dump())]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [type(value).__name__, {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                                       if f.name != "loc"}]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=json.dumps)
    return repr(value)


@functools.cache
def source_digest() -> str:
    """SHA-256 of netc's own files (the installed package's, byte for byte, in path order)."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def versions(backend: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = ["torch"] + (["onnxruntime"] if backend == "onnxruntime" else [])
    found = []
    for name in names:
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=none")
    return f"python={sys.version_info[:2]}|" + "|".join(found)


def machine(backend: str) -> str:
    """The CPU as far as the package and the seeded weights depend on it."""
    from netc.analysis.onednn import cpu_flags

    flags = cpu_flags()
    if flags is None:  # no /proc/cpuinfo: ask torch what it dispatches to
        import torch

        flags = (torch.backends.cpu.get_cpu_capability(),)
    text = f"{platform.machine()}|{' '.join(sorted(flags))}|ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '')}"
    if backend == "inductor":  # the package's C++ uses this vector ISA: another CPU may lack it
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        text += f"|isa={pick_vec_isa()}"
    return text


def weights_digest(weights) -> str:
    """SHA-256 of a weights file's bytes, or of a state_dict's names, shapes, dtypes and values."""
    if isinstance(weights, dict):
        h = hashlib.sha256()
        hash_tensors(h, weights)
        return h.hexdigest()
    from netc.backends.torch.weights import file_digest

    return file_digest(weights)


def hash_tensors(h, tensors: dict) -> None:
    """Names, shapes, dtypes, strides and bytes of `tensors` into the hash `h`, in name order."""
    import torch

    for name, t in sorted(tensors.items()):
        h.update(name.encode())
        h.update(str((tuple(t.shape), t.dtype, t.stride())).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
