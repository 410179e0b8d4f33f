"""normalize: x / max(‖x‖_p, eps) along one axis, torch's `F.normalize`. SSD (Liu et al. 2016,
after ParseNet) scales conv4_3's channels to unit L2 length before a learned per-channel scale
(torchvision's SSDFeatureExtractorVGG: `scale_weight.view(1, -1, 1, 1) * F.normalize(x)`, a
`layer_scale` with `flat: true` after this op)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from netc.ops.base import Attrs, Autograd, ModuleSpec, Op, Unmappable, axis_index, drop_defaults, numel, register


class NormalizeAttrs(Attrs):
    p: Annotated[float, Field(gt=0)] = 2.0
    # channel axis of a feature map or the feature axis of a vector (batch excluded)
    dim: Annotated[int, Field(ge=0, le=7)] = 0
    eps: Annotated[float, Field(ge=0)] = 1e-12


@register
class Normalize(Op):
    name = "normalize"
    summary = "x / max(‖x‖_p, eps) along dim (0 = channels/features): F.normalize"
    reference = ("`F.normalize`: x divided by its `p`-norm along `dim` (0 = the channels; the batch axis is not "
                 "counted), at least `eps`; SSD's L2Norm is this op and a `layer_scale` with `flat: true`")
    Attrs = NormalizeAttrs
    onnx = "ReduceL2 (ReduceL1, or Pow + ReduceSum + Pow for other p) + Max + Div"
    fill = "#eeeeee"
    torch_modules = ("netc.backends.torch.runtime.Normalize",)
    torch_functions = ("torch.nn.functional.normalize",)

    def from_module(self, m, torch_cls):
        if not isinstance(m.dim, int) or m.dim < 1:
            raise Unmappable(f"normalize along dim {m.dim} (netc normalizes along a batchless axis, dim >= 1)")
        return self.name, drop_defaults({"p": float(m.p), "dim": m.dim - 1, "eps": float(m.eps)},
                                        {"p": 2.0, "dim": 0, "eps": 1e-12})

    def infer(self, a, shapes):
        axis_index(self.name, a.dim, len(shapes[0]), "dim")
        return shapes[0]

    def mixed_axes(self, a, shapes):
        return (a.dim,)

    def other_flops(self, a, shapes, out):
        return 3 * numel(out)  # a power and a sum per element for the norm, a division

    def autograd(self, a, shapes, out):
        # torch saves the input (for the norm and the division) and the norm, one value per
        # position along the other axes, twice (the norm's result and its clamp's)
        return Autograd(inputs=(0,), extra=((2 * numel(out) // shapes[0][a.dim], "act"),))

    def label(self, a):
        return "L2 normalize" if a.p == 2 else f"L{a.p:g} normalize"

    def module(self, a, shapes):
        return ModuleSpec("netc.backends.torch.runtime.Normalize", (), {"p": a.p, "dim": a.dim + 1, "eps": a.eps})
