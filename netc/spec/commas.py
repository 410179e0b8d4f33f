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


def _find(entries):
    """In one pass: (opener node, joined text) of the first run of entries that is a scalar
    opening parentheses followed by fragments that close them; None if there is none.
    `entries` yields (node that may open, fragment that may continue or None)."""
    opener, parts, depth = None, [], 0
    for node, fragment in entries:
        if opener is not None and fragment is not None:
            parts.append(fragment)
            depth += _depth(fragment)
            if depth <= 0:
                return opener, ", ".join(parts)
            continue
        opener = None
        if _plain(node) and _depth(node.value) > 0:
            opener, parts, depth = node, [node.value], _depth(node.value)
    return None


def check_flow_commas(node, file: str) -> None:
    """Raise error[yaml] with a quoting hint if a flow mapping or sequence split an expression."""
    if not getattr(node, "flow_style", False):
        return
    if isinstance(node, MappingNode):
        # a fragment after the comma parses as a key with no value
        found = _find((v, k.value if _plain(k) and _plain(v) and v.value == "" else None) for k, v in node.value)
        if found:
            key = next(k for k, v in node.value if v is found[0])
            _fail(found[1], found[0], file, f'{clip(key.value, 40)}: "{clip(found[1], 80)}"', "mapping {…}")
    elif isinstance(node, SequenceNode):
        found = _find((v, v.value if _plain(v) else None) for v in node.value)
        if found:
            _fail(found[1], found[0], file, f'"{clip(found[1], 80)}"', "list […]")


def _fail(text: str, node, file: str, fixed: str, where: str):
    raise error("yaml", f"the expression '{clip(text, 80)}' is split at its comma: in a flow {where} "
                        "a comma separates entries",
                Loc(file, node.start_mark.line + 1, node.start_mark.column + 1),
                f"quote the expression: {fixed}")
