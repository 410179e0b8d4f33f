"""Linear layers and shape plumbing: flatten, linear, dropout, stochastic depth, identity."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from netc.ops.base import (Attrs, Autograd, ModuleSpec, NoAttrs, Op, ShapeError, Unmappable, Window, axis_index,
                           drop_defaults, numel, register)

# the output is the input (or a view of it) and so is the gradient: no memory, nothing saved
VIEW = Autograd(alias=True, grad_alias=True)


class FlattenAttrs(Attrs):
    start: int = 0  # batchless axes, negative from the end
    end: int = -1


def flatten_axes(start: int, end: int):
    """(op, attrs) of torch's flatten(start_dim, end_dim) of a batch as netc's batchless `flatten`."""
    if start == 0 or end == 0:
        raise Unmappable(f"flatten from dim {start} to {end} (it merges the batch axis)")
    return "flatten", drop_defaults({"start": start - 1 if start > 0 else start, "end": end - 1 if end > 0 else end},
                                    {"start": 0, "end": -1})


@register
class Flatten(Op):
    name = "flatten"
    summary = "flatten axes start..end (batchless; default all: C×H×W to C·H·W features)"
    reference = "flatten axes start..end; by default all (`nn.Flatten(1)`)"
    Attrs = FlattenAttrs
    onnx = "Reshape"
    torch_modules = ("torch.nn.Flatten",)

    def from_module(self, m, torch_cls):
        return flatten_axes(m.start_dim, m.end_dim)

    def axes(self, a, shape) -> tuple[int, int]:
        start, end = (axis_index("flatten", x, len(shape), w) for x, w in ((a.start, "start"), (a.end, "end")))
        if start > end:
            raise ShapeError(f"flatten start {a.start} comes after end {a.end}", "start must not follow end")
        return start, end

    def infer(self, a, shapes):
        x = shapes[0]
        start, end = self.axes(a, x)
        return x[:start] + (numel(x[start:end + 1]),) + x[end + 1:]

    def autograd(self, a, shapes, out):
        return VIEW

    def label(self, a):
        return "flatten" if (a.start, a.end) == (0, -1) else f"flatten {a.start}..{a.end}"

    def module(self, a, shapes):
        if (a.start, a.end) == (0, -1):
            return ModuleSpec("torch.nn.Flatten", (1,), {})
        start, end = self.axes(a, shapes[0])
        return ModuleSpec("torch.nn.Flatten", (start + 1, end + 1), {})


class LinearAttrs(Attrs):
    out: Annotated[int, Field(gt=0)]
    bias: bool = True


@register
class Linear(Op):
    name = "linear"
    summary = "fully connected layer over the last axis to out features (bias): a flat vector, or each position of an H×W×C map"
    reference = ("`nn.Linear` over the last axis: a flat vector, or every position of an H×W×C map (MACs H·W·in·out); "
                 "on an unpermuted map lint rule NL507 warns")
    Attrs = LinearAttrs
    onnx = "Gemm"
    fill = "#d9d2e9"
    torch_modules = ("torch.nn.Linear",)

    def from_module(self, m, torch_cls):
        return self.name, drop_defaults({"out": m.out_features, "bias": m.bias is not None}, {"bias": True})

    # over the last axis of any tensor, as nn.Linear: a flat vector (a classifier), or the channels
    # of a map permuted to H×W×C (ConvNeXt's pointwise layers)
    def infer(self, a, shapes):
        return shapes[0][:-1] + (a.out,)

    def params(self, a, shapes):
        return a.out * shapes[0][-1] + (a.out if a.bias else 0)

    def macs(self, a, shapes, out):
        return numel(out) * shapes[0][-1]

    def mixed_axes(self, a, shapes):
        return (len(shapes[0]) - 1,)

    def rf_window(self, a, grid, shapes=()):
        if shapes and len(shapes[0]) > 1:
            return None  # over the channels of each position: the receptive field is unchanged
        return Window(grid, grid)  # every output sees the whole flattened feature map

    def label(self, a):
        return f"linear {a.out}"

    def module(self, a, shapes):
        kw = {} if a.bias else {"bias": False}
        return ModuleSpec("torch.nn.Linear", (shapes[0][-1], a.out), kw)


class DropoutAttrs(Attrs):
    p: Annotated[float, Field(ge=0, lt=1)] = 0.5
    inplace: bool = False


@register
class Dropout(Op):
    name = "dropout"
    summary = "dropout with drop probability p (training only)"
    reference = "dropout (training only)"
    Attrs = DropoutAttrs
    onnx = "(removed: eval mode)"
    torch_modules = ("torch.nn.Dropout",)

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


class StochasticDepthAttrs(Attrs):
    p: Annotated[float, Field(ge=0, lt=1)]
    mode: Literal["row", "batch"] = "row"


@register
class StochasticDepth(Op):
    """torchvision's `StochasticDepth` (Huang et al. 2016): in training, zero the whole input of
    a sample ('row') or of the batch ('batch') with probability p and scale the rest by 1/(1-p)."""

    name = "stochastic_depth"
    summary = "drop a residual branch per sample (mode: row) or per batch with probability p (training only)"
    reference = ("torchvision's `StochasticDepth`: in training, drop the input per sample (row) or per batch and scale "
                 "the rest by 1/(1−p); identity in eval")
    Attrs = StochasticDepthAttrs
    onnx = "(removed: eval mode)"
    torch_modules = ("torchvision.ops.stochastic_depth.StochasticDepth", "timm.layers.drop.DropPath")

    def from_module(self, m, torch_cls):
        """timm's DropPath is the same per-sample drop; its forward is an identity in eval mode, so
        traced through it would vanish from the spec and leave training mode unreproduced."""
        if torch_cls != "timm.layers.drop.DropPath":
            return super().from_module(m, torch_cls)
        if not m.drop_prob:
            return "identity", {}  # (rdnet builds DropPath(0.0) where others build nn.Identity)
        if not m.scale_by_keep:
            raise Unmappable("DropPath with scale_by_keep=False (survivors unscaled)")
        return self.name, {"p": float(m.drop_prob)}

    def other_flops(self, a, shapes, out):
        return numel(out) if a.p else 0

    def autograd(self, a, shapes, out):
        if a.p == 0:
            return VIEW  # the input itself
        # the product with the per-sample (or per-batch) noise saves the noise
        return Autograd(extra=((1, "act" if a.mode == "row" else "stat"),))

    def label(self, a):
        return f"stochastic depth {a.p:g}" + (" batch" if a.mode == "batch" else "")

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.StochasticDepth", (a.p, a.mode), {})


@register
class Identity(Op):
    name = "identity"
    summary = "pass the input through unchanged"
    reference = "the input unchanged"
    Attrs = NoAttrs
    onnx = "(removed)"
    torch_modules = ("torch.nn.Identity",)

    def autograd(self, a, shapes, out):
        return VIEW

    def module(self, a, shapes):
        return ModuleSpec("torch.nn.Identity", (), {})
