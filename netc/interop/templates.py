"""Structure recovery above blocks: repeated submodule classes -> templates, runs -> `repeat`.

Instances of one module class are unified bottom-up (a class whose instances contain other
templated classes after those): values that agree stay literal; scalars that differ become
template arguments (default: the most common value; arguments that always agree are merged,
and one that is always an integer multiple of another becomes `$other * n`); a layer that
only some instances have (a projection shortcut) gets `if: $<key>`, a bool argument. An
argument is named by what it sets (`readable_names`: `out`, `fc1_out`, `stochastic_depth_p`),
never by position. A named block whose items are instances 0..n-1 of one template becomes
`repeat: n` with `args`, `first:` and `at:` overrides, and so do siblings named `prefix<k>`,
`prefix<k+1>`, … (`name: "denselayer{$i + 1}"`); a float argument that is a per-block rate
(`rate * block_index / total_blocks`) becomes an expression of `$i` that gives each value bit for
bit (`progression`), over the iterations that use it. Identity layers that only hold a source's
place (`drop_placeholders`) go.

Instances that differ in layout still make one template where every instance is the longest
one with layers left out (`Unifier.aligned`: torchvision's Conv2dNormActivation without its
activation, MBConv without its expansion conv), or with an identity-shortcut residual written as
its body and an `add` of the input (`_unrolled`: a stage's first MBConv has no shortcut). Names
that are positions (`0`, `1` of an nn.Sequential) are left out so that such layers align: a
template whose uses lose their name becomes `module: true`, whose unnamed instance takes the next
position as the source's does. Integer arguments that follow the instance's input channels
become `$in_c` expressions (`$in_c // 4`, `$in_c * $expand`), a padding that keeps the size
`$k // 2`, and a bool argument that a comparison decides in every instance that expression
(`if: "$in_c == $out"`); sizes a block reads off its maps are written as its input's
(`local_size`), and layers whose names or references differ are matched first (`matching`).
Every such rewrite is exact for each instance by construction, and the import verifies the whole
spec against its source.
"""
from __future__ import annotations

import copy
import re
from collections import Counter

from netc.expr import TEMPLATE_INPUT_VARS, is_expr
from netc.interop import local_size, matching, runs, signature
from netc.interop.structure import (
    ENTRY_KEYS,
    IN_C_KEY,
    IN_GRID_KEY,
    INPUT_KEY,
    PATH_KEY,
    TYPE_KEY,
    drop_keys,
)
from netc.interop.yamlout import flow
from netc.ops import REGISTRY
from netc.spec.template_args import TYPE_NAMES

FREE_KEY = "__free__"  # a use's arguments whose layers it does not have: any value serves (a repeat's `$i` rate)
MISSING = object()


class _Mismatch(Exception):
    pass


class Unifier:
    """Instances unified into one template body. An argument is made under a placeholder name
    (`_arg<k>`) with the path of layer names and keys that led to it; `readable_names` names them
    all at the end, when every argument is known."""

    def __init__(self, n: int, templates: dict):
        self.n = n
        self.templates = templates  # made so far (inner classes first): their argument defaults
        self.args: dict[str, list] = {}  # name -> value per instance (MISSING where absent)
        self.paths: dict[str, tuple] = {}  # placeholder name -> the path it was found at
        self.numbers: set[str] = set()  # the arguments that number a layer's name (`matching.numbered_names`)

    def new_arg(self, path: tuple, values: list) -> str:
        name = f"{PLACEHOLDER}{len(self.args)}"
        self.args[name] = values
        self.paths[name] = path
        return name

    def new_number(self, path: tuple, values: list) -> str:
        name = self.new_arg(path, values)
        self.numbers.add(name)
        return name

    def ordered_args(self) -> dict[str, list]:
        """The arguments, those that number a name last: one that agrees with another (a stride)
        is written as that one (`"c1x1_w_s{$s}"`), not the stride as the name's number."""
        return dict(sorted(self.args.items(), key=lambda item: item[0] in self.numbers))

    def unify(self, xs: list, present: list[int], hint: tuple):
        """The template value for the instances' values `xs` (instances `present`)."""
        first = xs[0]
        if all(_same(x, first) for x in xs):
            return copy.deepcopy(first)
        if all(_scalarish(x) for x in xs) and _reads_input_size(xs):  # an instance's own size: no argument carries it
            if not all(isinstance(x, list) for x in xs) or len({len(x) for x in xs}) > 1:
                raise _Mismatch
            return [self.unify([x[k] for x in xs], present, hint) for k in range(len(first))]
        if all(_scalarish(x) for x in xs):
            if any(isinstance(x, list) for x in xs):  # a pair attribute: 3 and [1, 7] -> [3, 3] and [1, 7]
                xs = [[x, x] if isinstance(x, int) and not isinstance(x, bool) else x for x in xs]
            values = [MISSING] * self.n
            for i, x in zip(present, xs):
                values[i] = x
            return "$" + self.new_arg(hint, values)
        if all(isinstance(x, dict) for x in xs):
            return self.unify_layers(xs, present, hint)
        if not all(isinstance(x, list) for x in xs):
            raise _Mismatch
        xs = matching.numbered_names(xs, present, [MISSING] * self.n, self.new_number, hint)
        if len({len(x) for x in xs}) == 1:
            return [self.unify([x[k] for x in xs], present, hint) for k in range(len(first))]
        return self.aligned(xs, present, hint)

    def aligned(self, xs: list[list], present: list[int], hint: tuple) -> list:
        """Lists of layers of different lengths, matched by layer name (or op, for unnamed ones):
        where every list is the longest one with some layers left out (torchvision's
        Conv2dNormActivation without its activation), the longest with `if:` on the others."""
        keys = [[_item_key(v) for v in x] for x in xs]
        order = max(keys, key=len)
        places = [_embedding(k, order) for k in keys]  # instance -> {position in order: its item}
        if any(None in k for k in keys) or None in places or _counts_differ(order, places) \
                or _repeats_differ(order, places):
            raise _Mismatch
        xs, read_through = matching.read_through(xs, places, order)
        out = []
        for j, key in enumerate(order):
            have = [(i, x[p[j]]) for i, x, p in zip(present, xs, places) if j in p]
            if len(have) == len(xs):
                out.append(self.unify([v for _, v in have], present, hint))
                continue
            have = [(i, {v: {}} if isinstance(v, str) else v) for i, v in have]
            value = self.unify([v for _, v in have], [i for i, _ in have], hint)
            if not isinstance(value, dict):
                raise _Mismatch
            kind = _item_key({k: v for k, v in value.items() if k != "name"})
            word = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", kind[1]).lower() if kind else key[1]  # `Conv2d_norm…`
            out.append(self.optional(value, present, [i for i, _ in have], hint + (key[1], word)))
            if j in read_through:
                out[-1]["else"] = "identity"
        return out

    def optional(self, value: dict, present: list[int], having: list[int], path: tuple) -> dict:
        """Layer `value`, which only instances `having` of `present` have, under `if:` a bool argument."""
        flags = [MISSING] * self.n
        for i in present:
            flags[i] = False
        for i in having:
            flags[i] = True
        return {"if": "$" + self.new_arg(path, flags), **value}

    def unify_layers(self, xs: list[dict], present: list[int], hint: str) -> dict:
        """The template layer for the instances' layers `xs`: key by key; a key some instances lack
        makes its value optional (`if:` an argument)."""
        first = xs[0]
        if any(x.get("name") != first.get("name") for x in xs):
            raise _Mismatch
        xs = [self.spelled_out(x) for x in xs]
        kinds = [[k for k in x if k in REGISTRY] for x in xs]
        if any(k != kinds[0] for k in kinds):
            return self.alternatives(xs, present, kinds, hint)
        out = {}
        owner = (first["name"],) if "name" in first else ()
        for key in dict.fromkeys(k for x in xs for k in x if k not in (FREE_KEY, *ENTRY_KEYS, PATH_KEY)):
            have = [(i, x[key]) for i, x in zip(present, xs) if key in x]
            if key in REGISTRY:
                have = _with_defaults(key, have)
            if key in ("from", "use") and any(not _same(v, have[0][1]) for _, v in have):
                raise _Mismatch  # references or templates that differ are not expressible as arguments
            # an op's attributes and a template use's arguments are named by the layer's name
            label = hint + ((owner or (key,)) if key in REGISTRY else owner + (key,))
            if key == "args":  # (the used template's name, for the constructor's name of its argument)
                label = hint + owner + (USED + str(first.get("use")),)
            value = self.unify([v for _, v in have], [i for i, _ in have], label)
            if len(have) < len(xs):
                if not isinstance(value, dict) or key in ("name",):
                    raise _Mismatch
                value = self.optional(value, present, [i for i, _ in have], hint + (value.get("name", key),))
            out[key] = value
        return out

    def spelled_out(self, x: dict) -> dict:
        """A use of a template with every argument given: an instance leaves out those at their
        default, which another instance may set."""
        defaults = self.templates.get(x.get("use"), {}).get("args") if isinstance(x.get("use"), str) else None
        return {**x, "args": {**defaults, **x.get("args", {})}} if defaults else x

    def alternatives(self, xs: list[dict], present: list[int], kinds: list[list[str]], hint: str) -> dict:
        """One layer that is a different op in different instances (timm's ResNet-D shortcut: an
        identity in one block, an average pool in the others) as `if: $<op>, <op>: {...}, else:
        {<other op>: {...}}`, nested for more than two ops."""
        if any(len(k) != 1 for k in kinds) or any(set(x) - {"name", "from", kinds[0][0], k[0]}
                                                  for x, k in zip(xs, kinds)):
            raise _Mismatch
        ops = [k[0] for k in kinds]
        order = list(dict.fromkeys(ops))
        have_from = [x["from"] for x in xs if "from" in x]
        if have_from and (len(have_from) < len(xs) or any(not _same(f, have_from[0]) for f in have_from)):
            raise _Mismatch
        where = {"from": copy.deepcopy(have_from[0])} if have_from else {}
        node = None
        for op in reversed(order):
            mine = [(i, x[op]) for i, x, o in zip(present, xs, ops) if o == op]
            mine = _with_defaults(op, mine)
            attrs = self.unify([v for _, v in mine], [i for i, _ in mine], hint + (xs[0].get("name", op),))
            if node is None:
                node = {**where, op: attrs}
                continue
            later = set(order[order.index(op) + 1:])
            flags = [MISSING] * self.n
            for i, o in zip(present, ops):
                if o == op or o in later:
                    flags[i] = o == op
            node = {**where, "if": "$" + self.new_arg(hint + (op,), flags), op: attrs, "else": node}
        return {**({"name": xs[0]["name"]} if "name" in xs[0] else {}), **node}


PLACEHOLDER = "_arg"
USED = "\0use:"  # a path part: the template a use's arguments are passed to
ALIAS_KEY = "__aliases__"  # a template's {argument: its source constructor's name for it}, until recover returns
STRUCTURE = {"seq", "body", "shortcut", "residual", "concat", "side", "args", "else"}  # keys, not meanings


def _item_key(layer):
    """What identifies a layer among its siblings: its name, else its kind (op or structure)."""
    if isinstance(layer, str):
        return ("kind", layer)
    if not isinstance(layer, dict):
        return None
    if "name" in layer:
        return ("name", str(layer["name"]))
    if isinstance(layer.get("use"), str):
        return ("use", layer["use"])
    kind = next((k for k in layer if k in REGISTRY or k in STRUCTURE or k == "use"), None)
    return ("kind", kind) if kind else None


def _counts_differ(order: list, places: list[dict]) -> bool:
    """Whether a layer some instances lack is one of a numbered run (`denselayer3` beside
    `denselayer1`): blocks that differ in how many they repeat, not in an optional layer."""
    prefixes = Counter(m[1] for kind, name in order if kind == "name" and (m := NUMBERED.fullmatch(name)) and m[1])
    return any(kind == "name" and (m := NUMBERED.fullmatch(name)) and m[1] and prefixes[m[1]] > 1
               and any(j not in p for p in places) for j, (kind, name) in enumerate(order))


def _repeats_differ(order: list, places: list[dict]) -> bool:
    """Whether instances differ in how many uses of one template they hold (FasterNet's stages of
    2 and of 8 blocks at positions): more than one use some instances lack, beside one they all
    have. One optional use is an optional layer (MBConv's expansion conv beside its depthwise one)."""
    optional = Counter(key for j, key in enumerate(order) if key[0] == "use" and any(j not in p for p in places))
    return any(n > 1 and order.count(key) > n for key, n in optional.items())


def _embedding(short: list, long: list) -> dict | None:
    """{position in `long`: position in `short`} matching `short` as a subsequence of `long`, or
    None. Matched from the end: of alike layers, the ones left out come first (an expansion conv
    before the depthwise one)."""
    places, j = {}, len(long) - 1
    for k in range(len(short) - 1, -1, -1):
        while j >= 0 and long[j] != short[k]:
            j -= 1
        if j < 0:
            return None
        places[j] = k
        j -= 1
    return places


def readable_names(paths: dict[str, tuple], given: dict[str, str] | None = None,
                   aliases: dict[str, dict] | None = None) -> dict[str, str]:
    """placeholder -> argument name: the attribute or argument it sets (`out`, `k`, `p`) where that
    word alone tells it from the others; else the source constructor's parameter that holds it
    (`given`: `expanded_channels` beside `out_channels`), or the one the used template's source
    names the argument it passes (`aliases`: {template: {argument: parameter}}); else the word
    preceded by as many of its enclosing layers' names as tell it from the others (`fc1_out`,
    `stochastic_depth_p`); layer positions (`0`, `1`) only where names do not (`block3_out`)."""
    words = {a: _words(p) for a, p in paths.items()}
    last = Counter(w[0][-1:] for w in words.values())
    chosen = {}
    for a, p in paths.items():
        if last[words[a][0][-1:]] > 1:  # a word several arguments set: the source's name for it
            chosen[a] = (given or {}).get(a) or _alias(p, aliases or {})
    chosen = {a: n for a, n in chosen.items() if n and list(chosen.values()).count(n) == 1}
    names, taken = dict(chosen), set(TEMPLATE_INPUT_VARS) | {"i"} | set(chosen.values())
    for a, (named, full) in words.items():
        if a in chosen:
            continue
        others = [w for b, w in words.items() if b != a]  # (the named ones too: `se_out` beside `out_chs`)
        name = _shortest(named, [o[0] for o in others]) or _shortest(full, [o[1] for o in others]) or "_".join(full)
        name = re.sub(r"\W", "_", name).strip("_") or "arg"
        name = name if name[0].isalpha() else "v" + name
        base, k = name, 1
        while name in taken:
            k += 1
            name = f"{base}{k}"
        taken.add(name)
        names[a] = name
    return names


def _alias(path: tuple, aliases: dict[str, dict]) -> str | None:
    """The constructor's name of the used template's argument that `path` ends at, if any."""
    used = [str(p)[len(USED):] for p in path[-2:-1] if str(p).startswith(USED)]
    return aliases.get(used[0], {}).get(str(path[-1])) if used else None


def _words(path: tuple) -> tuple[tuple, tuple]:
    """(the path's names without positions, the path's names with positions glued to the name before)."""
    named, full = [], []
    for part in (str(p) for p in path if str(p) not in STRUCTURE and not str(p).startswith(USED)):
        if part.isdigit():
            full.append(f"{full.pop()}{part}" if full else part)
            continue
        if not named or named[-1] != part:  # a layer named as its op: `stochastic_depth: {p}` once
            named.append(part)
            full.append(part)
    return tuple(named), tuple(full)


def _shortest(words: tuple, others: list[tuple]) -> str | None:
    """The shortest tail of `words` that no other argument's words end with, joined by `_`."""
    for m in range(1, len(words) + 1):
        tail = words[-m:]
        if all(o[-m:] != tail for o in others):
            return "_".join(tail)
    return None


def _renamed(value, names: dict[str, str]):
    """`value` with every `$<placeholder>` replaced by its argument's name."""
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, str) and PLACEHOLDER in value:
        return re.sub(rf"\$({PLACEHOLDER}\d+)\b", lambda m: "$" + names[m.group(1)], value)
    return value


def _with_defaults(op: str, have: list[tuple]) -> list[tuple]:
    """(instance, attributes) of one op with the defaults filled in that other instances spell out
    (unchanged unless every instance writes a mapping)."""
    if not all(isinstance(attrs, dict) for _, attrs in have):
        return have
    fields = REGISTRY[op].Attrs.model_fields
    spelled = dict.fromkeys(k for _, attrs in have for k in attrs)  # in the order written, as the YAML is
    defaults = {k: fields[k].default for k in spelled if k in fields and not fields[k].is_required()
                and fields[k].default is not None}  # a None default is derived (a pool's stride is its kernel)
    return [(i, {**attrs, **{k: v for k, v in defaults.items() if k not in attrs}}) for i, attrs in have]


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


def _scalarish(x) -> bool:
    return not isinstance(x, (dict, list)) or (isinstance(x, list) and all(not isinstance(v, (dict, list)) for v in x))


def _simplify(args: dict[str, list], in_c: list, new_arg=None) -> tuple[dict, dict]:
    """Merge equal arguments and express integer multiples, of each other or of the instance's
    input channels `in_c` (`$in_c * 6`, `$in_c // 4`, `$in_c * $expand` with a new argument
    `expand` made by `new_arg(path, values)`): (kept args, {dropped: expression})."""
    kept, expr = {}, {}
    for name, values in args.items():
        follows = _of_channels(in_c, values)
        if follows:
            expr[name] = follows
            continue
        known = [(k, v) for k, v in kept.items()]
        match = next((k for k, v in known if _agree(v, values)), None)
        if match:
            expr[name] = f"${match}"
            _fill(kept[match], values, 1)
            continue
        factor = next(((k, f) for k, v in known if (f := _multiple(v, values))), None)
        if factor:
            expr[name] = f"${factor[0]} * {factor[1]}"
            _fill(kept[factor[0]], values, factor[1])
            continue
        inverse = next(((k, f) for k, v in known if (f := _multiple(values, v))), None)
        if inverse:  # an earlier argument is a multiple of this one (Res2Net's `out` = 4 × `width`)
            kept, expr = _follows(kept, expr, inverse, name, values)
            continue
        negated = next((k for k, v in known if _negated(v, values)), None)
        if negated:  # a slice from the end as wide as one from the start: `start: -$width`
            expr[name] = f"-${negated}"
            continue
        half = next((k for k, v in known if _half(v, values)), None)
        if half:  # a padding that keeps the size: `p: $k // 2`
            expr[name] = f"${half} // 2"
            continue
        ratios = _ratios(in_c, values) if new_arg else None
        if ratios:  # a width that is the input's times a per-instance factor (an expansion ratio)
            same = next((k for k, v in kept.items() if _agree(v, ratios) and _agree(ratios, v)), None)
            if same is None:
                same = new_arg(("expand",), ratios)
                kept[same] = ratios
            expr[name] = f"$in_c * ${same}"
            continue
        kept[name] = values
    _as_ratios(args, expr, kept)
    return kept, expr


def _follows(kept: dict, expr: dict, inverse: tuple, name: str, values: list) -> tuple[dict, dict]:
    """kept argument `inverse[0]` written `$name * factor`, `name` kept in its place."""
    old, factor = inverse
    _fill(values, kept[old], factor)
    kept = {(name if a == old else a): (values if a == old else v) for a, v in kept.items()}
    written = f"${name} * {factor}"
    expr = {a: re.sub(rf"\${old}\b", written, e) for a, e in expr.items()} | {old: written}
    return kept, expr


def _as_ratios(args: dict[str, list], expr: dict, kept: dict) -> None:
    """A width written `$in_c * 6` beside `$in_c * $expand`, where `$expand` is 6 in every instance
    that has it (an expansion conv only where the ratio is not 1), as `$in_c * $expand` too."""
    ratios = {e[len("$in_c * $"):] for e in expr.values() if e.startswith("$in_c * $")}
    for name, e in expr.items():
        factor = re.fullmatch(r"\$in_c \* (\d+)", e)
        given = [k for k, v in enumerate(args[name]) if v is not MISSING]
        same = next((r for r in ratios if factor and all(_same(kept[r][k], int(factor[1])) for k in given)), None)
        if same:
            expr[name] = f"$in_c * ${same}"


def _fill(kept: list, merged: list, factor: int) -> None:
    """Where an instance lacks the kept argument's layer but has the merged one's, the kept
    argument carries the value there: otherwise the merged `$kept * factor` would read the
    kept argument's default in that instance."""
    for i, (k, m) in enumerate(zip(kept, merged)):
        if k is MISSING and m is not MISSING:
            kept[i] = m // factor if factor != 1 else m


MAX_TERMS = 12  # the integer arguments a derived flag is searched over (pairs of comparisons: 4 * 12² terms)


def _derived_flags(kept: dict[str, list], in_c: list) -> dict[str, str]:
    """Bool arguments (a layer only some instances have) that a comparison of integer arguments
    and the input channels decides in every instance: `$s == 1 and $in_c == $out` (a shortcut
    where the shape is kept), `$width != $in_c` (an expansion conv where it widens). Each is
    dropped from `kept`; returns {argument: expression}."""
    modes = {a: _mode(v) for a, v in kept.items() if any(x is not MISSING for x in v)}
    ints = {a: [modes[a] if x is MISSING else x for x in v] for a, v in kept.items()
            if a in modes and all(type(x) is int for x in v if x is not MISSING)}
    if all(c is not MISSING for c in in_c):
        ints = {"in_c": in_c, **ints}
    names = list(ints)[:MAX_TERMS]
    terms = [(f"${a} {op} 1", [(x == 1) == (op == "==") for x in ints[a]]) for a in names for op in ("==", "!=")]
    terms += [(f"${a} {op} ${b}", [(x == y) == (op == "==") for x, y in zip(ints[a], ints[b])])
              for k, a in enumerate(names) for b in names[k + 1:] for op in ("==", "!=")]
    out = {}
    for flag, values in list(kept.items()):
        if flag in ints or not values or not all(type(x) is bool for x in values if x is not MISSING):
            continue
        want = [(k, x) for k, x in enumerate(values) if x is not MISSING]
        found = next((t for t, got in terms if all(got[k] == x for k, x in want)), None)
        found = found or next((f"{t} and {t2}" for t, got in terms for t2, got2 in terms
                               if all((got[k] and got2[k]) == x for k, x in want)), None)
        if found:
            out[flag] = found
            del kept[flag]
    return out


def _of_channels(in_c: list, values: list) -> str | None:
    """`$in_c`, `$in_c * f` or `$in_c // f` where that gives every one of `values` (ints), or None."""
    pairs = [(c, v) for c, v in zip(in_c, values) if v is not MISSING]
    if not pairs or any(c is MISSING or type(v) is not int or v <= 0 for c, v in pairs) or len(pairs) < 2:
        return None
    c0, v0 = pairs[0]
    if all(v == c for c, v in pairs):
        return "$in_c"
    if v0 % c0 == 0 and all(v == c * (v0 // c0) for c, v in pairs):
        return f"$in_c * {v0 // c0}"
    if v0 < c0 and all(v == c // (c0 // v0) for c, v in pairs):
        return f"$in_c // {c0 // v0}"
    return None


def _ratios(in_c: list, values: list) -> list | None:
    """values / in_c per instance where every given value is a multiple of its instance's input
    channels (at least two different factors), else None."""
    pairs = [(c, v) for c, v in zip(in_c, values) if v is not MISSING]
    if len(pairs) < 2 or any(c is MISSING or type(v) is not int or v <= 0 or v % c for c, v in pairs):
        return None
    out = [MISSING if v is MISSING else v // c for c, v in zip(in_c, values)]
    return out if len({r for r in out if r is not MISSING}) > 1 else None


def _half(a: list, b: list) -> bool:
    """Whether b is a // 2 wherever b is given (and a with it), for some a above 1."""
    if any(y is not MISSING and x is MISSING for x, y in zip(a, b)):
        return False
    pairs = [(x, y) for x, y in zip(a, b) if y is not MISSING]
    return (bool(pairs) and all(type(x) is int and type(y) is int and y == x // 2 for x, y in pairs)
            and any(x > 1 for x, _ in pairs))


def _negated(a: list, b: list) -> bool:
    """Whether b is -a wherever both are given (nonzero ints)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not MISSING and y is not MISSING]
    return bool(pairs) and all(type(x) is int and type(y) is int and x and y == -x for x, y in pairs)


def _divides(values: list, factor: int) -> bool:
    return all(v is MISSING or type(v) is int and v % factor == 0 for v in values)


def _agree(a: list, b: list) -> bool:
    pairs = [(x, y) for x, y in zip(a, b) if x is not MISSING and y is not MISSING]
    return bool(pairs) and all(_same(x, y) for x, y in pairs)


def _multiple(a: list, b: list):
    pairs = [(x, y) for x, y in zip(a, b) if x is not MISSING and y is not MISSING]
    if not pairs or not all(type(x) is int and type(y) is int and x > 0 for x, y in pairs):
        return None
    f = pairs[0][1] // pairs[0][0]
    return f if f > 1 and all(y == x * f for x, y in pairs) and _divides(b, f) else None


def _substitute(value, expr: dict):
    if isinstance(value, dict):
        return {k: _substitute(v, expr) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, expr) for v in value]
    if isinstance(value, str) and value.startswith("$") and value[1:] in expr:
        return expr[value[1:]]
    if isinstance(value, str) and "{$" in value:  # a name pattern: `"c1x1_w_s{$n}"`
        return re.sub(r"\{\$(\w+)\}", lambda m: "{" + expr[m[1]] + "}" if m[1] in expr else m[0], value)
    return value


def _mode(values: list):
    """The most common value, the first of several as common; of floats as common, the one
    written shortest (0.1 rather than 0.07500000000000001)."""
    real = [v for v in values if v is not MISSING]
    counts = Counter(repr(v) for v in real)
    top = max(counts.values())
    tied = [r for r, n in counts.items() if n == top]
    floats = all(type(v) is float for v in real)
    best = min(tied, key=len) if floats else tied[0]
    return next(v for v in real if repr(v) == best)


def _instances(layers, found: dict, height: dict) -> int:
    """Collect typed blocks by class; returns the nesting height of `layers`."""
    h = 0
    items = layers if isinstance(layers, list) else [layers]
    for item in items:
        if isinstance(item, dict):
            inner = max([_instances(v, found, height) for k, v in item.items() if isinstance(v, (dict, list))] or [0])
            if item.get(TYPE_KEY) and "seq" in item:
                found.setdefault(item[TYPE_KEY], []).append(item)
                height[item[TYPE_KEY]] = max(height.get(item[TYPE_KEY], 0), inner + 1)
                inner += 1
            h = max(h, inner)
        elif isinstance(item, list):
            h = max(h, _instances(item, found, height))
    return h


def _template_name(cls: str, taken: set) -> str:
    base = re.sub(r"\W", "_", cls).lstrip("_") or "Block"  # torchvision's private `_DenseLayer`
    base = base if base[0].isalpha() else "T" + base
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}{k}"
    return name


def recover(layers: list, root=None, made: dict | None = None) -> tuple[dict, list]:
    """(templates, layers) with repeated classes templated and runs repeated; `made`: {module
    path: the arguments its constructor took} (`signature.by_path`), which name the templates'."""
    found, height = {}, {}
    _instances(layers, found, height)
    templates: dict[str, dict] = {}
    for cls in sorted(found, key=lambda c: height[c]):
        if cls in ("Sequential", "ModuleList", "ModuleDict"):
            continue
        variants: list[str] = []  # the templates of this class so far: a variant is named by what it adds
        for group in _variants(found[cls], templates):
            variants += _template(cls, group, templates, variants, made or {})
    strip(layers, free=False)  # FREE_KEY marks what `_repeats` may set to anything
    _repeats(layers, templates)
    _positional(layers, templates)  # after: a seq of uses named 0..n-1 is a repeat, the template no module
    _stage_runs(layers, templates)
    strip(layers)
    for t in templates.values():
        del t[ALIAS_KEY]
        strip(t["body"], free=False)
        _at_defaults(t["body"], templates)
        _repeats(t["body"], templates)
        _positional(t["body"], templates)
        _stage_runs(t["body"], templates)
        strip(t["body"])
    return templates, layers


def _at_defaults(value, templates: dict) -> None:
    """Leave out the arguments a use inside a template body gives at the used template's default
    (the unifier spells every argument out)."""
    if isinstance(value, list):
        for v in value:
            _at_defaults(v, templates)
    elif isinstance(value, dict):
        for v in value.values():
            _at_defaults(v, templates)
        defaults = templates.get(value.get("use"), {}).get("args") if isinstance(value.get("use"), str) else None
        if defaults and isinstance(value.get("args"), dict):
            value["args"] = {k: v for k, v in value["args"].items() if not _same(v, defaults.get(k, MISSING))}
            if not value["args"]:
                del value["args"]


def _reads_input(value):
    """A block's layers with references to the block's input written `from: input` (a template's
    input), down to but not into nested blocks: a nested block's own `from:` is the block's
    (ResNet's strided downsample reads it), the references inside it are the nested block's."""
    if isinstance(value, list):
        for v in value:
            _reads_input(v)
    elif isinstance(value, dict):
        positions = value.pop(INPUT_KEY, ())
        if positions:
            refs = value["from"] if isinstance(value["from"], list) else [value["from"]]
            refs = ["input" if k in positions else r for k, r in enumerate(refs)]
            value["from"] = refs if len(refs) > 1 else refs[0]
        if TYPE_KEY not in value:
            for v in value.values():
                _reads_input(v)
    return value


def _unified(group: list, templates: dict):
    """(Unifier, template body) of instances `group`; _Mismatch where they differ in structure."""
    u = Unifier(len(group), templates)
    bodies = [_positional(_reads_input(copy.deepcopy(g["seq"])), templates) for g in group]
    if _reads_input_size(bodies):  # sizes of the network input's, as the instance's input's inside a template
        bodies = [local_size.localised(b, g.get(IN_GRID_KEY)) for b, g in zip(bodies, group)]
        if any(b is None for b in bodies):
            raise _Mismatch
    if len({_opens_with_residual(b) for b in bodies}) > 1:
        bodies = [_unrolled(b) for b in bodies]
    return u, u.unify(bodies, list(range(len(group))), ())


def _positional(value, templates: dict):
    """`value` without the names that are positions (`0`, `1`, … of an nn.Sequential): a layer
    with a module takes its position by itself (a template's use once the template is a module),
    so the layers of instances with and without an optional one (an expansion conv) align. Only
    where every item is a module of its own: an unnamed structure would be transparent."""
    if isinstance(value, dict):
        for v in value.values():
            _positional(v, templates)
    elif isinstance(value, list):
        for v in value:
            _positional(v, templates)
        if value and all(isinstance(v, dict) and v.get("name") == str(k) and _own_module(v, templates)
                         for k, v in enumerate(value)):
            for v in value:
                del v["name"]
                if "use" in v and not templates[v["use"]].get("module"):
                    templates[v["use"]] = {"module": True, **templates[v["use"]]}
    return value


def _own_module(layer: dict, templates: dict) -> bool:
    """Whether an unnamed `layer` takes a position: an op with one input, or a use of a template."""
    kinds = [k for k in layer if k in REGISTRY or k == "use"]
    if len(kinds) != 1 or set(layer) - {"name", kinds[0], "args", "if", FREE_KEY, TYPE_KEY, *ENTRY_KEYS}:
        return False
    if kinds[0] == "identity":  # a placeholder `drop_placeholders` removes: the others keep their names
        return False
    return REGISTRY[kinds[0]].max_inputs == 1 if kinds[0] in REGISTRY else layer["use"] in templates


def _opens_with_residual(body: list) -> bool:
    return bool(body) and isinstance(body[0], dict) and set(body[0]) == {"residual"}


def _unrolled(body: list) -> list:
    """A block that opens with an identity-shortcut residual written as its body and an `add` of
    the block's input, so that it unifies with blocks of its class that have no shortcut
    (torchvision's MBConv: a residual only where the shape is kept)."""
    if not _opens_with_residual(body) or set(body[0]["residual"]) != {"body"}:
        return body
    inner = body[0]["residual"]["body"]
    inner = inner if isinstance(inner, list) else [inner]
    last = inner[-1] if inner else None
    if not (isinstance(last, dict) and "name" in last and "from" not in last):
        return body
    return [*inner, {"add": {}, "from": [last["name"], "input"]}, *body[1:]]


def _variants(group: list, templates: dict) -> list[list]:
    """The instances of one class as groups to template: all of them where they unify, else one
    group per layout (MobileNet's InvertedResidual with and without its expansion conv, which
    shifts the positional names of the layers after it)."""
    try:
        _unified(group, templates)
        return [group]
    except _Mismatch:
        pass
    by_layout: dict[str, list] = {}
    for g in group:
        by_layout.setdefault(repr(_layout(_reads_input(copy.deepcopy(g["seq"])))), []).append(g)
    merged: list[list] = []  # layouts that unify with each other (with and without a shortcut)
    for layout in by_layout.values():
        for m in merged:
            try:
                _unified(m + layout, templates)
            except _Mismatch:
                continue
            m.extend(layout)
            break
        else:
            merged.append(list(layout))
    return merged


def _layout(value):
    """A value's structure: keys, names and list lengths, without the scalars that may differ."""
    if isinstance(value, dict):
        return tuple((k, v if k in ("name", "from") else _layout(v)) for k, v in value.items()
                     if k not in (TYPE_KEY, "args", FREE_KEY, *ENTRY_KEYS, PATH_KEY))  # a template's arguments are values, not structure
    if isinstance(value, list):
        return tuple(_layout(v) for v in value)
    return None


def _template(cls: str, group: list, templates: dict, made: list[str], ctor: dict) -> list[str]:
    """`group` (instances of `cls`) as uses of a new template, where they unify; [its name] or [].
    `ctor`: {module path: its constructor's arguments}, which name the template's arguments."""
    if len(group) < 2:
        return []
    try:
        u, body = _unified(group, templates)
    except _Mismatch:
        return []
    in_c = [g.get(IN_C_KEY, MISSING) for g in group]
    kept, expr = _simplify(u.ordered_args(), in_c, u.new_arg)
    derived = _derived_flags(kept, in_c)
    expr = {a: derived.get(e[1:], e) for a, e in expr.items()} | derived  # (a flag merged into a derived one)
    given = signature.names(kept, [ctor.get(g.get(PATH_KEY), {}) for g in group], MISSING)
    aliases = {t: v.get(ALIAS_KEY, {}) for t, v in templates.items()}
    names = readable_names({a: u.paths[a] for a in kept}, given, aliases)  # named once merged: fewer to tell apart
    body = _renamed(_substitute(body, expr), names)
    kept = {names[a]: v for a, v in kept.items()}
    name = _template_name(cls + _variant_word(body, [templates[t]["body"] for t in made]), set(templates))
    untyped = {a for a, v in kept.items() if _untyped(v)}
    defaults = {a: "any" if a in untyped else _mode(v) for a, v in kept.items()}
    templates[name] = {"args": defaults, "body": body} if defaults else {"body": body}
    templates[name][ALIAS_KEY] = {names[a]: p for a, p in given.items()}
    for k, g in enumerate(group):
        args = {a: v[k] for a, v in kept.items()
                if v[k] is not MISSING and (a in untyped or not _same(v[k], defaults[a]))}
        args |= {a: _mode(kept[a]) for a in untyped if kept[a][k] is MISSING}  # a required argument takes any value
        free = [a for a, v in kept.items() if v[k] is MISSING and a not in untyped]
        own = g.get("name")  # a side head's seq has none (its layer has)
        output = {"output": g["output"]} if "output" in g else {}
        reads = {k: g[k] for k in ("from", INPUT_KEY) if k in g}  # a block that reads another value than the last
        g.clear()
        g.update({**({"name": own} if own is not None else {}), **reads, "use": name, **({"args": args} if args else {}),
                  **output, **({FREE_KEY: free} if free else {})})
    return [name]


def _untyped(values: list) -> bool:
    """Whether an argument's values differ in type (conv `p: 1` and `p: tf_same`) or its default would
    read as a type name: a default types an argument, so it is declared `any`, required of every use."""
    kinds = {bool if type(v) is bool else (float if isinstance(v, (int, float)) else type(v))
             for v in values if v is not MISSING and not (isinstance(v, str) and is_expr(v))}
    return len(kinds) > 1 or any(isinstance(v, str) and v in TYPE_NAMES for v in values)


def _variant_word(body: list, others: list[list]) -> str:
    """`_<layer>` for a variant of a class that has a named layer the class's other templates lack
    (timm's DualPathBlock with its strided projection `c1x1_w_s2`), else '' (then it is numbered)."""
    if not others:
        return ""
    theirs = {layer.get("name") for other in others for layer in other if isinstance(layer, dict)}
    extra = [layer["name"] for layer in body if isinstance(layer, dict) and isinstance(layer.get("name"), str)
             and layer["name"] not in theirs and not layer["name"].isdigit()]
    return f"_{extra[0]}" if extra else ""


def _reads_input_size(value) -> bool:
    """Whether a layer computes a size from the network input's (`$in_h`): inside a template,
    `$in_h` is the instance's input's height instead."""
    if isinstance(value, dict):
        return any(_reads_input_size(v) for v in value.values())
    if isinstance(value, list):
        return any(_reads_input_size(v) for v in value)
    return isinstance(value, str) and any(f"${v}" in value for v in TEMPLATE_INPUT_VARS)


def drop_placeholders(spec: dict) -> None:
    """Remove the `identity` layers that a source's placeholder modules leave (timm's
    `nn.Identity()` where an option is off: `se`, `aa`, `drop_path`): a layer that is an identity
    and nothing else, among other layers, that no `from:` could name. An identity that is an
    alternative of a layer (`if:`/`else:`), a branch on its own or an output stays."""
    refs: list[str] = []
    _from_refs(spec, refs)
    _drop_identities(spec.get("templates", {}), " ".join(refs))
    _drop_identities(spec["layers"], " ".join(refs))


def _from_refs(value, refs: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "from":
                refs.extend(v if isinstance(v, list) else [v])
            else:
                _from_refs(v, refs)
    elif isinstance(value, list):
        for v in value:
            _from_refs(v, refs)


def _placeholder(layer, refs: str) -> bool:
    if layer == "identity":
        return True
    return (isinstance(layer, dict) and set(layer) == {"name", "identity"} and not layer["identity"]
            and str(layer["name"]) not in refs)


def _drop_identities(value, refs: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "from":  # a reference to a layer named `identity` (MobileOne's BN branch) is no layer
                _drop_identities(v, refs)
    elif isinstance(value, list):
        kept = [v for v in value if not _placeholder(v, refs)]
        if kept and len(kept) < len(value) and all(isinstance(v, (dict, str)) for v in value):
            value[:] = kept
        for v in value:
            _drop_identities(v, refs)


MAX_TOTAL = 1000  # the block counts a per-block rate is searched over


def progression(values: list, offset: int = 0) -> str | None:
    """An expression of the iteration `$i` that gives each of `values` bit for bit, where a
    source computes a per-block rate as `rate * block_index / total_blocks` (torchvision's and
    timm's stochastic depth: 0.07500000000000001 is `0.2 * ($i + 6) / 16` at $i = 0); None where
    the values are no such progression; `offset` is the iteration of values[0]."""
    if len(values) < 2 or not all(type(v) is float for v in values) or values[1] == values[0]:
        return None
    step, found = values[1] - values[0], []
    for total in range(1, MAX_TOTAL + 1):
        rate = float(f"{step * total:.6g}")  # the rate as the source writes it: a short decimal
        first = round(values[0] * total / rate) if rate else -1
        if first >= offset and all(rate * (first + k) / total == v for k, v in enumerate(values)):
            found.append((len(repr(rate)), total, rate, first))
    if not found:
        return None
    _, total, rate, first = min(found)  # the rate written shortest (0.2 rather than 0.0125)
    first -= offset
    index = f"($i + {first})" if first else "$i"
    return f"{rate!r} * {index}" + (f" / {total}" if total > 1 else "")


def compact(value, layers: bool = True) -> None:
    """Shortest spellings of what the recovery leaves: a concat branch of one layer is that layer,
    an op layer with nothing but its default attributes is the op's name (`identity`), a run of
    op layers that repeats is written once under `repeat:` (`runs.fold`) where `value` is a list
    of layers (`layers`: not a concat's branches)."""
    if isinstance(value, dict):
        if isinstance(value.get("concat"), list):
            value["concat"] = [b[0] if isinstance(b, list) and len(b) == 1 else b for b in value["concat"]]
        for key, v in value.items():
            compact(v, layers=key in ("seq", "body", "shortcut", "then", "else", "side"))
    elif isinstance(value, list):
        for k, v in enumerate(value):
            compact(v)
            if isinstance(v, dict) and len(v) == 1 and next(iter(v)) in REGISTRY and v[next(iter(v))] == {}:
                value[k] = next(iter(v))
        if layers:
            runs.fold(value)


def strip(value, free: bool = True):
    """Remove the importer's bookkeeping keys (and FREE_KEY with `free`) from every layer."""
    drop_keys(value, (TYPE_KEY, INPUT_KEY, *ENTRY_KEYS, PATH_KEY) + ((FREE_KEY,) if free else ()))


NUMBERED = re.compile(r"(.*?)(0|[1-9][0-9]*)")
SHORT = 96  # a layer written on one line (yamlout.WIDTH less an indent)


def _repeats(value, templates: dict):
    """Runs of uses of one template -> repeat: a named seq whose items are named 0..n-1 becomes the
    repeat (`layer1: repeat: 3`); a run of siblings named `prefix<k>`, `prefix<k+1>`, … becomes a
    repeat named by the pattern (`"denselayer{$i + 1}"`), whose iterations sit in the enclosing scope."""
    if isinstance(value, list):
        for v in value:
            _repeats(v, templates)
        _pattern_runs(value, templates)
        return
    if not isinstance(value, dict):
        return
    for v in value.values():
        _repeats(v, templates)
    items = value.get("seq")
    if not isinstance(items, list) or len(items) < 2 or "name" not in value or "output" in value:
        return  # (a repeat's `output:` would name each iteration's result)
    positional = (all(isinstance(it, dict) and "name" not in it for it in items)  # (a layer may be a bare op name)
                  and templates.get(items[0].get("use"), {}).get("module"))
    if not (_same_use(items) and (positional or all(it.get("name") == str(k) for k, it in enumerate(items)))):
        return
    out = {"name": value["name"], **({"from": value["from"]} if "from" in value else {}),
           **_repeat_of(items, templates)}
    value.clear()
    value.update(out)


def _same_use(items: list) -> bool:
    return all(isinstance(it, dict) and isinstance(it.get("use"), str) and it.get("use") == items[0].get("use")
               and set(it) <= {"name", "use", "args", FREE_KEY} for it in items)


def _pattern_runs(layers: list, templates: dict) -> None:
    """Runs of at least two uses of one template named `prefix<k>`, `prefix<k+1>`, … in `layers`
    as one repeat named `"prefix{$i + k}"`."""
    k = 0
    while k < len(layers):
        end = k
        first = _numbered(layers[k])
        while first and end < len(layers) and _numbered(layers[end]) == (first[0], first[1] + end - k) \
                and _same_use(layers[k:end + 1]):
            end += 1
        if end - k >= 2 and all(_alike(v, layers[k + 1]) for v in layers[k + 2:end]):
            prefix, start = first
            index = f"$i + {start}" if start else "$i"
            run = {"name": f"{prefix}{{{index}}}", **_repeat_of(layers[k:end], templates)}
            if len(flow(run)) <= SHORT or end - k > 5:  # else written out it is as short
                layers[k:end] = [run]
        k += 1


def _stage_runs(value, templates: dict) -> None:
    """Runs of unnamed uses of one module template (an nn.Sequential's blocks, at positions) as
    unnamed repeats, whose iterations take the next positions: a run is a first use and the uses
    after it that agree with each other but for float rates (a stage: its first block strides)."""
    if isinstance(value, dict):
        for v in value.values():
            _stage_runs(v, templates)
        return
    if not isinstance(value, list):
        return
    for v in value:
        _stage_runs(v, templates)
    k = 0
    while k < len(value):
        end = k
        while end < len(value) and _positional_use(value[end], templates) and value[end]["use"] == value[k]["use"]:
            end += 1
        if end - k < 2:
            k += 1
            continue
        value[k:end] = _stages(value[k:end], templates)
        k += 1


def _stages(uses: list, templates: dict) -> list:
    """Uses of one template cut into stages (a first use, then uses alike) written in the fewest
    lines; of as many, the cut whose first uses differ least from the rest."""
    best = [(0, [])] + [None] * len(uses)  # best[i]: (cost, layers) of uses[:i]
    for j in range(len(uses)):
        for i in range(j + 1, len(uses) + 1):
            if i - j > 2 and not _alike(uses[i - 1], uses[j + 1]):
                break
            layer = uses[j] if i - j == 1 else _repeat_of(uses[j:i], templates)
            lines = 1 if len(flow(layer)) <= SHORT else len(layer) + 1
            cost = best[j][0] + 1000 * lines + (_differing(uses[j], uses[j + 1]) if i - j > 1 else 0)
            if best[i] is None or cost < best[i][0]:
                best[i] = (cost, [*best[j][1], layer])
    return best[-1][1]


def _differing(a: dict, b: dict) -> int:
    x, y = a.get("args", {}), b.get("args", {})
    return sum(1 for k in set(x) | set(y) if not _same(x.get(k, MISSING), y.get(k, MISSING)))


def _positional_use(layer, templates: dict) -> bool:
    return (isinstance(layer, dict) and isinstance(layer.get("use"), str) and "name" not in layer
            and set(layer) <= {"use", "args", FREE_KEY} and bool(templates.get(layer["use"], {}).get("module")))


def _alike(a: dict, b: dict) -> bool:
    """Uses with the same arguments but for float ones (a per-block rate `_repeat_of` writes as `$i`)."""
    x, y = a.get("args", {}), b.get("args", {})
    return set(x) == set(y) and all(type(x[k]) is float or _same(x[k], y[k]) for k in x)


def _numbered(layer):
    """(prefix, number) of a layer named `prefix<number>` with a non-empty prefix, else None."""
    name = layer.get("name") if isinstance(layer, dict) else None
    match = NUMBERED.fullmatch(name) if isinstance(name, str) else None
    return (match[1], int(match[2])) if match and match[1] else None


def _repeat_of(items: list, templates: dict) -> dict:
    """`repeat`, `use` and the arguments (common, per-iteration `$i` rates, `first:`, `at:`) of
    uses `items` of one template; an argument an item does not use (FREE_KEY) takes any value."""
    defaults = templates[items[0]["use"]].get("args", {})
    keys = dict.fromkeys(k for it in items for k in [*it.get("args", {}), *it.get(FREE_KEY, ())])
    every = {key: [MISSING if key in it.get(FREE_KEY, ()) else it.get("args", {}).get(key, defaults.get(key))
                   for it in items] for key in keys}
    rates = {key: e for key, values in every.items() if (e := _rate(values)) is not None}
    keys = [key for key in every if key not in rates and any(v is not MISSING for v in every[key])]
    base = {key: _mode(every[key][1:] if any(v is not MISSING for v in every[key][1:]) else every[key])
            for key in keys}
    out = {"repeat": len(items), "use": items[0]["use"]}
    common = {k: v for k, v in base.items() if not _same(v, defaults.get(k, MISSING))} | rates
    if common:
        out["args"] = common
    for k in range(len(items)):
        diff = {key: every[key][k] for key in keys
                if every[key][k] is not MISSING and not _same(every[key][k], base[key])}
        if diff and k == 0:
            out["first"] = diff
        elif diff:
            out.setdefault("at", {})[k] = diff
    return out


def _rate(values: list) -> str | None:
    """`progression` of the values, where those an iteration does not use (MISSING) lead."""
    skip = next((k for k, v in enumerate(values) if v is not MISSING), len(values))
    if any(v is MISSING for v in values[skip:]):
        return None
    return progression(values[skip:], skip)
