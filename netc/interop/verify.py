"""Verify an imported spec: it compiles, loads the source's state_dict with strict=True (keys
in the source's order) and computes the source's output on a random batch (eval mode)."""
from __future__ import annotations

from dataclasses import dataclass

from netc.errors import error

TOLERANCE = 1e-5


@dataclass
class Verdict:
    params: int
    max_diff: float
    same_order: bool

    def summary(self) -> str:
        order = "in the same order" if self.same_order else "(keys in a different order)"
        return (f"verified: compiles, loads the source's state_dict strictly {order}, "
                f"{self.params:,} parameters, outputs agree (max |diff| {self.max_diff:.1e})")


def verify(network, module, input_shape) -> Verdict:
    """`network` (the imported spec, compiled by the caller: `netc.api` imports this module)
    against the source `module`."""
    import torch

    ours = network.build(device="meta").eval()
    want_state = module.state_dict()
    try:
        ours.load_state_dict(want_state, strict=True, assign=True)
    except RuntimeError as exc:
        raise error("import", f"the imported spec does not load the source's state_dict: "
                    f"{str(exc).splitlines()[0]} {' '.join(str(exc).split())[:400]}") from None
    same_order = list(ours.state_dict()) == list(want_state)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, *input_shape, generator=gen)
    module.eval()
    with torch.no_grad():
        want, got = module(x), ours(x)
    if got.shape != want.shape:
        raise error("import", f"the imported spec gives shape {tuple(got.shape)}, the source {tuple(want.shape)}")
    diff = (got - want).abs().max().item()
    scale = min(1.0, want.abs().max().item())  # absolute for outputs of size >= 1, relative for smaller ones
    if not diff <= TOLERANCE * scale:
        raise error("import", f"the imported spec's output differs from the source's by {diff:.2e}")
    return Verdict(network.params, diff, same_order)
