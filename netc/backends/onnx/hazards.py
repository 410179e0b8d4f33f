"""Export mappings and their known hazards, checked on the IR before anything is exported.

`MAPPINGS` is the registry: one entry per netc op with the ONNX operators it becomes and,
side by side, the check that finds the cases where that mapping is lossy, runtime-dependent
or missing. A check returns a `Hazard` (message, hint, whether it stops the export) or None.
An op without an entry has no known ONNX mapping and stops the export. No torch here: the
pre-flight report is static, like `netc check`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from netc.errors import Diagnostic, Loc, NetcError
from netc.ops.base import pair
from netc.ops.conv import window_out


@dataclass(frozen=True)
class Hazard:
    message: str
    hint: str
    fatal: bool = False


@dataclass(frozen=True)
class Finding:
    """A hazard at one op of the spec."""

    scope: str
    op: str
    hazard: Hazard
    loc: Loc | None
    via: tuple = ()

    def format(self) -> str:
        kind = "error" if self.hazard.fatal else "warning"
        d = Diagnostic("export", f"{self.op} '{self.scope}': {self.hazard.message}", self.loc,
                       self.hazard.hint, self.via)
        return d.format().replace("error[export]", f"{kind}[export]", 1)


def _adaptive(kind: str) -> Callable:
    def check(a, in_shape, out_shape):
        if len(in_shape) != 3:
            return None
        (_, h, w), (oh, ow) = in_shape, pair(a.out)
        if h % oh == 0 and w % ow == 0:
            return None  # exported as a plain pooling window: k = s = n / out
        what = f"output {oh}×{ow} does not divide its {h}×{w} input"
        if kind == "max":
            return Hazard(f"{what}: ONNX has no adaptive max pooling and its windows then overlap "
                          "unevenly, so there is no mapping", "use an input size (--input) or an 'out' "
                          f"that divides {h}×{w}, or a maxpool with an explicit window", fatal=True)
        return Hazard(f"{what}: exported as per-window slices and means (exact, but a larger graph); "
                      "the TorchScript exporter and many converters fail on this", "use an input size "
                      f"(--input) or an 'out' that divides {h}×{w} for a single AveragePool")
    return check


def _ceil_pool(a, in_shape, out_shape):
    if not a.ceil_mode or len(in_shape) != 3:
        return None
    k, s, p = pair(a.k), pair(a.s if a.s is not None else a.k), pair(a.p)
    d = pair(getattr(a, "d", 1))
    floor = tuple(window_out(n, k[i], s[i], p[i], d[i]) for i, n in enumerate(in_shape[1:]))
    if floor == tuple(out_shape[1:]):
        return None  # ceil and floor agree here: nothing depends on the rounding
    # the plain ceil formula; PyTorch then drops a last window that would start in the right padding
    naive = tuple(-(-(n + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i]) + 1 for i, n in enumerate(in_shape[1:]))
    dropped = naive != tuple(out_shape[1:])
    detail = (" PyTorch also drops a last window that would start in the right padding, which "
              "older ONNX runtimes keep." if dropped else "")
    return Hazard(f"ceil_mode rounds {in_shape[1]}×{in_shape[2]} up to {out_shape[1]}×{out_shape[2]} "
                  f"(floor: {floor[0]}×{floor[1]}); converters and runtimes that do not implement ceil_mode "
                  f"as PyTorch does give a different output size.{detail}",
                  "pad explicitly (p) with ceil_mode: false to get the same size everywhere, or check "
                  "the exported model on the target runtime")


@dataclass(frozen=True)
class Mapping:
    onnx: str
    check: Callable | None = None


MAPPINGS: dict[str, Mapping] = {
    "conv": Mapping("Conv"),
    "sepconv": Mapping("Conv (depthwise) + Conv (pointwise)"),
    "conv_transpose": Mapping("ConvTranspose"),
    "bn": Mapping("BatchNormalization"),
    "lrn": Mapping("LRN"),
    "maxpool": Mapping("MaxPool", _ceil_pool),
    "avgpool": Mapping("AveragePool", _ceil_pool),
    "adaptive_avgpool": Mapping("AveragePool, or slices + ReduceMean", _adaptive("avg")),
    "adaptive_maxpool": Mapping("MaxPool", _adaptive("max")),
    "gap": Mapping("ReduceMean"),
    "flatten": Mapping("Reshape"),
    "linear": Mapping("Gemm"),
    "dropout": Mapping("(removed: eval mode)"),
    "identity": Mapping("(removed)"),
    "add": Mapping("Add"),
    "cat": Mapping("Concat"),
    "scale": Mapping("Mul"),
    "pad_channels": Mapping("Slice + Pad"),
    "pad": Mapping("Pad"),
    "relu": Mapping("Relu"),
    "relu6": Mapping("Clip"),
    "sigmoid": Mapping("Sigmoid"),
    "tanh": Mapping("Tanh"),
    "gelu": Mapping("Gelu"),
    "silu": Mapping("Sigmoid + Mul"),
    "leaky_relu": Mapping("LeakyRelu"),
    "prelu": Mapping("PRelu"),
    "elu": Mapping("Elu"),
    "celu": Mapping("Celu"),
    "selu": Mapping("Selu"),
    "mish": Mapping("Mish"),
    "softplus": Mapping("Softplus"),
    "hardtanh": Mapping("Clip"),
    "softmax": Mapping("Softmax"),
    "log_softmax": Mapping("LogSoftmax"),
    "hardswish": Mapping("HardSwish"),
    "hardsigmoid": Mapping("HardSigmoid"),
    "mul": Mapping("Mul"),
    "layer_scale": Mapping("Mul (by an initializer)"),
    "instancenorm": Mapping("InstanceNormalization"),
    "layernorm": Mapping("LayerNormalization (opset 17)"),
    "groupnorm": Mapping("GroupNormalization (opset 18), or InstanceNormalization + Mul + Add"),
    "permute": Mapping("Transpose"),
    "reshape": Mapping("Reshape"),
    "chunk": Mapping("Slice"),
    "slice": Mapping("Slice"),
    "upsample": Mapping("Resize"),
    "pixel_shuffle": Mapping("DepthToSpace (CRD)"),
    "pixel_unshuffle": Mapping("Reshape + Transpose + Reshape"),
    "channel_shuffle": Mapping("Reshape + Transpose + Reshape"),
    "stochastic_depth": Mapping("(removed: eval mode)"),
}

NO_MAPPING = Hazard("has no ONNX mapping in netc", "add an entry to netc.backends.onnx.hazards.MAPPINGS "
                    "once the exporter supports it", fatal=True)


def preflight(network) -> list[Finding]:
    """The export hazards of the eval graph (aux heads are not exported), in execution order."""
    nodes = network.graph.node_table()
    found = []
    for _, data in network.nodes():
        if data.aux:
            continue
        mapping = MAPPINGS.get(data.op)
        hazard = NO_MAPPING if mapping is None else mapping.check and mapping.check(
            data.attrs, nodes[data.inputs[0]].shape, data.shape)
        if hazard:
            found.append(Finding(data.scope, data.op, hazard, data.loc, data.via))
    return found


def raise_fatal(findings: list[Finding]) -> None:
    fatal = [f for f in findings if f.hazard.fatal]
    if fatal:
        raise NetcError([Diagnostic("export", f"{f.op} '{f.scope}' cannot be exported to ONNX: {f.hazard.message}",
                                    f.loc, f.hazard.hint, f.via) for f in fatal])
