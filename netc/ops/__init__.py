"""All primitive ops, registered by importing every module of this package (in name order): adding
an op is adding a module here."""
import importlib
import pkgutil

from netc.ops.base import REGISTRY, ModuleSpec, Op, Shape, ShapeError, Window, fmt_shape, numel

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "ModuleSpec", "Op", "Shape", "ShapeError", "Window", "fmt_shape", "numel"]
