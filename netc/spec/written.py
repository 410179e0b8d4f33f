"""How long a hand-written spec is: its own lines plus the lines of every library template it uses.

A spec that writes `use: MobileNetV3Large` from `lib/mobile.yaml` is as long as itself and that
template's definition (and the templates that one uses, transitively); the rest of the library
file is not counted. This is the measure an imported spec is held to (`netc import` of a model
with a bundled spec: at most 1.5x these lines; docs/architecture.md).
"""
from __future__ import annotations

import re
from pathlib import Path

from netc.spec.load import _library_file, _uses, collect_templates, parse_spec, read_text


def written_lines(path: str | Path) -> int:
    """Lines of the spec at `path` plus those of the library templates it uses (each once)."""
    text, _ = read_text(path)
    spec = parse_spec(text, str(path))
    own = set(spec.templates)
    templates = collect_templates(spec, str(Path(path)))
    todo, used = list(_uses(spec._raw.get("layers"))), set()
    while todo:
        name = todo.pop()
        if name in used or name not in templates:
            continue
        used.add(name)
        todo.extend(_uses(templates[name]._raw))
    return text.count("\n") + sum(_template_lines(name, templates[name]) for name in sorted(used - own))


def _template_lines(name: str, template) -> int:
    """Lines of a template's definition in its file: from its `Name:` line through the last line
    indented deeper than that (blank and comment lines at the end left out)."""
    loc = template._raw.loc
    file = Path(loc.file)
    if not file.is_file():  # a `lib:` import's file is shown by the library's name (netc/resnet)
        file = _library_file(loc.file, (), loc)[0]
    lines = file.read_text(encoding="utf-8").splitlines()
    key_line = re.compile(rf"\s*['\"]?{re.escape(name)}['\"]?\s*:")
    key = next(k for k in range(loc.line - 1, -1, -1) if key_line.match(lines[k]))  # (the value may start below)
    end = key + 1
    for k in range(key + 1, len(lines)):
        if lines[k].strip() and not lines[k].lstrip().startswith("#") and _indent(lines[k]) <= _indent(lines[key]):
            break
        end = k + 1
    while end > key + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return end - key


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))
