"""All primitive ops, registered by importing their modules."""
from netc.ops import activation, conv, merge, norm, pad, pool, resample, shape, tensor  # noqa: F401  (registration)
from netc.ops.base import REGISTRY, ModuleSpec, Op, Shape, ShapeError, Window, fmt_shape, numel

__all__ = ["REGISTRY", "ModuleSpec", "Op", "Shape", "ShapeError", "Window", "fmt_shape", "numel"]
