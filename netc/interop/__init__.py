"""Import: an existing nn.Module (torchvision, timm, a Python file) -> a readable netc spec.

`import_model(source)` traces the module (`trace.py`) to netc ops named by module path,
recovers its structure (`structure.py`: blocks, residuals, concats; `growing.py`: a dense
block's growing concatenation as a chain of `concat: [identity, body]`; `templates.py`:
repeated classes as templates, runs in nn.Sequential as `repeat`), writes YAML
(`yamlout.py`) and verifies it (`verify.py`): the spec compiles, loads the source's
state_dict strictly and computes the same output.
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.errors import NetcError, clip, error
from netc.names import MODULE_NAME, output_name_for_key


@dataclass
class Imported:
    text: str          # the spec
    source: object     # netc.interop.source.Source
    input_shape: tuple
    refs: int          # `from:` references left where the structure is not series-parallel


def default_input(module) -> tuple:
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None) or {}
    if cfg.get("input_size"):
        return tuple(cfg["input_size"])
    if type(module).__name__ == "Inception3":
        return (3, 299, 299)
    return (3, 224, 224)


def import_model(source_text: str, kwargs: dict | None = None, input_shape=None, name: str | None = None,
                 templates: bool = True) -> Imported:
    from netc.interop import growing, lists, signature, structure, yamlout
    from netc.interop.source import load_source

    with signature.recording() as made:  # the constructors' arguments name the templates'
        src = load_source(source_text, kwargs)
    shape = tuple(input_shape or src.input_shape or default_input(src.module))
    ops, heads, named, renamed, placeholder = _traced(src.module, source_text, shape)
    params = {}
    heads_out = [op for op in ops if heads is not None and id(op.node) in heads.by_node]
    for last in [ops[-1], *heads_out]:  # the classifiers of the main path and of the side heads
        if src.num_classes and last.op == "linear" and last.attrs.get("out") == src.num_classes:
            last.attrs["out"] = "$num_classes"
            params["num_classes"] = src.num_classes
    types = {path: type(m).__name__ for path, m in src.module.named_modules()}
    structure.nest(ops, set(types))
    root = structure.group(ops, types)
    growing.rewrite(root, set(named) | set(heads.by_node if heads is not None else ()))
    order = {path: k for k, (path, _) in enumerate(src.module.named_modules())}
    emitter = lists.Emitter(placeholder, {op.scope for op in ops} | {p for op in ops for p in op.parents},
                            heads, order, structure.output_owners(root, named), lists=set(structure.split_blocks(root)),
                            stateful={path for path, m in src.module.named_modules()
                                      if next(m.parameters(), None) is not None or next(m.buffers(), None) is not None})
    layers = emitter.scope(root.items, placeholder, "")
    if heads is not None:
        last = layers[-1] if isinstance(layers[-1], dict) else {layers[-1]: {}}
        layers[-1] = {**last, "output": heads.main}
    spec = {"netc": 1, "name": name or _spec_name(source_text),
            "description": f"imported by netc import from {src.built or source_text}"}
    if renamed:
        spec["meta"] = {"output_keys": renamed}  # the source's dict keys that are not output names
    spec["input"] = list(shape)
    if params:
        spec["params"] = params
    if heads is not None:
        spec["outputs"] = heads.names
    elif named:
        spec["outputs"] = list(named.values())
    from netc.interop.templates import compact, drop_placeholders, recover, strip

    if templates:
        spec_templates, layers = recover(layers, root, signature.by_path(src.module, made))
        if spec_templates:
            spec["templates"] = spec_templates
    strip(layers)
    spec["layers"] = layers
    drop_placeholders(spec)
    compact(spec["layers"])
    compact(spec.get("templates", {}))
    return Imported(yamlout.dump(spec), src, shape, emitter.refs)


def _traced(module, source_text: str, shape: tuple):
    """(ops, training-only side heads or None, id(node) -> name of a dict's outputs, {output name:
    the dict's key where they differ}, input placeholder) of the module's forward: its eval forward, or its training forward where only
    that runs every module (aux heads)."""
    from netc.interop.trace import trace

    ops, returned, placeholder = trace(module, source_text, input_shape=shape)
    if isinstance(returned, (list, tuple)):  # a feature extractor's maps
        returned = dict(zip(_list_names(module, len(returned)), returned))
    named, renamed = _named_outputs(returned, ops, source_text) if isinstance(returned, dict) else ({}, {})
    if not named and ops[-1].node is not returned:
        raise error("import", f"the forward of {source_text} returns '{returned.name}', not its last op",
                    None, "netc imports forwards whose result is the last op computed")
    try:
        _check_coverage(module, ops, source_text)
    except NetcError as skipped:
        from netc.interop.sides import training_trace

        traced = training_trace(module, source_text, shape)
        if traced is None:
            raise skipped from None
        ops, _, heads, placeholder = traced
        _check_coverage(module, ops, source_text)
        return ops, heads, {}, {}, placeholder
    return ops, None, named, renamed, placeholder


def _list_names(module, n: int) -> list[str]:
    """Names for a forward's list of `n` maps: the modules timm's `feature_info` says they come
    from (`layer1`, `stages_0`), else `out0`, `out1`, …"""
    info = getattr(module, "feature_info", None)
    try:
        names = [str(name).replace(".", "_") for name in info.module_name()]
    except Exception:  # noqa: BLE001 - no timm FeatureInfo: generic names
        names = []
    if len(names) == n and len(set(names)) == n and all(MODULE_NAME.fullmatch(x) for x in names):
        return names
    return [f"out{k}" for k in range(n)]


def _named_outputs(returned: dict, ops, where: str) -> tuple[dict, dict]:
    """(id(fx node) -> output name, {output name: the source's key where they differ}) for a forward
    that returns a dict of named maps: each key as `names.output_name_for_key` makes it an output
    name ('0' -> `out0`)."""
    computed = {id(op.node) for op in ops}
    named, keys = {}, {}
    for key, node in returned.items():
        if id(node) not in computed:
            raise error("import", f"the forward of {where} returns its input as '{key}'; netc outputs are computed "
                                  "by layers")
        try:
            name = output_name_for_key(key)
        except ValueError as exc:
            raise error("import", f"the forward of {where} returns an output named {clip(repr(key))}, which cannot "
                                  f"be a netc output name: {exc}") from None
        if name in keys:
            raise error("import", f"the forward of {where} returns outputs {clip(repr(keys[name]))} and "
                                  f"{clip(repr(key))}, which both become the netc output name '{name}'")
        if id(node) in named:
            raise error("import", f"the forward of {where} returns one value under two names")
        named[id(node)], keys[name] = name, key
    return named, {name: key for name, key in keys.items() if name != key}


def _check_coverage(module, ops, where: str) -> None:
    """Every parameter must belong to a traced op; else name the modules the forward never ran."""
    scopes = {op.scope for op in ops if op.named}
    unused = []
    for key, _ in [*module.named_parameters(), *module.named_buffers()]:
        path = key.rpartition(".")[0]
        if not any(key == s or path == s or path.startswith(s + ".") for s in scopes):
            top = path.split(".")[0]
            if top not in unused:
                unused.append(top)
    if unused:
        raise error("import", f"{', '.join(unused[:5])} of {where} hold weights but its eval forward never runs "
                    "them (training-only auxiliary heads?); netc import does not recover side branches",
                    None, "build the source without them (e.g. aux_logits=False) to import the main path")


def _spec_name(source_text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_]", "_", source_text.rpartition(":")[2]) or "imported"
