"""ONNX and torch.export backend: a Network (IR) and its built module -> deployment files.

`preflight(network)` lists the export hazards of the spec statically (`hazards.py`, no
torch); `export_onnx` exports the eval forward with torch's exporter, names the ONNX graph
after the spec's scopes (`names.py`), verifies it (checker, shapes, onnxruntime parity:
`verify.py`) and only then writes it atomically; `export_program` writes a saved
`torch.export.ExportedProgram`.
"""
from __future__ import annotations

import os

from netc.backends.onnx.hazards import Finding, preflight, raise_fatal

__all__ = ["Finding", "preflight", "export_onnx", "export_program"]


def export_onnx(network, module, path: str | os.PathLike | None, opset: int = 18, dynamic_batch: bool = False,
                verify: bool = True):
    """Export `module` (built from `network`) to ONNX; returns (bytes, Verdict or None).

    Fatal hazards raise before exporting; the file is written only after verification passed."""
    from netc.backends.onnx import export, verify as checks
    from netc.fsutil import write_atomic

    raise_fatal(preflight(network))
    _require("onnx", "onnxruntime", "onnxscript")
    model, named = export.onnx_model(network, module, opset, dynamic_batch)
    data = export.to_bytes(model)
    verdict = checks.verify(network, module, data, named, dynamic_batch) if verify else None
    if path is not None:
        write_atomic(path, data)
    return data, verdict


def export_program(network, module, path: str | os.PathLike, dynamic_batch: bool = False) -> None:
    """Write `torch.export.save` of the eval forward to `path` (atomically)."""
    from netc.backends.onnx import export
    from netc.fsutil import write_atomic

    write_atomic(path, export.program_bytes(network, module, dynamic_batch))


def _require(*packages: str) -> None:
    import importlib.util

    from netc.errors import error

    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise error("usage", f"ONNX export needs {', '.join(missing)}, which {verb} not installed", None,
                    "install netc's test extra: pip install -e '.[test]'")


def load_weights(module, path) -> None:
    from netc.backends.onnx.export import load_weights as load

    load(module, path)
