"""The published model a spec names as its reference (`meta: {torchvision: NAME}` or `{timm: NAME}`,
timed by `netc bench --vs`).

A spec is data: its `meta:` may name a model, never choose code, a download or a path. So the name
must be one the library lists in its own registry (torchvision's classification models,
`timm.list_models()`: no `hf-hub:`/`local-dir:` prefix, no attribute of a module), the model is
built with no pretrained weights, and it is built first on the meta device, where it allocates
nothing: its state_dict must be the spec's and its bytes must fit, before it is built for real.
"""
from __future__ import annotations

import warnings

import torch

from netc.errors import Loc, clip, did_you_mean, error

LIBRARIES = ("torchvision", "timm")
# reference models that need keyword arguments to carry every module the spec has
_KWARGS = {"googlenet": {"aux_logits": True, "init_weights": True},
           "inception_v3": {"aux_logits": True, "init_weights": True}}


def named_reference(network) -> tuple[str, str] | None:
    """(library, model name) the spec's meta names, checked against the library's registry; None
    where it names none. error[meta] at the value otherwise."""
    meta = network.spec.meta
    library = next((lib for lib in LIBRARIES if lib in meta), None)
    if library is None:
        return None
    name = meta[library]
    loc = network.source.value_loc("meta", library, default=Loc(network.file))
    names = _registry(library)
    if not isinstance(name, str) or name not in names:
        raise error("meta", f"meta.{library} must name a model of {library}'s registry, not {clip(repr(name))}", loc,
                    (did_you_mean(name, names) if isinstance(name, str) else None)
                    or f"a name listed by {_LISTING[library]}")
    return library, name


_LISTING = {"torchvision": "torchvision.models.list_models(module=torchvision.models)",
            "timm": "timm.list_models()"}


def _registry(library: str) -> frozenset[str]:
    if library == "torchvision":
        import torchvision

        return frozenset(torchvision.models.list_models(module=torchvision.models))
    import timm

    return frozenset(timm.list_models())


def _construct(library: str, name: str) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if library == "torchvision":
            import torchvision

            return torchvision.models.get_model(name, weights=None, **_KWARGS.get(name, {}))
        import timm

        return timm.create_model(name, pretrained=False)


def build_reference(network, weights: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    """The reference model the spec names, in eval mode with `weights`' state_dict (strict), and
    what it is; None where the spec names none. Its state_dict is compared with the spec's, and its
    bytes with the memory free, on the meta device before a byte is allocated."""
    from netc.backends.torch.memory import check_bytes

    found = named_reference(network)
    if found is None:
        return None
    library, name = found
    loc = network.source.value_loc("meta", library, default=Loc(network.file))
    with torch.device("meta"):
        shell = _construct(library, name)
    ours = weights.state_dict()
    theirs = shell.state_dict()
    if {k: tuple(v.shape) for k, v in theirs.items()} != {k: tuple(v.shape) for k, v in ours.items()}:
        differ = sorted(set(theirs).symmetric_difference(ours)) or \
            sorted(k for k in ours if tuple(ours[k].shape) != tuple(theirs[k].shape))
        raise error("meta", f"{library} {name} is not this spec: their state_dicts differ "
                            f"({len(theirs):,} tensors against {len(ours):,}; first at '{clip(differ[0])}')", loc,
                    "name the model the spec reproduces, or drop the reference")
    need = sum(t.numel() * t.element_size() for t in theirs.values())
    check_bytes(need, torch.device("cpu"), f"the parameters of {library} {name}", loc,
                "bench a smaller model, or on a machine with more memory")
    model = _construct(library, name)
    model.load_state_dict(ours, strict=True)
    return model.eval(), f"{library} {name}"
