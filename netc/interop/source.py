"""SOURCE -> an nn.Module: `torchvision:NAME`, `timm:NAME` (random init, nothing downloaded) or
`path/to/file.py:ClassOrFactory`, each with keyword arguments (`num_classes=10`). A torchvision
detection model stands for its `.backbone` (backbone + FPN, SSD's feature extractor): the part that
is a CNN; the box heads, anchors and the resizing transform are not imported."""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from netc.errors import did_you_mean, error


@dataclass
class Source:
    text: str
    module: object
    kwargs: dict = field(default_factory=dict)
    num_classes: int | None = None
    built: str | None = None         # what was imported when it is not the whole model the text names
    input_shape: tuple | None = None  # the size the source is made for, where its name says one


def parse_kwargs(pairs) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise error("usage", f"expected KEY=VALUE, got '{pair}'")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def load_source(text: str, kwargs: dict | None = None) -> Source:
    kwargs = dict(kwargs or {})
    kind, sep, name = text.partition(":")
    if not sep or not name:
        raise error("usage", f"unknown source '{text}'", None,
                    "use torchvision:NAME, timm:NAME or path/to/file.py:ClassOrFactory")
    if kind == "torchvision":
        factory, name, built_with = _torchvision(name, kwargs)
        module = _construct(text, factory, name, **built_with)
        if name in _detection():
            return _detection_backbone(text, module, kwargs)
    elif kind == "timm":
        import timm

        if not timm.is_model(name):
            raise error("usage", f"timm has no model '{name}'", None, did_you_mean(name, timm.list_models()))
        module = _construct(text, timm.create_model, name, pretrained=False, **kwargs)
    elif kind.endswith(".py"):
        module = _from_file(Path(kind), name, kwargs)
    else:
        raise error("usage", f"unknown source kind '{kind}'", None,
                    "use torchvision:NAME, timm:NAME or path/to/file.py:ClassOrFactory")
    return Source(text, module.eval(), kwargs, kwargs.get("num_classes", _num_classes(module)))


def _torchvision(name: str, kwargs: dict) -> tuple:
    """(factory, name, keyword arguments) that build torchvision's classification, segmentation or
    detection model `name` without weights: a segmentation or detection model's backbone neither
    (torchvision's default would download ImageNet weights for it)."""
    import torchvision

    models = torchvision.models
    dense = models.list_models(module=models.segmentation) + _detection()
    names = models.list_models(module=models) + dense
    if name not in names:
        raise error("usage", f"torchvision has no classification, segmentation or detection model '{name}'", None,
                    did_you_mean(name, names))
    never = {"weights": None, **({"weights_backbone": None} if name in dense else {})}
    return models.get_model, name, {**kwargs, **never}


def _detection() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models.detection)


def _detection_backbone(text: str, detector, kwargs: dict) -> Source:
    """The detector's `.backbone`, which is what `text` imports: a module returning a dict of maps."""
    backbone = getattr(detector, "backbone", None)
    if backbone is None:
        raise error("import", f"{text} has no .backbone; netc imports a detector's backbone")
    # SSD resizes every image to its transform's fixed size, and its extra layers (unpadded convs)
    # need it; the R-CNNs take any size (they resize to 800+, too slow to verify): the default
    fixed = getattr(getattr(detector, "transform", None), "fixed_size", None)
    built = (f"{text}(weights=None, weights_backbone=None).backbone: the backbone and its multi-scale feature layers (FPN, SSD extras), "
             "without the detection heads, anchors and resizing transform")
    return Source(text, backbone.eval(), kwargs, None, built, (3, *fixed) if fixed else None)


def _from_file(path: Path, attr: str, kwargs: dict):
    from torch import nn

    if not path.is_file():
        raise error("io", f"no such file: '{path}'")
    spec = importlib.util.spec_from_file_location(f"netc_import_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:
        raise error("import", f"{path}: running the file failed: {type(exc).__name__}: {exc}") from None
    factory = getattr(mod, attr, None)
    if factory is None:
        raise error("usage", f"{path} defines no '{attr}'", None,
                    did_you_mean(attr, [n for n in vars(mod) if not n.startswith("_")]))
    module = _construct(f"{path}:{attr}", factory, **kwargs)
    if not isinstance(module, nn.Module):
        raise error("import", f"{path}:{attr} returned a {type(module).__name__}, not an nn.Module")
    return module


def _construct(source: str, factory, *args, **kwargs):
    """The source's factory called with the user's arguments; what it raises is an import error."""
    try:
        return factory(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the source's own code, whatever it raises
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("weights", "pretrained"))
        raise error("import", f"building {source}({given}) failed: {type(exc).__name__}: {exc}"[:1000]) from None


def _num_classes(module) -> int | None:
    """The classifier's width where the model says it (timm, torchvision's `fc`/`classifier`)."""
    n = getattr(module, "num_classes", None)
    if isinstance(n, int):
        return n
    from torch import nn

    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None
