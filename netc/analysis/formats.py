"""Formatters of the cost table: aligned text, markdown, CSV and JSON.

The JSON layout is documented in docs/table.md and versioned by `SCHEMA_VERSION`; change it
only by adding keys, or bump the version.
"""
from __future__ import annotations

import csv
import io
import json

from netc.analysis.cost import DTYPE_BYTES, Cost
from netc.analysis.table import Row, Table
from netc.ops import fmt_shape

SCHEMA_VERSION = 1
FORMATS = ("text", "md", "csv", "json")
COLUMNS = ("Layer", "Op", "Output", "Params", "Buffers", "MACs", "Other FLOPs", "Memory", "RF", "Jump")


def convention(table: Table) -> list[str]:
    """The header lines: what every column counts."""
    r = table.report
    lines = [
        f"{r.name}: input {fmt_shape(r.input)}, batch 1, {r.dtype} activations",
        "MACs = multiply-accumulates of conv and linear layers (FLOPs = 2 × MACs; torchvision's "
        "GFLOPS column counts MACs). Other FLOPs: normalisation, pooling, activations, sums.",
        f"Memory = output elements × {DTYPE_BYTES[r.dtype]} bytes (in-place ops not modelled). "
        "Buffers = BN running statistics. RF / Jump = receptive field / effective stride in input pixels.",
    ]
    if r.aux.params or r.aux.macs:
        lines.append("Aux heads (training only): parameters in the total; MACs, FLOPs and memory not.")
    return lines


def human(n: float, unit: str = "", base: int = 1000) -> str:
    prefixes = ("", "K", "M", "G", "T") if base == 1000 else ("", "Ki", "Mi", "Gi", "Ti")
    i = 0
    while abs(n) >= base and i < len(prefixes) - 1:
        n /= base
        i += 1
    return f"{n:.0f} {prefixes[i]}{unit}".rstrip() if i == 0 else f"{n:.2f} {prefixes[i]}{unit}"


def _pair(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def rf_text(fields) -> str:
    """A receptive field for a reader: 'global' where it covers the whole input, '~' before an
    estimate (downstream of upsampling or reflected padding)."""
    cells = tuple("global" if f.whole else str(f.size) for f in fields)
    text = cells[0] if cells[0] == cells[1] else f"{cells[0]}x{cells[1]}"
    return text if all(f.exact for f in fields) else f"~{text}"


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def _cells(name: str, op: str, shape: str, c: Cost, rf: str, jump: str) -> list[str]:
    return [name, op, shape, _count(c.params), _count(c.buffers), _count(c.macs), _count(c.other_flops),
            human(c.activation_bytes, "B", 1024) if c.activation_bytes else "-", rf, jump]


def row_cells(row: Row, indent: str) -> list[str]:
    """The text cells of one row under COLUMNS (also used by the HTML report)."""
    label = row.label or row.op
    if row.aux:
        label += " [aux]"
    return _cells(indent * row.level + row.scope, label, fmt_shape(row.shape), row.cost, rf_text(row.fields),
                  _pair(row.jump))


def total_rows(table: Table) -> list[list[str]]:
    """The cells of the totals row and, when there are aux heads, of their row."""
    r = table.report
    rows = [_cells("total", "", ", ".join(fmt_shape(s) for _, s, aux in r.outputs if not aux), r.total, "", "")]
    if r.aux.params or r.aux.macs:
        rows.append(_cells("aux heads (training only)", "params in total, MACs not", "", r.aux, "", ""))
    return rows


def summary(table: Table) -> str:
    t = table.report.total
    return (f"params {t.params:,} = {human(t.params)}, MACs {t.macs:,} = {human(t.macs)}, "
            f"activations {human(t.activation_bytes, 'B', 1024)}")


def text_lines(table: Table) -> list[tuple[str, str | None]]:
    """The text table as (line, style) pairs; styles (`bold`, `dim`) are for terminals only.

    Columns are padded by hand rather than laid out by a rich Table: rich spends ~45 µs per cell,
    which was 90% of the run time of `netc table` on ResNet-152 (575 rows × 10 columns, 260 ms);
    rich only colours the finished lines (`print_styled`)."""
    cells = [list(COLUMNS)] + [row_cells(row, "  ") for row in table.rows]
    footer = total_rows(table)
    widths = [max(len(r[i]) for r in cells + footer) for i in range(len(COLUMNS))]

    def line(row):
        return "   ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    head = convention(table)
    out = [(head[0], "bold")] + [(text, "dim") for text in head[1:]] + [("", None), (line(cells[0]), "bold"),
                                                         ("─" * (sum(widths) + 3 * (len(widths) - 1)), None)]
    out += [(line(c), "bold" if row.kind == "block" else None) for row, c in zip(table.rows, cells[1:])]
    out += [("", None)] + [(line(c), "bold") for c in footer] + [(summary(table), None)]
    return out


def to_text(table: Table) -> str:
    return "\n".join(text for text, _ in text_lines(table)) + "\n"


def print_styled(table: Table, console) -> None:
    """The text table on a rich Console (a terminal): block and total rows bold, conventions dim."""
    for text, style in text_lines(table):
        console.print(text, style=style, markup=False, highlight=False, emoji=False, soft_wrap=True)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table) -> str:
    lines = [f"**{_md_cell(convention(table)[0])}**", ""]
    lines += [_md_cell(line) + "  " for line in convention(table)[1:]]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" if i < 3 else "---:"
                                                                  for i in range(len(COLUMNS))) + "|"]
    for row in table.rows:
        cells = [_md_cell(c) for c in row_cells(row, "")]
        if row.kind == "block":
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    for cells in total_rows(table):
        cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines += ["", summary(table)]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("kind", "scope", "level", "op", "label", "shape", "params", "buffers", "macs", "other_flops",
              "activation_bytes", "rf_h", "rf_w", "jump_h", "jump_w", "aux")


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for row in table.rows:
        c = row.cost
        w.writerow([row.kind, row.scope, row.level, row.op, row.label, "x".join(map(str, row.shape)), c.params,
                    c.buffers, c.macs, c.other_flops, c.activation_bytes,
                    *("global" if f.whole else f.size for f in row.fields), *row.jump, int(row.aux)])
    r = table.report
    for kind, c, aux in (("total", r.total, 0), ("aux", r.aux, 1)):
        w.writerow([kind, "", "", "", "", "", c.params, c.buffers, c.macs, c.other_flops, c.activation_bytes,
                    "", "", "", "", aux])
    return buf.getvalue()


def _cost_json(c: Cost) -> dict:
    return {"params": c.params, "buffers": c.buffers, "macs": c.macs, "other_flops": c.other_flops,
            "activation_bytes": c.activation_bytes}


def to_dict(table: Table) -> dict:
    """The JSON document (see docs/table.md)."""
    r = table.report
    return {
        "schema": "netc-table",
        "version": SCHEMA_VERSION,
        "network": r.name,
        "input": list(r.input),
        "batch": 1,
        "dtype": r.dtype,
        "dtype_bytes": DTYPE_BYTES[r.dtype],
        "depth": table.depth,
        "convention": convention(table)[1:],
        "outputs": [{"name": n, "shape": list(s), "aux": a} for n, s, a in r.outputs],
        "rows": [{"kind": row.kind, "scope": row.scope, "level": row.level, "op": row.op, "label": row.label,
                  "shape": list(row.shape), **_cost_json(row.cost), "rf": list(row.rf), "jump": list(row.jump),
                  "rf_global": [f.whole for f in row.fields], "rf_exact": all(f.exact for f in row.fields),
                  "aux": row.aux} for row in table.rows],
        "total": _cost_json(r.total),
        "aux": _cost_json(r.aux),
    }


def to_json(table: Table) -> str:
    """Keys sorted; one line per key and per row, so diffs of two tables read line by line."""
    def dump(v):
        return json.dumps(v, sort_keys=True, ensure_ascii=False)

    items = []
    for key, value in sorted(to_dict(table).items()):
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = "[\n" + ",\n".join("    " + dump(v) for v in value) + "\n  ]"
        else:
            value = dump(value)
        items.append(f"  {dump(key)}: {value}")
    return "{\n" + ",\n".join(items) + "\n}\n"


RENDER = {"text": to_text, "md": to_markdown, "csv": to_csv, "json": to_json}


def render(table: Table, fmt: str = "text") -> str:
    if fmt not in RENDER:
        raise ValueError(f"unknown table format '{fmt}'; one of {', '.join(FORMATS)}")
    return RENDER[fmt](table)
