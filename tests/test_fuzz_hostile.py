"""Structure-aware fuzz of hostile specs (issue 17): valid and invalid constructs composed with
hostile names, values and imports. `netc.loads` must compile the spec or raise NetcError — any
other exception would be exit 70 — within the work budget, and every diagnostic must be safe to
print on a terminal (no raw control characters).

Runs with test_fuzz's profile: `HYPOTHESIS_PROFILE=long` for a long run.
"""
from __future__ import annotations

import re

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from netc.api import loads
from netc.errors import NetcError
from tests.test_fuzz import PROFILE



def mostly(valid, *hostile):
    """Valid nine times in ten, so that specs often get past the schema to expansion and shapes."""
    return st.integers(0, 9).flatmap(lambda i: st.one_of(*hostile) if i == 9 else valid)


NAMES = mostly(st.sampled_from(["a", "b", "blk", "0", "x1", "fc"]),
               st.sampled_from(["_x", "__w", "training", "forward", "self", "meta", "input", "class", "_add", "out",
                                "x" * 70, "a.b", "a\x1bb", "a\rb", "ré"]), st.text(max_size=6))
VALUES = mostly(
    st.integers(1, 8),
    st.integers(-3, 9), st.sampled_from([0, 2**62, -2**63, 10**30, 0.5, 1e308, True, None, "", "same"]),
    st.sampled_from(["$c", "$c * 2", "max(1, $c // 4)", "make_divisible($c, 0)", "$c / 0", "$nope", "$c ** 99",
                     "[$l, $l]", "$l", "'x' + 'y'", "\x1b[2J$c", "$c\r", "$" * 3, "(" * 50 + "$c" + ")" * 50]),
    st.lists(st.integers(0, 4), max_size=3), st.text(max_size=5))
OPS = mostly(st.sampled_from(["conv", "bn", "relu", "maxpool", "linear", "flatten", "gap", "dropout", "cat", "add"]),
             st.sampled_from(["convv", "reluu", "\x1b", "seq"]))
ATTRS = mostly(st.sampled_from(["out", "k", "s", "p"]), st.sampled_from(["d", "groups", "bias", "bogus", "\r"]))
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def op(draw):
    name = draw(OPS)
    return {name: draw(st.one_of(st.none(), st.dictionaries(ATTRS, VALUES, max_size=3)))}


@st.composite
def node(draw, depth=0):
    kind = draw(st.sampled_from(["op", "op", "op", "bare", "seq", "list", "concat", "residual", "side", "use"]
                                if depth < 3 else ["op", "bare"]))
    if kind == "op":
        out = op(draw)
    elif kind == "bare":
        return draw(OPS)
    elif kind == "list":
        return draw(st.lists(node(depth + 1), min_size=0, max_size=3))
    elif kind == "seq":
        out = {"seq": draw(st.lists(node(depth + 1), max_size=3))}
    elif kind == "concat":
        out = {"concat": draw(st.lists(node(depth + 1), max_size=3))}
    elif kind == "residual":
        parts = ["body"] + sorted(draw(st.sets(st.sampled_from(["shortcut", "then"]))))
        out = {"residual": {k: draw(node(depth + 1)) for k in parts}}
        if draw(st.booleans()):
            out["residual"]["scale"] = draw(VALUES)
    elif kind == "side":
        out = {"side": draw(node(depth + 1)), "output": draw(NAMES)}
    else:
        out = {"use": draw(st.sampled_from(["T", "U", "Missing", "\x1b"])),
               "args": draw(st.dictionaries(st.sampled_from(["c", "d", "sq", "$c // 4)"]), VALUES, max_size=2))}
    conditions = mostly(st.sampled_from([True, False, "$c > 4", "$i == 0"]), VALUES)
    for key, values in (("name", NAMES), ("repeat", VALUES), ("if", conditions), ("output", NAMES),
                        ("from", NAMES), ("at", st.dictionaries(st.one_of(st.integers(-1, 3), st.sampled_from(
                            [1.0, "1", "x"])), st.dictionaries(st.sampled_from(["c", "i"]), VALUES), max_size=2)),
                        ("first", st.dictionaries(st.sampled_from(["c", "zz"]), VALUES, max_size=1))):
        if draw(st.integers(0, 7)) == 0 and (key not in ("first", "at") or "repeat" in out):
            out[key] = draw(values)
    return out


@st.composite
def spec(draw):
    doc = {"netc": 1, "name": draw(mostly(st.just("t"), st.sampled_from(["t\x1b", "class"]))),
           "input": draw(mostly(st.just([4, 8, 8]), st.sampled_from([[3], [2**31, 2**31, 3], [0, 1, 1]]))),
           "params": {"c": draw(mostly(st.sampled_from([4, 8]), st.sampled_from(["x", [1, 2]])))},
           "vars": {"l": draw(VALUES)},
           "templates": {"T": {"args": {"c": 4}, "body": draw(node(2))},
                         "U": {"args": {"d": "int"}, "body": draw(node(2))}},
           "layers": draw(st.lists(node(), min_size=1, max_size=4))}
    if draw(st.booleans()):
        doc["imports"] = [{"file": draw(st.sampled_from(["lib.yaml", "../x.yaml", "/etc/passwd", "a\x00b.yaml",
                                                         "l" * 300 + ".yaml", "missing.yaml", "spec.yaml"]))}]
    if draw(st.booleans()):
        doc["outputs"] = draw(st.lists(NAMES, max_size=3))
    if draw(st.booleans()):
        doc["init"] = {"rules": [{"op": "conv", "weight": draw(st.one_of(VALUES, st.fixed_dictionaries(
            {"normal": st.fixed_dictionaries({"std": VALUES})})))}]}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=False)


@settings(PROFILE)
@given(text=spec())
def test_hostile_specs_compile_or_give_safe_diagnostics(text, tmp_path_factory):
    base = tmp_path_factory.getbasetemp() / "fuzz_hostile"
    base.mkdir(exist_ok=True)
    (base / "lib.yaml").write_text("netc: 1\ntemplates: {L: {body: relu}}\n")
    path = base / "spec.yaml"
    try:
        loads(text, str(path))
    except NetcError as exc:
        shown = "\n".join(d.format() for d in exc.diagnostics)
        assert not UNSAFE.search(shown), repr(shown)
        assert all(d.code for d in exc.diagnostics)
