"""The README's op table, generated from the registry: one row per op, its attributes (with their
defaults) read from its `Attrs`, its meaning from `Op.reference` (or its summary). The README
holds the table between two markers; `python -m netc.reference README.md` rewrites it there,
and a test fails when it is stale. No torch here."""
from __future__ import annotations

import sys
import typing
from pathlib import Path

from netc.ops import REGISTRY

BEGIN = "<!-- op table: generated from netc.ops by `python -m netc.reference README.md` -->"
END = "<!-- end of op table -->"
BAR = " \\| "  # a | inside a markdown table cell


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _choices(annotation) -> list[str]:
    """The values of a Literal field (alone or beside None), else none."""
    if typing.get_origin(annotation) is typing.Literal:
        return [_value(v) for v in typing.get_args(annotation)]
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            return _choices(arg)
    return []


def attributes(op) -> str:
    """`k`, `s` (1), `mode` (nearest \\| bilinear): each attribute with its default; choices listed."""
    cells = []
    for key, f in op.Attrs.model_fields.items():
        choices = _choices(f.annotation)
        if choices and not f.is_required():
            default = _value(f.default)
            cells.append(f"`{key}` ({BAR.join([default, *(c for c in choices if c != default)])})")
        elif f.is_required() or f.default is None:
            cells.append(f"`{key}`")
        else:
            cells.append(f"`{key}` ({_value(f.default)})")
    return ", ".join(cells) or "—"


def op_table() -> str:
    rows = ["| op | attributes (default) | meaning |", "|---|---|---|"]
    for name, op in REGISTRY.items():
        meaning = (op.reference or op.summary).replace("|", BAR.strip())
        rows.append(f"| `{name}` | {attributes(op)} | {meaning} |")
    return "\n".join(rows)


def with_table(readme: str) -> str:
    """`readme` with the text between the markers replaced by the current table."""
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{op_table()}\n{END}{tail}"


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
