"""Which attributes of an op (and whether its input's channels) its output channel count depends
on, found by probing the op's shape rule: the code generator writes a channel count only with
expressions of those, never with one that merely equals it at the spec's defaults."""
from __future__ import annotations

from netc.backends.codegen.fitting import IN


def channel_sources(op, attrs, shapes, axis: int = 0, out_axis: int = 0) -> set | None:
    """The attributes (and IN, the input's channels on `axis`) that the op's output channel count
    (on `out_axis`) depends on, found by probing its shape rule; None where no probe tells (then
    every candidate stays). So a pad's `p: $pad` that equals the channels at the default is no
    channel expression, and neither is a conv's input channel count."""
    def grown(v, k):
        if type(v) is int:
            return v * k if k > 1 else v + 1
        if isinstance(v, list) and all(type(x) is int for x in v):
            return [grown(x, k) for x in v]
        return None

    def channels(a, sh):
        out = op.infer(a, sh)
        return out[out_axis] if len(out) > out_axis else None

    try:
        base = channels(attrs, shapes)
    except Exception:  # noqa: BLE001 - a shape rule's own refusal
        return None
    probes = [(f, {f: v}, shapes) for f in type(attrs).model_fields for k in (1, 2, 3)
              if (v := grown(getattr(attrs, f), k)) is not None]
    if shapes and shapes[0]:
        probes += [(IN, {}, [tuple(n * k if i == axis else n for i, n in enumerate(shapes[0])), *shapes[1:]])
                   for k in (2, 3)]
    found, told = set(), False
    for src, update, sh in probes:
        try:
            c = channels(attrs.model_copy(update=update), sh)
        except Exception:  # noqa: BLE001 - a probe the shape rule rejects tells nothing
            continue
        told = True
        if c != base:
            found.add(src)
    return found if told else None
