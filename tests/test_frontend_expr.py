"""The safe expression evaluator: what it computes and what it refuses."""
import pytest

from netc.errors import Loc, NetcError
from netc.expr import evaluate, substitute
from netc.spec.yamlload import load_yaml

ENV = {"planes": 64, "i": 0, "w": 0.5, "name": "a", "flag": True}


@pytest.mark.parametrize("text,value", [
    ("$planes * 4", 256), ("$planes // 3", 21), ("$planes / 4", 16.0), ("$planes % 10", 4),
    ("2 ** $i", 1), ("-$planes + 1", -63), ("($planes + 1) * 2", 130),
    ("2 if $i == 0 else 1", 2), ("1 if $i > 0 else 2", 2), ("$i == 0 and $flag", True),
    ("not $flag or $i", 0), ("0 < $planes <= 64", True), ("$planes != 64", False),
    ("max(8, $planes // 16)", 8), ("min($planes, 32)", 32), ("int($planes * $w)", 32),
    ("round(2.6)", 3), ("ceil($planes / 3)", 22), ("floor($planes / 3)", 21), ("abs(-$planes)", 64),
    ("make_divisible($planes * 0.75)", 48), ("float($i)", 0.0), ("[$planes, $planes * 2]", [64, 128]),
    ("$name + '_x'", "a_x"), ("$planes * 1e-3", 0.064),
])
def test_arithmetic(text, value):
    assert evaluate(text, ENV) == value


@pytest.mark.parametrize("text", [
    "$planes.__class__", "$planes.real", "__import__('os')", "open('/etc/passwd')", "$name[0]",
    "[x for x in [1]]", "lambda: 1", "$planes @ 2", "$planes << 2", "$planes in [1]", "$planes is None",
    "{1: 2}", "{1, 2}", "(x := 1)", "f'{$planes}'", "$planes; 1", "getattr($planes, 'real')",
    "max(key=1)", "2 ** 10 ** 10", "10 ** 100", "9 ** 9 ** 9", "$planes * 1e308 * 10", "'a' * 10",
    "int('nan')", "float('inf')", "$planes // 0", "$planes % 0", "1 / 0", "$planes +", "",
    "$planes " + "+ 1 " * 400, "(" * 300 + "$planes" + ")" * 300, "$planes > 'a'", "-'a' + $name",
    "__builtins__", "$__class__",
])
def test_forbidden_or_failing(text):
    with pytest.raises(NetcError) as exc:
        evaluate(text, ENV, Loc("f.yaml", 3, 7))
    d = exc.value.diagnostics[0]
    assert d.code in ("expr", "undefined-var")
    assert (d.loc.line, d.loc.col) == (3, 7)


def test_undefined_variable_hints_the_closest_name():
    with pytest.raises(NetcError) as exc:
        evaluate("$plane * 4", ENV)
    d = exc.value.diagnostics[0]
    assert d.code == "undefined-var" and "'$plane'" in d.message and d.hint == "did you mean 'planes'?"


def test_huge_integers_are_rejected():
    with pytest.raises(NetcError, match="too large"):
        evaluate("$big * $big", {"big": 2**40})


def test_substitute_keeps_locations_and_evaluates_nested_values():
    doc = load_yaml("conv: {out: $planes * 2, k: [1, $planes // 32]}\n", "f.yaml")
    out = substitute(doc, ENV)
    assert out == {"conv": {"out": 128, "k": [1, 2]}}
    assert out["conv"].value_locs["out"].col == doc["conv"].value_locs["out"].col
    with pytest.raises(NetcError) as exc:
        substitute(load_yaml("a: {b: [1, $nope]}\n", "f.yaml"), ENV)
    assert (exc.value.diagnostics[0].loc.line, exc.value.diagnostics[0].loc.col) == (1, 12)
