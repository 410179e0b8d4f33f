"""Export hazards, checked on the IR before anything is exported.

Each op declares its ONNX mapping (`Op.onnx`, the operators it becomes) and the check that finds
where that mapping is lossy, runtime-dependent or missing (`Op.onnx_hazard`, a `Hazard` or None).
An op without a mapping stops the export. No torch here: the pre-flight report is static, like
`netc check`.
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.errors import Diagnostic, Loc, NetcError
from netc.ops import REGISTRY
from netc.ops.base import Hazard


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


NO_MAPPING = Hazard("has no ONNX mapping in netc", "declare the op's `onnx` mapping (netc.ops.base.Op) "
                    "once the exporter supports it", fatal=True)


def preflight(network) -> list[Finding]:
    """The export hazards of the eval graph (aux heads are not exported), in execution order."""
    nodes = network.graph.node_table()
    found = []
    for _, data in network.nodes():
        if data.aux:
            continue
        op = REGISTRY[data.op]
        hazard = NO_MAPPING if op.onnx is None else op.onnx_hazard(
            data.attrs, nodes[data.inputs[0]].shape, data.shape)
        if hazard:
            found.append(Finding(data.scope, data.op, hazard, data.loc, data.via))
    return found


def raise_fatal(findings: list[Finding]) -> None:
    fatal = [f for f in findings if f.hazard.fatal]
    if fatal:
        raise NetcError([Diagnostic("export", f"{f.op} '{f.scope}' cannot be exported to ONNX: {f.hazard.message}",
                                    f.loc, f.hazard.hint, f.via) for f in fatal])
