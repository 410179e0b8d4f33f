"""softsign, x / (1 + |x|): a tanh-shaped squashing whose tails approach ±1 polynomially rather than
exponentially (Bergstra et al. 2009; Glorot & Bengio 2010 compare it with tanh for deep nets), kept
by torch as `nn.Softsign` and by ONNX as an operator of its own. One file, every facet: the op
shows that adding an op touches nothing outside this package but its tests."""
from __future__ import annotations

from netc.ops.activation import Activation
from netc.ops.base import Autograd, numel, register


@register
class Softsign(Activation):
    name = "softsign"
    summary = "x / (1 + |x|): squashing to (-1, 1) with polynomial tails"
    reference = "`nn.Softsign`: x / (1 + |x|), a tanh-like squashing to (−1, 1) whose tails approach ±1 polynomially"
    torch_cls = "torch.nn.Softsign"
    onnx = "Softsign"
    torch_modules = ("torch.nn.Softsign",)
    torch_functions = ("torch.nn.functional.softsign",)

    def autograd(self, a, shapes, out):
        # torch composes it as x / (x.abs() + 1): abs and the division save the input, the division
        # also its denominator, an input-sized tensor
        return Autograd(inputs=(0,), extra=((numel(out), "act"),))
