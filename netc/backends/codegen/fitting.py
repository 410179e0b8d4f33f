"""Expressions and holes for the code generator.

A generated constructor value starts as a *hole*: the value one instance needs plus candidate
expressions in spec names (`planes * 4`, `__netc_in`, the input channels). The generator keeps
a candidate only where it evaluates to the value of every instance of a class. Everything
here works on spec-space expression text (`$` dropped) and re-prints it from its parsed AST,
so emitted code holds only names the caller maps and constants printed by `repr`. `influences`
finds which op attributes feed which constructor value by probing the op's `module()` facet.
"""
from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from netc.errors import NetcError
from netc.expr import Evaluator

IN = "__netc_in"  # the input channel count of a class, in spec-name space
IN_C = re.compile(r"\$in_c\b")
PY_FUNCS = {"min": "min", "max": "max", "abs": "abs", "int": "int", "float": "float", "round": "round",
            "ceil": "math.ceil", "floor": "math.floor"}
OMIT = "\x01"
HOLE = re.compile("\x00(\\d+)\x00")
NOTHING = object()


# --- values and expressions ------------------------------------------------------------------

def norm(v):
    """A comparable form of a constructor value: equal pairs collapse (torch accepts both)."""
    if isinstance(v, (list, tuple)):
        items = tuple(norm(x) for x in v)
        if len(items) == 2 and items[0] == items[1] and type(items[0]) is int:
            return items[0]
        return items
    if hasattr(v, "items"):
        return tuple(sorted((k, norm(x)) for k, x in v.items()))
    return v


def same(a, b) -> bool:
    return type(a) is type(b) and a == b


def literal(v) -> str:
    return repr(list(v) if isinstance(v, list) else v)


@lru_cache(maxsize=4096)
def parse(text: str):
    try:
        # a template's `$in_c` is the input channel count of its class, like every other channel input
        tree = ast.parse(IN_C.sub(IN, text).replace("$", ""), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None
    return tree


def names_in(text: str) -> list[str]:
    """The variables an expression reads (not the functions it calls)."""
    tree = parse(text)
    nodes = list(ast.walk(tree)) if tree else []
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    out = []
    for n in nodes:
        if isinstance(n, ast.Name) and id(n) not in called and n.id not in out and n.id not in ("True", "False", "None"):
            out.append(n.id)
    return out


def evaluate(text: str, env: dict):
    tree = parse(text)
    if tree is None or any(isinstance(n, ast.Call) and getattr(n.func, "id", None) not in PY_FUNCS
                           for n in ast.walk(tree)):
        return NOTHING
    try:
        return norm(Evaluator(text, env, None)(tree))
    except (NetcError, TypeError, ValueError, ArithmeticError, RecursionError):
        return NOTHING


def pick(cands: list[str], value, env: dict) -> str | None:
    for c in cands:
        if same(evaluate(c, env), value):
            return c
    return None


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping):
        self.mapping = mapping

    def visit_Name(self, node):
        if node.id in ("True", "False", "None"):
            return node
        return ast.copy_location(ast.Name(self.mapping[node.id], ast.Load()), node)

    def visit_Call(self, node):
        node.args = [self.visit(a) for a in node.args]
        name = PY_FUNCS[node.func.id]  # evaluate() admits no other calls
        node.func = (ast.Attribute(ast.Name("math", ast.Load()), name[5:], ast.Load()) if name.startswith("math.")
                     else ast.Name(name, ast.Load()))
        return node

    def visit_Compare(self, node):
        self.generic_visit(node)
        if any(isinstance(c, ast.Constant) and c.value is None for c in [node.left, *node.comparators]):
            # `p == None` -> `p is None`: the same test, as Python style writes it
            node.ops = [ast.Is() if isinstance(o, ast.Eq) else ast.IsNot() if isinstance(o, ast.NotEq) else o
                        for o in node.ops]
        return node

    def visit_Constant(self, node):
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise ValueError("constant")
        return node


def substitute(text: str, args: dict[str, str]) -> str:
    """Replace names in a spec-space expression by other expressions (precedence kept)."""
    tree = parse(text)

    class Sub(ast.NodeTransformer):
        def visit_Name(self, node):
            if node.id in args:
                return parse(args[node.id]).body
            return node

    return collect_terms(ast.unparse(Sub().visit(ast.parse(ast.unparse(tree), mode="eval"))))


def collect_terms(text: str) -> str:
    """A sum with a term written several times, with its copies counted: a chain of channel
    counts `c + g + g + g` reads `c + 3 * g` (DenseNet). Anything else is returned unchanged."""
    tree = parse(text)
    if tree is None:
        return text
    terms: list[tuple[int, ast.expr]] = []

    def flatten(node, sign):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            flatten(node.left, sign)
            flatten(node.right, sign if isinstance(node.op, ast.Add) else -sign)
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and isinstance(node.left, ast.Constant)
              and type(node.left.value) is int):
            terms.append((sign * node.left.value, node.right))
        else:
            terms.append((sign, node))

    flatten(tree.body, 1)
    counts: dict[str, list] = {}
    for coef, node in terms:
        key = "1" if isinstance(node, ast.Constant) else ast.dump(node)
        if key == "1":
            coef, node = coef * node.value, ast.Constant(1)
        entry = counts.setdefault(key, [0, node, 0])
        entry[0] += coef
        entry[2] += 1
    if len(counts) == len(terms) or not all(type(getattr(n, "value", 0)) is int for _, n in terms
                                            if isinstance(n, ast.Constant)):
        return text
    out = []
    for coef, node, _ in counts.values():
        if coef == 0:
            continue
        body = ast.unparse(node)
        if isinstance(node, ast.BinOp) and abs(coef) != 1:
            body = f"({body})"
        word = str(abs(coef)) if body == "1" else body if abs(coef) == 1 else f"{abs(coef)} * {body}"
        out.append(("- " if coef < 0 else "+ ") + word)
    if not out:
        return "0"
    joined = " ".join(out)
    return joined[2:] if joined.startswith("+ ") else "-" + joined[2:]


def py_expr(text: str, mapping: dict[str, str]) -> str:
    """A spec-space expression as Python source: names mapped to identifiers, re-printed."""
    tree = ast.parse(ast.unparse(parse(text)), mode="eval")  # a fresh tree to rename
    return ast.unparse(_Rename(mapping).visit(tree))


def _perturb(v):
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        return [v + 1]
    if isinstance(v, float):
        return [v + 0.5]
    if isinstance(v, list) and all(type(x) is int for x in v):
        return [[x + 1 for x in v]]
    return []


def _positions(ms) -> dict:
    return {**{i: norm(v) for i, v in enumerate(ms.args)}, **{k: norm(v) for k, v in ms.kwargs.items()}}


def influences(op, attrs, shapes, ms, axis: int = 0) -> dict:
    """Constructor position -> the attributes (and IN, the input channels: the input's axis
    `axis`, which a permute may have moved from 0) it depends on.

    A keyword the facet leaves out here because its value is torch's default (`groups=1`) but
    writes once an attribute changes is a position too: its value then comes from a spec
    expression (`groups: $groups`) that other parameter values make matter."""
    base = _positions(ms)
    out: dict = {}
    probes = [(f, {f: pv}, shapes) for f in type(attrs).model_fields for pv in _perturb(getattr(attrs, f))]
    if shapes and shapes[0]:
        grown = tuple(n + (k == axis) for k, n in enumerate(shapes[0]))
        probes.append((IN, {}, [grown, *shapes[1:]]))
    for src, update, sh in probes:
        try:
            changed = _positions(op.module(attrs.model_copy(update=update), sh))
        except Exception:  # a probe the facet rejects tells nothing
            continue
        for pos in {**base, **changed}:  # a keyword may appear or disappear (`bias=False`)
            if pos not in base or pos not in changed or not same(base[pos], changed[pos]):
                out.setdefault(pos, []).append(src)
    return out


@lru_cache(maxsize=None)
def class_parameters(path: str) -> tuple[str, ...]:
    """A module class's constructor parameters in signature order."""
    return tuple(_signature(path))


@lru_cache(maxsize=None)
def class_defaults(path: str) -> dict:
    """Keyword defaults of a module class's constructor (to leave them out of the call)."""
    return {k: p.default for k, p in _signature(path).items() if p.default is not inspect.Parameter.empty}


def _signature(path: str):
    import importlib

    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return inspect.signature(cls.__init__).parameters


def spec_exprs(value) -> list[str]:
    """Expression strings in a raw YAML value (top level of a mapping), `$` dropped."""
    out = []
    items = value.values() if isinstance(value, dict) else [value]
    for v in items:
        if isinstance(v, str) and "$" in v and parse(v) is not None:
            out.append(ast.unparse(parse(v)))
    return out


# --- holes ---------------------------------------------------------------------------------

@dataclass
class Hole:
    value: Any
    cands: list[str]
    kwarg: str | None = None  # a keyword argument, omitted when it equals its default
    default: Any = NOTHING
    prefer_literal: bool = False


@dataclass
class Frag:
    """Source text with hole placeholders `\\x00n\\x00` numbered locally."""

    text: str
    holes: list[Hole] = field(default_factory=list)

    def key(self):
        return (self.text, tuple((repr(h.value), tuple(h.cands), h.kwarg) for h in self.holes))


class Draft:
    def __init__(self, env: dict):
        self.env = env
        self.holes: list[Hole] = []

    def add(self, frag: Frag) -> str:
        base = len(self.holes)
        self.holes.extend(frag.holes)
        return HOLE.sub(lambda m: f"\x00{int(m.group(1)) + base}\x00", frag.text)


def hole(value, cands=(), kwarg=None, default=NOTHING) -> Frag:
    return Frag("\x00" + "0" + "\x00", [Hole(norm(value), list(cands), kwarg, default)])


def join_frags(parts: list[Frag | str], sep: str = ", ") -> Frag:
    text, holes = [], []
    for p in parts:
        if isinstance(p, str):
            text.append(p)
            continue
        base = len(holes)
        holes.extend(p.holes)
        text.append(HOLE.sub(lambda m, base=base: f"\x00{int(m.group(1)) + base}\x00", p.text))
    return Frag(sep.join(text), holes)


def call_frag(callee: str, args: list[Frag]) -> Frag:
    inner = join_frags(args)
    return Frag(f"{callee}({inner.text})", inner.holes)


def union_order(seqs: list[list]) -> list:
    """All keys of several sequences, each after its predecessor in the sequence it came from."""
    out = list(max(seqs, key=len))
    for seq in seqs:
        prev = None
        for k in seq:
            if k not in out:
                out.insert(out.index(prev) + 1 if prev is not None else 0, k)
            prev = k
    return out


# --- fitting the holes of a class ----------------------------------------------------------

def fit_holes(members, decl: dict) -> tuple[list, list[str], list]:
    """Each hole of a class's instances written once for all of them.

    `members` are the instances (`env`, `holes`; a hole is None where an instance lacks an
    optional module), `decl` the template's declared arguments. A hole becomes the first
    candidate expression that gives every instance its value (`("expr", text, hole)`), else the
    literal they share (`("lit", value, hole)`), else a template argument equal to it on every
    instance, else an explicit constructor argument (`("param", "arg0", hole)`). Returns
    (texts, the names the expressions read, [(argument, its value per instance)])."""
    texts: list = []
    used: list[str] = []
    extra: list[tuple[str, list]] = []
    for j in range(len(members[0].holes)):
        have = [(m.env, m.holes[j]) for m in members if m.holes[j] is not None]
        values = [h.value for _, h in have]
        cands = list(dict.fromkeys(c for _, h in have for c in h.cands))
        chosen = next((c for c in cands if all(same(evaluate(c, env), h.value) for env, h in have)), None)
        h0 = have[0][1]
        if chosen is not None:
            for nm in names_in(chosen):
                if nm not in used:
                    used.append(nm)
            texts.append(("expr", chosen, h0))
        elif all(same(v, values[0]) for v in values):
            texts.append(("lit", values[0], h0))
        else:
            # values differ and no expression of the spec explains them: a template argument
            # that does (checked on every instance), else an explicit constructor argument
            arg = next((a for a in decl if all(same(env.get(a, NOTHING), h.value) for env, h in have)), None)
            vector = [m.holes[j].value if m.holes[j] is not None else None for m in members]
            if arg is not None:
                used.append(arg) if arg not in used else None
                texts.append(("expr", arg, h0))
                continue
            pname = next((p for p, v in extra if v == vector), None)
            if pname is None:
                pname = f"arg{len(extra)}"
                extra.append((pname, vector))
            texts.append(("param", pname, h0))
    return texts, used, extra
