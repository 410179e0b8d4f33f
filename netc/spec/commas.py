"""An unquoted expression with a comma inside a YAML flow collection.

In `{sq: max(1, $c // 4)}` or `[max(1, $c), 2]` the comma separates entries, so YAML reads
`{sq: "max(1", "$c // 4)": null}`: the mistake would surface later as a confusing unknown key
or argument named `$c // 4)`. The pattern is unambiguous (no netc key or value is a fragment
with unbalanced parentheses), so it is reported where the expression starts, with the fix.
"""
from __future__ import annotations

from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from netc.errors import Loc, clip, error


def _plain(node) -> bool:
    return isinstance(node, ScalarNode) and node.style in (None, "")


def _depth(text: str) -> int:
    return text.count("(") - text.count(")")


def _join(first: ScalarNode, rest) -> str | None:
    """The expression `first, rest...` when `rest` closes the parentheses `first` opens."""
    if not _plain(first) or _depth(first.value) <= 0:
        return None
    parts, depth = [first.value], _depth(first.value)
    for piece in rest:
        if piece is None:
            return None
        parts.append(piece)
        depth += _depth(piece)
        if depth <= 0:
            return ", ".join(parts)
    return None


def check_flow_commas(node, file: str) -> None:
    """Raise error[yaml] with a quoting hint if a flow mapping or sequence split an expression."""
    if not getattr(node, "flow_style", False):
        return
    if isinstance(node, MappingNode):
        pairs = node.value
        for i, (key, value) in enumerate(pairs):
            # a fragment after the comma parses as a key with no value
            rest = (k.value if _plain(k) and _plain(v) and v.value == "" else None for k, v in pairs[i + 1:])
            text = _join(value, rest)
            if text is not None:
                _fail(text, value, file, f'{clip(key.value, 40)}: "{clip(text, 80)}"', "mapping {…}")
    elif isinstance(node, SequenceNode):
        items = node.value
        for i, item in enumerate(items):
            text = _join(item, (v.value if _plain(v) else None for v in items[i + 1:]))
            if text is not None:
                _fail(text, item, file, f'"{clip(text, 80)}"', "list […]")


def _fail(text: str, node, file: str, fixed: str, where: str):
    raise error("yaml", f"the expression '{clip(text, 80)}' is split at its comma: in a flow {where} "
                        "a comma separates entries",
                Loc(file, node.start_mark.line + 1, node.start_mark.column + 1),
                f"quote the expression: {fixed}")
