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
    """`network` (a compiled netc.api.Network) against the source `module`: in eval mode, and with
    several outputs (side heads) also the training forward's outputs, one by one."""
    import torch

    from netc.backends.torch.memory import check_activations

    ours = network.build(device="meta").eval()
    want_state = module.state_dict()
    try:
        ours.load_state_dict({k: v.clone() for k, v in want_state.items()}, strict=True, assign=True)
    except RuntimeError as exc:
        raise error("import", f"the imported spec does not load the source's state_dict: "
                    f"{str(exc).splitlines()[0]} {' '.join(str(exc).split())[:400]}") from None
    same_order = list(ours.state_dict()) == list(want_state)
    check_activations(network, torch.device("cpu"), 2, "use a smaller --input")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, *input_shape, generator=gen)
    module.eval()
    with torch.no_grad():
        want, got = module(x), ours(x)
    diff = _compare(got, want, "output")
    if len(network.spec.outputs or ()) < 2:
        return Verdict(network.params, diff, same_order)
    module.train()
    ours.train()
    try:  # training-only side heads: the same draws of dropout in the same order
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            want = module(x)
            torch.manual_seed(0)
            got = ours(x)
    finally:
        module.eval()
    if isinstance(want, tuple):
        if not isinstance(got, tuple) or len(got) != len(want):
            raise error("import", f"the imported spec's training forward returns {len(got)} outputs, "
                        f"the source's {len(want)}")
        names = getattr(want, "_fields", None) or [f"training output {k}" for k in range(len(want))]
        diff = max([diff] + [_compare(g, w, n) for g, w, n in zip(got, want, names)])
    return Verdict(network.params, diff, same_order)


def _compare(got, want, what: str) -> float:
    if got.shape != want.shape:
        raise error("import", f"the imported spec's {what} has shape {tuple(got.shape)}, the source's "
                    f"{tuple(want.shape)}")
    diff = (got - want).abs().max().item()
    scale = min(1.0, want.abs().max().item())  # absolute for outputs of size >= 1, relative for smaller ones
    if not diff <= TOLERANCE * scale:
        raise error("import", f"the imported spec's {what} differs from the source's by {diff:.2e}")
    return diff
