"""Helpers shared by the torch benchmarks: torchvision counterparts of bundled specs, the
generated-code model of a spec, and interleaved timing with medians and paired ratios."""
from __future__ import annotations

import importlib.util
import operator
import statistics
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from netc.backends.torch.timing import interleaved, paired_ratio  # noqa: E402,F401  (torch-free)

# bundled spec -> (torchvision constructor, its keyword arguments); the specs use torchvision's
# module names, so state_dicts load with strict=True
TORCHVISION = {
    "resnet18": ("resnet18", {}), "resnet34": ("resnet34", {}), "resnet50": ("resnet50", {}),
    "resnet101": ("resnet101", {}), "resnet152": ("resnet152", {}),
    "vgg16_bn": ("vgg16_bn", {}), "vgg16": ("vgg16", {}), "alexnet_torchvision": ("alexnet", {}),
    "googlenet": ("googlenet", {"aux_logits": True, "init_weights": True}),
    "inception_v3": ("inception_v3", {"aux_logits": True, "init_weights": True}),
}


def torchvision_model(spec: str):
    import torchvision

    name, kwargs = TORCHVISION[spec]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(torchvision.models, name)(**kwargs)


def generated_model(spec: str):
    """The model from generated/<spec>.py (the code generator's output), or None if absent."""
    path = ROOT / "generated" / f"{spec}.py"
    if not path.exists():
        return None
    mod_spec = importlib.util.spec_from_file_location(f"generated_{spec}", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return getattr(module, spec)()


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {k: statistics.median(v) for k, v in times.items()}


def load_weights(dst, src) -> bool:
    """Copy `src`'s state_dict into `dst` (strict); False if the keys or shapes differ."""
    try:
        dst.load_state_dict(src.state_dict(), strict=True)
        return True
    except RuntimeError:
        return False


COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


def target_line(what: str, op: str, bound: float, value: float) -> str:
    """'  target WHAT >= 1.15x: 1.52x, met' (or NOT met)."""
    met = COMPARE[op](value, bound)
    return f"  target {what} {op} {bound}x: {value:.2f}x, {'met' if met else 'NOT met'}"
