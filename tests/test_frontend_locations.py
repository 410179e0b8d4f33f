"""Diagnostics find the line: a wrong item is reported at its own file:line:col, whatever
construct it sits in (seq, concat, residual body/shortcut/then, side, template body, repeat,
if) and however those nest.

The spec text is generated (block-style YAML), and the expected place is found by searching
the text for the wrong item's marker, not by running netc.
"""
import itertools
import re
import textwrap

import pytest
import yaml

from netc.api import loads
from netc.errors import NetcError

# a wrong item, the marker that the diagnostic must point at, and its code. Each keeps
# the shape [8, 16, 16] when corrected, so every wrapper accepts it.
BAD = {
    "unknown-op": ({"convv": {"out": 8, "k": 1}}, "convv", "unknown-op"),  # caught by the schema
    "unknown-attr": ({"conv": {"out": 8, "k": 1, "bogus": 2}}, "bogus", "schema"),  # caught in expansion
    "undefined-var": ({"conv": {"out": "$nope", "k": 1}}, "$nope", "undefined-var"),  # expression
    "bad-value": ({"conv": {"out": 8, "k": 1, "p": -1}}, "-1", "schema"),  # the op's attribute model
}


class Spec:
    """Collects templates and output names while wrappers nest."""

    def __init__(self):
        self.templates, self.n = {}, 0

    def fresh(self, stem):
        self.n += 1
        return f"{stem}{self.n}"


def seq_named(s, x):
    return {"name": s.fresh("s"), "seq": ["relu", x]}


def seq_anon(s, x):
    return {"seq": [x, "relu"]}


def seq_list(s, x):  # a YAML list where a node goes: the shorthand of seq
    return ["relu", x]


def concat(s, x):
    return {"name": s.fresh("c"), "concat": [[x], "relu"]}


def residual_body(s, x):
    return {"residual": {"body": [x]}}


def residual_body_named(s, x):  # the reported case of issue 12
    return {"residual": {"body": [{"name": s.fresh("b"), "seq": ["relu", x]}]}}


def residual_shortcut(s, x):
    return {"name": s.fresh("r"), "residual": {"body": "relu", "shortcut": x}}


def residual_then(s, x):
    return {"residual": {"body": "relu", "then": x}}


def side(s, x):
    return {"side": [x], "output": s.fresh("aux")}


def template(s, x):
    name = s.fresh("T")
    s.templates[name] = {"args": {"c": 8}, "body": x}
    return {"name": s.fresh("t"), "use": name}


def repeat(s, x):
    return {"name": s.fresh("rep"), "repeat": 2, "seq": [x]}


def if_(s, x):
    return {"if": "$on", "seq": [x]}


WRAPPERS = [seq_named, seq_anon, seq_list, concat, residual_body, residual_body_named, residual_shortcut,
            residual_then, side, template, repeat, if_]


def spec_text(wrappers, bad) -> str:
    s = Spec()
    node = bad
    for wrap in reversed(wrappers):  # the first wrapper is the outermost
        node = wrap(s, node)
    doc = {"netc": 1, "name": "loc", "input": [8, 16, 16], "params": {"on": True}}
    if s.templates:
        doc["templates"] = s.templates
    doc["layers"] = [{"conv": {"out": 8, "k": 1}}, node, "relu"]
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def where(text: str, marker: str) -> tuple[int, int]:
    """1-based line and column of the only occurrence of the marker as a key or a scalar value."""
    pattern = re.compile(rf"(?<![\w$]){re.escape(marker)}:|(?<=[:-] )'?{re.escape(marker)}'?$")
    hits = [(i + 1, m.start() + 1) for i, line in enumerate(text.splitlines()) for m in pattern.finditer(line)]
    assert len(hits) == 1, (marker, text)
    return hits[0]


def check_located(wrappers, kind):
    item, marker, code = BAD[kind]
    text = spec_text(wrappers, item)
    with pytest.raises(NetcError) as info:
        loads(text, "loc.yaml")
    first = info.value.diagnostics[0]
    line, col = where(text, marker)
    shown = first.format()
    assert first.code == code, shown + "\n" + text
    assert (first.loc.file, first.loc.line, first.loc.col) == ("loc.yaml", line, col), shown + "\n" + text


def test_issue_12_repro():
    text = textwrap.dedent("""\
        netc: 1
        name: loc
        input: [8, 16, 16]
        layers:
          - residual:
              body:
                - name: block
                  seq:
                    - {conv: {out: 8, k: 3, p: 1}}
                    - {convv: {out: 8, k: 1}}
        """)
    with pytest.raises(NetcError) as info:
        loads(text, "loc.yaml")
    d = info.value.diagnostics[0]
    assert (d.code, d.loc.line, d.loc.col) == ("unknown-op", 10, 16), d.format()


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("wrap", WRAPPERS, ids=lambda w: w.__name__)
def test_one_level(wrap, kind):
    check_located([wrap], kind)


@pytest.mark.parametrize("kind", BAD)
def test_two_levels(kind):
    # every ordered pair of constructs (144 nestings); one test per kind keeps the report short
    failures = []
    for outer, inner in itertools.product(WRAPPERS, repeat=2):
        try:
            check_located([outer, inner], kind)
        except AssertionError as exc:
            failures.append(f"{outer.__name__} > {inner.__name__}: {str(exc).splitlines()[0]}")
    assert not failures, "\n".join(failures)


def test_three_levels_through_templates():
    for kind in BAD:
        check_located([template, residual_body_named, concat], kind)
        check_located([repeat, template, side], kind)


# Every wrong item of a file is reported, each at its own place, in every construct.
EVERY_CONSTRUCT = """\
netc: 1
name: multi
input: [8, 16, 16]
templates:
  A:
    body:
      - {WRONG1: {out: 8, k: 1}}
      - WRONG2
      - seq: [{WRONG3: {}}, relu]
  B:
    body: {concat: [[WRONG4], [WRONG5, {residual: {body: WRONG6}}]]}
layers:
  - WRONG7
  - {seq: [{conv: {out: 8, k: 1}}, {WRONG8: {}}]}
  - [WRONG9, {seq: [WRONG10]}]
  - {residual: {body: WRONG11, shortcut: [WRONG12], then: [WRONG13]}}
  - {side: [WRONG14], output: x}
  - {use: A}
  - {use: B}
  - {name: q, repeat: 2, seq: [WRONG15]}
"""


def _expected(text, marker="WRONG"):
    return sorted((i + 1, m.start() + 1) for i, line in enumerate(text.splitlines())
                  for m in re.finditer(marker + r"\d+", line))


def test_every_unknown_op_is_reported():
    text = re.sub(r"WRONG(\d+)", r"bogus\1", EVERY_CONSTRUCT)
    with pytest.raises(NetcError) as info:
        loads(text, "multi.yaml")
    got = sorted((d.loc.line, d.loc.col) for d in info.value.diagnostics)
    assert set(info.value.codes) == {"unknown-op"}
    assert got == _expected(EVERY_CONSTRUCT)


def test_every_bad_attribute_is_reported():
    # found during expansion: a wrong body must not hide its shortcut or then, a failed side
    # branch is not also "empty", and a repeated mistake is reported once
    text = re.sub(r"\{WRONG(\d+): \{[^}]*\}\}", r"{relu: {bogus\1: 1}}", EVERY_CONSTRUCT)
    text = re.sub(r"WRONG(\d+)", r"{relu: {bogus\1: 1}}", text)
    with pytest.raises(NetcError) as info:
        loads(text, "multi.yaml")
    assert set(info.value.codes) == {"schema"}, info.value
    got = sorted((d.loc.line, d.loc.col) for d in info.value.diagnostics)
    want = _expected(text, "bogus")
    assert got == want, str(info.value)


@pytest.mark.parametrize("layer, expr, fix", [
    ("{use: SE, args: {c: 8, sq: max(1, $c // 4)}}", "max(1, $c // 4)", 'sq: "max(1, $c // 4)"'),
    ("{conv: {out: max(8, $c // 2), k: 1}}", "max(8, $c // 2)", 'out: "max(8, $c // 2)"'),
    ("{conv: {out: 8, k: [max(1, min(2, $c)), 1]}}", "max(1, min(2, $c))", '"max(1, min(2, $c))"'),
    ("{conv: {out: make_divisible($c * 2, 8, 16), k: 1}}", "make_divisible($c * 2, 8, 16)",
     'out: "make_divisible($c * 2, 8, 16)"'),
])
def test_comma_in_flow_expression_hints_quotes(layer, expr, fix):
    text = ("netc: 1\nname: comma\ninput: [8, 16, 16]\nvars: {c: 8}\n"
            "templates:\n  SE:\n    args: {c: int, sq: int}\n    body: {conv: {out: $sq, k: 1}}\n"
            f"layers:\n  - {layer}\n")
    with pytest.raises(NetcError) as info:
        loads(text, "comma.yaml")
    [d] = info.value.diagnostics
    assert (d.code, d.loc.line, d.loc.col) == ("yaml", 10, 5 + layer.index(expr.split(",")[0]))
    assert f"'{expr}'" in d.message and "comma" in d.message
    assert d.hint == f"quote the expression: {fix}"
    quoted = text.replace(expr, f'"{expr}"')
    assert loads(quoted, "comma.yaml").params > 0  # and quoting is the fix


def test_commas_that_are_not_split_expressions_pass():
    text = ("netc: 1\nname: ok\ninput: [8, 16, 16]\nvars: {c: 8}\n"
            "layers:\n  - {conv: {out: 8, k: [1, 1]}}\n  - conv:\n      out: max(8, $c // 2)\n      k: 1\n")
    assert loads(text, "ok.yaml").params > 0
