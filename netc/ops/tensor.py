"""Linear layers and shape plumbing: flatten, linear, dropout, identity."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from netc.ops.base import Attrs, Autograd, ModuleSpec, NoAttrs, Op, ShapeError, Window, fmt_shape, numel, register

# the output is the input (or a view of it) and so is the gradient: no memory, nothing saved
VIEW = Autograd(alias=True, grad_alias=True)


@register
class Flatten(Op):
    name = "flatten"
    summary = "flatten C×H×W to a vector of C·H·W features"

    def infer(self, a, shapes):
        return (numel(shapes[0]),)

    def autograd(self, a, shapes, out):
        return VIEW

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.Flatten", (1,), {})


class LinearAttrs(Attrs):
    out: Annotated[int, Field(gt=0)]
    bias: bool = True


@register
class Linear(Op):
    name = "linear"
    summary = "fully connected layer to out features (bias)"
    Attrs = LinearAttrs

    def infer(self, a, shapes):
        if len(shapes[0]) != 1:
            raise ShapeError(f"linear expects a flat vector, got a {fmt_shape(shapes[0])} feature map",
                             "add 'flatten' before it (and usually a global pool)")
        return (a.out,)

    def params(self, a, shapes):
        return a.out * shapes[0][0] + (a.out if a.bias else 0)

    def macs(self, a, shapes, out):
        return a.out * shapes[0][0]

    def rf_window(self, a, grid):
        return Window(grid, grid)  # every output sees the whole flattened feature map

    def label(self, a):
        return f"linear {a.out}"

    def module(self, a, shapes):
        kw = {} if a.bias else {"bias": False}
        return ModuleSpec("torch.nn.Linear", (shapes[0][0], a.out), kw)


class DropoutAttrs(Attrs):
    p: Annotated[float, Field(ge=0, lt=1)] = 0.5
    inplace: bool = False


@register
class Dropout(Op):
    name = "dropout"
    summary = "dropout with drop probability p (training only)"
    Attrs = DropoutAttrs

    def autograd(self, a, shapes, out):
        if a.p == 0:
            return VIEW  # torch returns the input itself
        # the CPU keeps the scaled keep-mask in the activation dtype, CUDA a one-byte mask
        return Autograd(extra=((numel(out), "mask"),), alias=a.inplace)

    def label(self, a):
        return f"dropout {a.p:g}"

    def module(self, a, shapes):
        kw = {"inplace": True} if a.inplace else {}
        return ModuleSpec("torch.nn.Dropout", (a.p,), kw)


@register
class Identity(Op):
    name = "identity"
    summary = "pass the input through unchanged"
    Attrs = NoAttrs

    def autograd(self, a, shapes, out):
        return VIEW

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.Identity", (), {})
