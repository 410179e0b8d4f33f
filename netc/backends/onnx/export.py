"""A built network -> ONNX bytes (torch's dynamo exporter) or a saved torch.export program."""
from __future__ import annotations

import io
import warnings

from netc.errors import error

DEFAULT_OPSET = 18
MIN_OPSET = 18  # the dynamo exporter emits opset 18 and converts upward only
MAX_PROTO_BYTES = 2 ** 31 - 1  # protobuf's limit for a single-file model
EXPORT_BATCH = 2  # torch.export specialises a size-1 dimension; a batch of 2 keeps it symbolic


def example_input(network, batch: int, module):
    import torch

    from netc.backends.torch.memory import check_activations

    check_activations(network, torch.device("cpu"), batch, "use a smaller --input")
    p = next(module.parameters(), None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *network.input_shape, generator=gen)
    return x.to(p.dtype) if p is not None else x


def exported_program(network, module, dynamic_batch: bool):
    """`torch.export.export` of the eval forward; the batch dimension symbolic if asked."""
    import torch

    x = example_input(network, EXPORT_BATCH if dynamic_batch else 1, module)
    dims = None
    if dynamic_batch:  # keyed by the tensor: a forward written `(*xs)` (train/eval dispatch) too
        dims = torch.export.ShapesCollection()
        dims[x] = {0: torch.export.Dim("batch", min=1, max=2 ** 20)}
    try:
        return torch.export.export(_eval_root(module.eval()), (x,), dynamic_shapes=dims)
    except Exception as exc:  # torch's message names the failing op; keep its first line
        raise error("export", f"torch.export could not trace {network.name}: "
                    f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                    None, "rerun with NETC_DEBUG=1 for torch's full report") from None


def supported_opsets() -> range:
    """The opsets an export can be written in: the exporter emits MIN_OPSET and onnxscript's version
    converter converts it upward as far as it supports (and the installed onnx knows)."""
    import onnx

    try:
        from onnxscript.version_converter._version_converter import SUPPORTED_MAX_ONNX_OPSET as newest
    except ImportError:  # an onnxscript that moved it: the exporter's own opset only
        newest = MIN_OPSET
    return range(MIN_OPSET, min(newest, onnx.defs.onnx_opset_version()) + 1)


def _eval_root(module):
    """torch.export retraces an fx.GraphModule root from its `graph`, which is the training
    forward (aux heads included), not from the forward that switches on `self.training`: a root
    with aux heads is exported as a GraphModule of its eval graph over the same children."""
    plan = getattr(module, "_netc_plan", None)
    if plan is None or not plan.has_aux:
        return module
    from torch import fx

    from netc.backends.torch.blocks import graph_of

    return fx.GraphModule(module, graph_of(plan, training=False), type(module).__name__).eval()


def onnx_model(network, module, opset: int, dynamic_batch: bool):
    """The exported model as an onnx_ir Model with the spec's scope names, and {scope: value name}."""
    import torch
    from onnx_ir.passes.common import RemoveUnusedNodesPass
    from onnxscript.optimizer import fold_constants

    from netc.backends.onnx.names import apply_scope_names

    opsets = supported_opsets()
    if opset not in opsets:
        raise error("usage", f"opset {opset} is not one the exporter writes ({opsets[0]} to {opsets[-1]})", None,
                    f"use --opset {DEFAULT_OPSET}, or one from {opsets[0]} to {opsets[-1]}")
    program = exported_program(network, module, dynamic_batch)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(program, dynamo=True, opset_version=opset, optimize=False,
                                             verbose=False, report=False)
    except Exception as exc:
        raise error("export", f"the ONNX exporter failed on {network.name}: {type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}", None,
                    "rerun with NETC_DEBUG=1 for torch's full report") from None
    model = onnx_program.model
    if model.opset_imports.get("") != opset:  # the exporter falls back to its own opset with a warning
        raise error("export", f"the ONNX exporter could not convert {network.name} to opset {opset} "
                    f"(it wrote opset {model.opset_imports.get('')})", None, f"use --opset {DEFAULT_OPSET}")
    # constant folding and dead-node removal only: the default rewrites would fold batch norms
    # into convs and take their names (layer1.0.bn1.*) out of the graph
    fold_constants(model)
    RemoveUnusedNodesPass()(model)
    leaves = {d.scope for _, d in network.nodes()}
    from netc.backends.torch.module import output_order

    outputs = [name for name, _, aux in output_order(network) if not aux]  # what the eval forward returns
    named = apply_scope_names(model, leaves, "input", outputs)
    model.graph.name = network.name
    model.producer_name = "netc"
    return model, named


def to_bytes(model) -> bytes:
    import onnx_ir as ir

    proto = ir.serde.serialize_model(model)
    if proto.ByteSize() > MAX_PROTO_BYTES:
        raise error("limit", f"the ONNX model is {proto.ByteSize() / 2**30:.2f} GiB, over protobuf's 2 GiB "
                    "single-file limit", None, "use a smaller width or a float16 export")
    return proto.SerializeToString()


def program_bytes(network, module, dynamic_batch: bool) -> bytes:
    """A saved `torch.export.ExportedProgram` (`torch.export.load` reads it back)."""
    import torch

    from netc.backends.torch.program import plain_tuple_outputs

    program = exported_program(network, module, dynamic_batch)
    plain_tuple_outputs(program)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()



def load_weights(module, path) -> None:
    """Load a state_dict file (torch.save, weights only) strictly into `module`."""
    from netc.backends.torch.weights import read_state_dict

    state = read_state_dict(path)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad_shape = [f"{k}: file {tuple(state[k].shape)}, spec {tuple(own[k].shape)}" for k in own
                 if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = ([f"missing {', '.join(missing[:5])}"] if missing else []) + \
               ([f"unexpected {', '.join(unexpected[:5])}"] if unexpected else []) + bad_shape[:5]
    if problems:
        raise error("weights", f"'{path}' does not fit the spec: " + "; ".join(problems), None,
                    "the keys and shapes must equal the spec's state_dict (strict load)")
    module.load_state_dict(state, strict=True)
