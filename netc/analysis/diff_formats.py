"""`netc diff` output: text, markdown and JSON of a `netc.analysis.diff.Diff`."""
from __future__ import annotations

import json

from netc.analysis.cost import Cost
from netc.analysis.diff import BlockChange, Diff, LayerChange
from netc.analysis.formats import human, rf_text
from netc.ops import fmt_shape

FORMATS = ("text", "md", "json")
MARK = {"added": "+", "removed": "-", "changed": "~", "renamed": "="}
QUANTITIES = (("params", "params", 1000), ("macs", "MACs", 1000), ("activation_bytes", "memory", 1024))


def signed(n: int, what: str = "", base: int = 1000) -> str:
    if n == 0:
        return "0"
    text = f"{abs(n):,}" if what == "params" else human(abs(n), "B" if base == 1024 else "", base)
    return ("+" if n > 0 else "-") + text


def _arrow(a, b, fmt=str) -> str:
    if a is None:
        return f"(none) → {fmt(b)}"
    if b is None:
        return f"{fmt(a)} → (none)"
    return fmt(a) if a == b else f"{fmt(a)} → {fmt(b)}"


def headline(d: Diff) -> list[str]:
    ta, tb = d.a.total, d.b.total
    parts = []
    for attr, name, base in QUANTITIES:
        x, y = getattr(ta, attr), getattr(tb, attr)
        shown = (f"{x:,} → {y:,}" if name == "params" else
                 f"{human(x, 'B' if base == 1024 else '', base)} → {human(y, 'B' if base == 1024 else '', base)}")
        parts.append(f"{name} {shown} ({signed(y - x, name, base)})")
    counts = {s: sum(1 for c in d.layers if c.status == s) for s in MARK}
    layer_text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no layer changes"
    return [f"{d.a.name} → {d.b.name}", "   ".join(parts),
            f"{len(d.blocks)} block{'s differ' if len(d.blocks) != 1 else ' differs'}; layers: {layer_text}"]


def _block_facts(b: BlockChange) -> str:
    deltas = "   ".join(f"{name} {signed(b.delta(attr), name, base)}" for attr, name, base in QUANTITIES)
    shape = _arrow(b.a.shape if b.a else None, b.b.shape if b.b else None, fmt_shape)
    rf = _arrow(b.a.fields if b.a else None, b.b.fields if b.b else None, rf_text)
    return f"{deltas}   out {shape}   RF {rf}"


def _layer_text(c: LayerChange) -> str:
    if c.status == "renamed":
        return f"{c.a.scope} → {c.b.scope}  {c.b.label}"
    if c.status == "changed":
        label = _arrow(c.a.label, c.b.label)
        shape = _arrow(c.a.shape, c.b.shape, fmt_shape)
        params = signed(c.b.cost.params - c.a.cost.params, "params")
        macs = signed(c.b.cost.macs - c.a.cost.macs, "MACs")
        return f"{c.scope}  {label}  {shape}  params {params}  MACs {macs}"
    r = c.b or c.a
    return f"{r.scope}  {r.label}  {fmt_shape(r.shape)}  params {r.cost.params:,}  MACs {human(r.cost.macs)}"


def to_text(d: Diff) -> str:
    lines = headline(d) + [""]
    for b in d.blocks:
        label = (b.b or b.a).label
        lines.append(f"{MARK[b.status]} {b.scope}" + (f" ({label})" if label else "") + f"   {_block_facts(b)}")
        lines += [f"    {MARK[c.status]} {_layer_text(c)}" for c in b.layers]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(d: Diff) -> str:
    head = headline(d)
    lines = [f"**{_md(head[0])}**", "", _md(head[1]) + "  ", _md(head[2]), "",
             "| | block | params Δ | MACs Δ | memory Δ | output | RF | layers |", "|---|---|--:|--:|--:|---|---|---|"]
    for b in d.blocks:
        layers = "<br>".join(_md(f"{MARK[c.status]} {_layer_text(c)}") for c in b.layers)
        cells = [MARK[b.status], f"`{_md(b.scope)}`"] + [signed(b.delta(a), n, base) for a, n, base in QUANTITIES]
        cells += [_md(_arrow(b.a.shape if b.a else None, b.b.shape if b.b else None, fmt_shape)),
                  _arrow(b.a.fields if b.a else None, b.b.fields if b.b else None, rf_text), layers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cost(c: Cost | None) -> dict | None:
    return None if c is None else {"params": c.params, "macs": c.macs, "activation_bytes": c.activation_bytes}


def _side(s) -> dict | None:
    return None if s is None else {"label": s.label, **_cost(s.cost), "shape": list(s.shape), "rf": list(s.rf)}


def _layer(r) -> dict | None:
    return None if r is None else {"scope": r.scope, "op": r.op, "label": r.label, "shape": list(r.shape),
                                   "params": r.cost.params, "macs": r.cost.macs}


def to_dict(d: Diff) -> dict:
    return {
        "schema": "netc-diff", "version": 1, "a": d.a.name, "b": d.b.name,
        "total": {"a": _cost(d.a.total), "b": _cost(d.b.total)},
        "blocks": [{"scope": b.scope, "status": b.status, "a": _side(b.a), "b": _side(b.b),
                    "delta": {attr: b.delta(attr) for attr, _, _ in QUANTITIES},
                    "layers": [{"status": c.status, "fields": c.fields, "a": _layer(c.a), "b": _layer(c.b)}
                               for c in b.layers]}
                   for b in d.blocks],
    }


def to_json(d: Diff) -> str:
    return json.dumps(to_dict(d), indent=1, ensure_ascii=False) + "\n"


RENDER = {"text": to_text, "md": to_markdown, "json": to_json}
