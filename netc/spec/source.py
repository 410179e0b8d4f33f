"""The frontend's one door for what the IR does not carry: the spec as it is written.

Consumes the validated `Spec` and its file; produces a `Source`: the spec's layer nodes by
source location (with the node each is written in, and the if-node an `else:` completes), the
templates (imports included), the mapping a layer node holds under a key as written
(expressions as text), where a value or key is written, the `output:` names written anywhere (an
`if:` may leave some out of the IR), and the spec's string constants. Backends reach it as
`Network.source`; none imports `netc.spec` or reads the YAML a spec was parsed from (`_raw`).
"""
from __future__ import annotations

import ast
import re
import functools

from netc.errors import Loc, NetcError
from netc.spec.load import collect_templates
from netc.spec.template_args import TYPE_NAMES
from netc.spec.yamlload import key_loc, value_loc


class Source:
    """The templates and the index of layer nodes are built on first use (imports are read again)."""

    def __init__(self, spec, file: str):
        self.spec, self.file = spec, file

    @functools.cached_property
    def templates(self) -> dict:
        try:
            return collect_templates(self.spec, self.file)
        except NetcError:
            return dict(self.spec.templates)

    @property
    def by_loc(self) -> dict:
        """A layer node's location -> the node."""
        return self._indexed[0]

    @property
    def parent_of(self) -> dict:
        """A node's location -> the node it is written in (seq, concat, residual, side)."""
        return self._indexed[1]

    @property
    def else_of(self) -> dict:
        """An `else:` node's location -> the node whose `if:` it completes."""
        return self._indexed[2]

    @functools.cached_property
    def _indexed(self) -> tuple[dict, dict, dict, set]:
        self._by_loc, self._parent_of, self._else_of = {}, {}, {}
        for node in self.spec.layers:
            self._index(node)
        top_level = set(self._by_loc)  # where the layers written outside templates are
        for template in self.templates.values():
            self._index(template.body)
        return self._by_loc, self._parent_of, self._else_of, top_level

    def _index(self, node, parent=None):
        loc = self.loc_of(node)
        if loc is not None:
            self._by_loc.setdefault(loc, node)
            if parent is not None:
                self._parent_of.setdefault(loc, parent)
        for key in ("seq", "concat"):
            for child in getattr(node, key, None) or []:
                self._index(child, node)
        if getattr(node, "side", None) is not None:
            self._index(node.side, node)
        if getattr(node, "else_", None) is not None:
            self._else_of[self.loc_of(node.else_)] = node
            self._index(node.else_, parent)
        res = getattr(node, "residual", None)
        if res is not None:
            for child in (res.body, res.shortcut, res.then):
                if child is not None:
                    self._index(child, node)

    @staticmethod
    def loc_of(node) -> Loc | None:
        """Where a layer node (or any model of the spec) is written."""
        return getattr(getattr(node, "_raw", None), "loc", None)

    def written(self, node, key: str) -> dict:
        """The mapping a layer node holds under `key` as written (`{}` where it holds none). Outside
        templates `$in_c`, `$in_h`, `$in_w` are the network input's numbers, written as such (inside,
        `$in_c` is a class's input channels, as the code generator reads it)."""
        raw = getattr(node, "_raw", None)
        value = raw.get(key) if hasattr(raw, "get") else None
        if not isinstance(value, dict):
            return {}
        return _input_numbers(value, self.spec.input) if self.loc_of(node) in self._indexed[3] else value

    @staticmethod
    def is_type_name(decl) -> bool:
        """A template argument declared by its type only (`int`, `list`): the argument is required."""
        return isinstance(decl, str) and decl in TYPE_NAMES

    def _container(self, path: tuple):
        container = self.spec._raw
        for key in path:
            container = container.get(key) if hasattr(container, "get") else None
        return container

    def value_loc(self, *path, default: Loc | None = None) -> Loc | None:
        """Where the value at `path` (keys from the spec's top) is written."""
        return value_loc(self._container(path[:-1]), path[-1], default)

    def key_loc(self, *path, default: Loc | None = None) -> Loc | None:
        """Where the key ending `path` is written."""
        return key_loc(self._container(path[:-1]), path[-1], default)

    def start_loc(self, *path) -> Loc | None:
        """Where the mapping or list at `path` starts; else where the spec does."""
        return getattr(self._container(path), "loc", None) or getattr(self.spec._raw, "loc", None)

    def declared_outputs(self) -> set[str]:
        """Every `output:` value (and named side branch) written in the spec."""
        found, stack = set(), [self.spec._raw]
        while stack:
            raw = stack.pop()
            if isinstance(raw, dict):
                for key, value in raw.items():
                    if key == "output" and isinstance(value, str):
                        found.add(value)
                    elif key == "side" and isinstance(raw.get("name"), str):
                        found.add(raw["name"])
                    stack.append(value)
            elif isinstance(raw, list):
                stack.extend(raw)
        return found

    def strings(self) -> list[str]:
        """String constants of the spec: values, and literals inside its expressions (`$m == 'B'`)."""
        out: list[str] = []
        stack = [self.spec._raw]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                stack.extend(reversed(list(node.values())))
            elif isinstance(node, list):
                stack.extend(reversed(node))
            elif isinstance(node, str):
                if "$" not in node:
                    out.append(node)
                    continue
                try:
                    tree = ast.parse(node.replace("$", ""), mode="eval")
                except (SyntaxError, ValueError, RecursionError):
                    continue
                out.extend(n.value for n in ast.walk(tree)
                           if isinstance(n, ast.Constant) and isinstance(n.value, str))
        return list(dict.fromkeys(out))


_INPUT_VAR = re.compile(r"\$in_([chw])\b")


def _input_numbers(value, shape):
    """`value` with `$in_c`, `$in_h`, `$in_w` replaced by the input shape's numbers (where it has the axis)."""
    if isinstance(value, str):
        return _INPUT_VAR.sub(lambda m: _axis(shape, "chw".index(m.group(1)), m.group(0)), value)
    if isinstance(value, dict):
        return {k: _input_numbers(v, shape) for k, v in value.items()}
    if isinstance(value, list):
        return [_input_numbers(v, shape) for v in value]
    return value


def _axis(shape, axis: int, otherwise: str) -> str:
    return str(shape[axis]) if axis < len(shape) else otherwise
