"""Verify an exported ONNX model against the spec and the torch module it came from.

Three checks, each a NetcError when it fails: `onnx.checker` (full check), ONNX shape
inference's shape of every scope-named tensor equals netc's inferred shape, and onnxruntime's
output equals the torch module's (same weights, eval mode) for a batch of 1 and, for a
dynamic-batch model, a larger batch.
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.errors import error
from netc.ops import fmt_shape

TOLERANCE = 1e-4
RTOL = 1e-3
DYNAMIC_BATCH = 3


@dataclass
class Verdict:
    shapes_checked: int
    max_diff: dict[int, float]  # batch -> max |onnxruntime - torch|

    def summary(self) -> str:
        diffs = ", ".join(f"{d:.1e} at batch {b}" for b, d in self.max_diff.items())
        return (f"onnx.checker passed; shapes of {self.shapes_checked} named tensors agree with netc; "
                f"onnxruntime matches torch (max |diff| {diffs})")


def check(data: bytes) -> None:
    """onnx.checker on the serialized model; its shape-inference half (`full_check`) is
    `inferred_shapes`' strict pass, which runs once for both."""
    import onnx

    try:
        onnx.checker.check_model(data)
    except Exception as exc:
        raise error("export", f"onnx.checker rejects the exported model: {exc}") from None


def inferred_shapes(data: bytes) -> dict[str, list]:
    """ONNX shape inference, strict and type-checked as the checker's full check runs it:
    {value name: dims (int, or the name of a symbolic dim)}."""
    import onnx

    try:
        model = onnx.shape_inference.infer_shapes(data, check_type=True, strict_mode=True)
    except Exception as exc:
        raise error("export", "ONNX shape inference (the checker's full check) rejects the exported "
                    f"model: {exc}") from None
    out = {}
    for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]:
        dims = v.type.tensor_type.shape.dim
        out[v.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return out


def compare_shapes(network, named: dict[str, str], data: bytes, dynamic_batch: bool) -> int:
    """Every scope-named tensor's ONNX shape equals netc's (batch: 1, or symbolic); their count."""
    shapes = inferred_shapes(data)
    by_scope = {d.scope: d.shape for _, d in network.nodes()}
    bad, n = [], 0
    for scope, value in named.items():
        dims = shapes.get(value)
        want = tuple(by_scope[scope])
        if dims is None or tuple(dims[1:]) != want or (dims[0] != 1 if not dynamic_batch else isinstance(dims[0], int)):
            bad.append(f"{scope}: netc {fmt_shape(want)}, ONNX {dims}")
        n += 1
    if bad:
        raise error("export", f"ONNX shape inference disagrees with netc on {len(bad)} tensor(s): "
                    + "; ".join(bad[:5]))
    return n


def compare_outputs(network, module, data: bytes, dynamic_batch: bool) -> dict[int, float]:
    """Max |onnxruntime - torch| over the eval outputs (a spec's named outputs are several) for
    each batch; an error above TOLERANCE."""
    import onnxruntime as ort
    import torch

    from netc.backends.onnx.export import example_input

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.log_severity_level = 3
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    result = {}
    for batch in (1, DYNAMIC_BATCH) if dynamic_batch else (1,):
        x = example_input(network, batch, module)
        with torch.no_grad():
            out = module.eval()(x)
        wants = [t.float().numpy() for t in (out if isinstance(out, tuple) else (out,))]
        gots = session.run(None, {name: x.numpy()})
        result[batch] = max(_parity(got, want, batch, out_name)
                            for got, want, out_name in zip(gots, wants, [o.name for o in session.get_outputs()]))
    return result


def _parity(got, want, batch: int, out_name: str) -> float:
    import numpy as np

    if not np.isfinite(want).all():
        raise error("export", f"torch's own output '{out_name}' is not finite at batch {batch}, so parity cannot "
                    "be checked", None, "export with trained weights (--weights) or calibrated batch norms")
    if got.shape != want.shape:
        raise error("export", f"onnxruntime gives output '{out_name}' shape {got.shape} at batch {batch}, "
                    f"torch {want.shape}")
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    # absolute 1e-4 plus 1e-3 of the output's scale (torch.onnx's own verification uses rtol 1e-3):
    # float32 sums reordered across many layers differ in the last bits of large random-weight logits
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    bound = TOLERANCE + RTOL * scale
    if not diff <= bound:
        raise error("export", f"onnxruntime's output '{out_name}' differs from torch's by {diff:.2e} at batch "
                    f"{batch} (tolerance {TOLERANCE:g} + {RTOL:g} x max |output| = {bound:.2e})")
    return diff


def verify(network, module, data: bytes, named: dict[str, str], dynamic_batch: bool) -> Verdict:
    check(data)
    n = compare_shapes(network, named, data, dynamic_batch)
    return Verdict(n, compare_outputs(network, module, data, dynamic_batch))
