"""Safe YAML loading that remembers where everything came from.

Only the YAML core types are accepted (no Python tags, no custom tags, no merge keys);
duplicate keys are errors. Mappings and sequences come back as `LocDict` / `LocList`,
which carry the location of themselves, of each key and of each value, so any later
error (schema, expression, shape) can point at its source.
"""
from __future__ import annotations

import math
import re

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from netc.errors import Loc, error
from netc.spec.commas import check_flow_commas

MAX_YAML_ITEMS = 1_000_000  # nodes visited while constructing (alias bombs multiply this)
MAX_YAML_DEPTH = 200
MAX_YAML_INT = 2**63 - 1  # larger integers are no sizes, counts or indices; they only cause overflow

_CORE_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}


class LocDict(dict):
    """A mapping from YAML with `loc`, `key_locs[key]` and `value_locs[key]`."""

    def __init__(self, *args, loc: Loc | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loc = loc
        self.key_locs: dict = {}
        self.value_locs: dict = {}


class LocList(list):
    """A sequence from YAML with `loc` and `item_locs[i]`."""

    def __init__(self, *args, loc: Loc | None = None):
        super().__init__(*args)
        self.loc = loc
        self.item_locs: list = []


def loc_of(obj, default: Loc | None = None) -> Loc | None:
    return getattr(obj, "loc", None) or default


def value_loc(container, key, default: Loc | None = None) -> Loc | None:
    """Location of `container[key]` (a mapping value or a list item)."""
    if isinstance(container, LocDict):
        return container.value_locs.get(key) or container.loc or default
    if isinstance(container, LocList) and isinstance(key, int) and 0 <= key < len(container.item_locs):
        return container.item_locs[key]
    return loc_of(container, default)


def key_loc(container, key, default: Loc | None = None) -> Loc | None:
    if isinstance(container, LocDict):
        return container.key_locs.get(key) or container.loc or default
    return loc_of(container, default)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser: ~15x faster
    """SafeLoader whose float resolver also accepts `1e-3` (YAML 1.2 style)."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
for _ch in list("-+0123456789."):
    _Loader.yaml_implicit_resolvers[_ch] = [
        (tag, rx) for tag, rx in _Loader.yaml_implicit_resolvers.get(_ch, []) if tag != "tag:yaml.org,2002:float"
    ]
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _loc(file: str, node) -> Loc:
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, file: str, loader: _Loader):
        self.file = file
        self.loader = loader
        self.visited = 0

    def build(self, node, depth: int = 0):
        self.visited += 1
        loc = _loc(self.file, node)
        if self.visited > MAX_YAML_ITEMS:
            raise error("limit", f"YAML document expands to more than {MAX_YAML_ITEMS:,} items", loc,
                        "anchors and aliases that refer to each other multiply the document's size")
        if depth > MAX_YAML_DEPTH:
            raise error("limit", f"YAML nesting deeper than {MAX_YAML_DEPTH} levels", loc)
        if isinstance(node, MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise error("yaml-tag", f"tag '{node.tag}' is not allowed", loc,
                            "netc specs use plain YAML mappings, lists and scalars only")
            check_flow_commas(node, self.file)
            out = LocDict(loc=loc)
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise error("yaml", "mapping keys must be plain scalars", _loc(self.file, key_node))
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise error("yaml", "merge keys ('<<') are not supported", _loc(self.file, key_node),
                                "use a template or a variable instead")
                key = self.scalar(key_node)
                if isinstance(key, float) or key is None:
                    key = str(key_node.value)
                if key in out:
                    first = out.key_locs[key]
                    raise error("yaml-duplicate-key", f"duplicate key '{key}' (first defined at {first})",
                                _loc(self.file, key_node))
                out.key_locs[key] = _loc(self.file, key_node)
                out.value_locs[key] = _loc(self.file, value_node)
                out[key] = self.build(value_node, depth + 1)
            return out
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise error("yaml-tag", f"tag '{node.tag}' is not allowed", loc,
                            "netc specs use plain YAML mappings, lists and scalars only")
            check_flow_commas(node, self.file)
            out = LocList(loc=loc)
            for item in node.value:
                out.item_locs.append(_loc(self.file, item))
                out.append(self.build(item, depth + 1))
            return out
        return self.scalar(node)

    def scalar(self, node: ScalarNode):
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # a date-like plain scalar is just text here
        if node.tag not in _CORE_TAGS:
            raise error("yaml-tag", f"tag '{node.tag}' is not allowed", _loc(self.file, node),
                        "netc specs use plain YAML mappings, lists and scalars only")
        try:
            value = self.loader.construct_object(node, deep=True)
        except ValueError:  # e.g. an integer with more digits than Python converts
            value = None if node.tag != "tag:yaml.org,2002:int" else MAX_YAML_INT + 1
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_YAML_INT:
            raise error("schema", f"integer {node.value[:30]}{'…' if len(node.value) > 30 else ''} is too large "
                                  f"(the limit is {MAX_YAML_INT:,})", _loc(self.file, node))
        if isinstance(value, float) and not math.isfinite(value):
            raise error("schema", f"'{node.value[:30]}' is not a finite number", _loc(self.file, node),
                        "sizes, rates and factors must be finite numbers")
        return value


def _check_size(root, file: str) -> None:
    """Reject documents whose aliases expand beyond MAX_YAML_ITEMS, before building anything.

    An alias is the same node object as its anchor, so sizes are memoised per node: a
    billion-laughs document costs as many steps as it has distinct nodes.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being sized: meeting one again is a cycle
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids = ([k for pair in node.value for k in pair] if isinstance(node, MappingNode)
                else node.value if isinstance(node, SequenceNode) else [])
        if not children_done and id(node) in open_:
            raise error("yaml", "an alias refers to a node that contains it (a recursive structure)",
                        _loc(file, node))
        if children_done or not kids:
            sizes[id(node)] = 1 + sum(sizes[id(k)] for k in kids)
            if sizes[id(node)] > MAX_YAML_ITEMS:
                raise error("limit", f"YAML document expands to more than {MAX_YAML_ITEMS:,} items", _loc(file, node),
                            "anchors and aliases that refer to each other multiply the document's size")
            continue
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in sizes)


def load_yaml(text: str, file: str):
    """Parse one YAML document into LocDict/LocList/scalars, or raise NetcError."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            loc = Loc(file, mark.line + 1, mark.column + 1) if mark else Loc(file)
            problem = exc.problem or exc.context or "invalid YAML"
            if "expected a single document" in str(exc):
                problem = "expected a single YAML document, found several"
            if "maximum nesting depth" in problem:  # libyaml's own depth limit, met before ours
                raise error("limit", f"YAML nesting deeper than {MAX_YAML_DEPTH} levels", loc) from None
            raise error("yaml", f"invalid YAML: {problem}", loc) from None
        except yaml.YAMLError as exc:
            raise error("yaml", f"invalid YAML: {exc}", Loc(file)) from None
        except RecursionError:
            raise error("limit", f"YAML nesting deeper than {MAX_YAML_DEPTH} levels", Loc(file)) from None
        if node is None:
            return None
        _check_size(node, file)
        return _Builder(file, loader).build(node)
    finally:
        loader.dispose()
