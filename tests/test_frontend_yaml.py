"""The safe YAML loader: locations, duplicate keys, tags, YAML 1.2 floats."""
import pytest

from netc.errors import NetcError
from netc.spec.yamlload import LocDict, LocList, key_loc, load_yaml, value_loc


def codes_at(text):
    with pytest.raises(NetcError) as exc:
        load_yaml(text, "f.yaml")
    d = exc.value.diagnostics[0]
    return d.code, d.loc.line, d.loc.col


def test_locations_of_mappings_keys_values_and_items():
    doc = load_yaml("a: 1\nb:\n  - x\n  - {k: [1, 2]}\n", "f.yaml")
    assert isinstance(doc, LocDict)
    assert (doc.loc.line, doc.loc.col) == (1, 1)
    assert (key_loc(doc, "b").line, key_loc(doc, "b").col) == (2, 1)
    assert (value_loc(doc, "a").line, value_loc(doc, "a").col) == (1, 4)
    seq = doc["b"]
    assert isinstance(seq, LocList)
    assert [(l.line, l.col) for l in seq.item_locs] == [(3, 5), (4, 5)]
    inner = seq[1]
    assert (inner.loc.line, inner.loc.col) == (4, 5)
    assert (value_loc(inner["k"], 1).line, value_loc(inner["k"], 1).col) == (4, 13)
    assert str(value_loc(inner, "k")) == "f.yaml:4:9"


def test_duplicate_keys_are_errors_at_the_second_key():
    assert codes_at("a: 1\nb: 2\na: 3\n") == ("yaml-duplicate-key", 3, 1)
    assert codes_at("x: {k: 1, k: 2}\n") == ("yaml-duplicate-key", 1, 11)


@pytest.mark.parametrize("text,col", [
    ("a: !!python/object:os.system x\n", 4),
    ("a: !!python/name:os.system ''\n", 4),
    ("a: !custom 3\n", 4),
    ("a: !!binary aGVsbG8=\n", 4),
    ("a: !!set {x: null}\n", 4),
    ("a: !!omap [{x: 1}]\n", 4),
])
def test_tags_beyond_the_core_schema_are_rejected(text, col):
    assert codes_at(text) == ("yaml-tag", 1, col)


def test_merge_keys_are_rejected():
    code, line, _ = codes_at("base: &b {x: 1}\nother:\n  <<: *b\n")
    assert (code, line) == ("yaml", 3)


@pytest.mark.parametrize("text,value", [
    ("1e-3", 1e-3), ("1E5", 1e5), ("-2.5e+2", -250.0), ("0.5", 0.5), (".5", 0.5), ("3", 3),
    ("1_000", 1000), ("true", True), ("null", None), ("2026-01-01", "2026-01-01"), ("'1e-3'", "1e-3"),
])
def test_scalars(text, value):
    got = load_yaml(f"v: {text}\n", "f.yaml")["v"]
    assert got == value and type(got) is type(value)


def test_empty_and_multiple_documents():
    assert load_yaml("", "f.yaml") is None
    assert load_yaml("# just a comment\n", "f.yaml") is None
    assert codes_at("a: 1\n---\nb: 2\n") == ("yaml", 2, 1)


def test_syntax_error_points_at_the_problem():
    assert codes_at("a: [1, 2\nb: 3\n")[0] == "yaml"
    assert codes_at("a: b: c\n") == ("yaml", 1, 5)


def test_non_scalar_keys_rejected():
    assert codes_at("? [a, b]\n: 1\n")[:2] == ("yaml", 1)


def test_aliases_are_expanded_but_bounded():
    doc = load_yaml("a: &x [1, 2]\nb: *x\n", "f.yaml")
    assert doc["b"] == [1, 2]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(6))
    assert codes_at(bomb)[0] == "limit"


def test_shared_aliases_and_recursive_aliases():
    doc = load_yaml("a: &x [1]\nb: [*x, *x]\n", "f.yaml")
    assert doc["b"] == [[1], [1]]
    assert codes_at("a: &a [1, *a]\n") == ("yaml", 1, 4)
    assert codes_at("a: &a {x: {y: *a}}\n") == ("yaml", 1, 4)


@pytest.mark.parametrize("text,line", [
    ("a: " + "[" * 5_000 + "]" * 5_000 + "\n", 1),
    ("a:\n" + "- " * 5_000 + "x\n", 2),
    ("a: " + "{k: " * 5_000 + "1" + "}" * 5_000 + "\n", 1),
])
def test_nesting_too_deep_is_a_limit_whichever_parser_layer_meets_it(text, line):
    """libyaml stops at its own depth limit before the loader's MAX_YAML_DEPTH check runs; both
    are the same limit to the user: error[limit] at the line and column of the too-deep node."""
    code, got_line, col = codes_at(text)
    assert (code, got_line) == ("limit", line) and col > 200
