"""A spec as YAML text in netc's house style: block style for structure, one flow mapping per
op layer (`- {name: conv1, conv: {out: 64, k: 7, s: 2, p: 3, bias: false}}`)."""
from __future__ import annotations

import json
import re

WIDTH = 110
PLAIN = re.compile(r"[A-Za-z_$][A-Za-z0-9_.$ *+\-/()]*")
WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    text = str(v)
    if PLAIN.fullmatch(text) and text.lower() not in WORDS and not text.endswith(" ") and ": " not in text:
        return text
    # a lone surrogate (a source path's non-UTF-8 byte) has no YAML escape: written as text, `\udcff`
    return json.dumps(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def flow(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(flow(x) for x in v) + "]"
    return scalar(v)


def _is_leafy(v, nested: bool = False) -> bool:
    """Flow style fits: a list of layers (`seq: [{conv: {out: 64, k: 3}}, bn, relu]`) holds no
    list of layers itself, but for a list of one (a seq of one layer)."""
    if isinstance(v, dict):
        return all(_is_leafy(x, nested) for x in v.values())
    if isinstance(v, list):
        if all(not isinstance(x, (dict, list)) for x in v) or len(v) == 1 and _is_leafy(v[0], nested):
            return True
        return not nested and all(_is_leafy(x, True) for x in v)
    return True


def block(v, indent: int = 0) -> list[str]:
    pad = " " * indent
    lines = []
    if isinstance(v, dict):
        for k, x in v.items():
            one = flow(x)
            if indent == 0 and k == "layers" and x:  # the network's layers, one a line however few
                lines.append("layers:")
                lines.extend(block(x, 2))
            elif _is_leafy(x) and len(pad) + len(str(k)) + len(one) + 2 <= WIDTH or not isinstance(x, (dict, list)) \
                    or not x:
                lines.append(f"{pad}{scalar(k)}: {one}")
            else:
                lines.append(f"{pad}{scalar(k)}:")
                lines.extend(block(x, indent + 2))
        return lines
    for x in v:
        one = flow(x)
        if _is_leafy(x) and len(pad) + len(one) + 2 <= WIDTH or not isinstance(x, (dict, list)):
            lines.append(f"{pad}- {one}")
        else:
            inner = block(x, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
    return lines


def dump(spec: dict) -> str:
    return "\n".join(block(spec)) + "\n"
