"""`netc schema`: the JSON Schema accepts every bundled spec and rejects typos."""
import json

import jsonschema
import pytest

from netc.spec.yamlload import load_yaml
from tests.conftest import SPECS, run_without_torch

SPEC_FILES = sorted(SPECS.glob("*.yaml"))
LIB_FILES = sorted(SPECS.glob("lib/*.yaml"))


@pytest.fixture(scope="module")
def validator(tmp_path_factory):
    from click.testing import CliRunner

    from netc.cli import main

    out = tmp_path_factory.mktemp("schema") / "netc-schema.json"
    result = CliRunner().invoke(main, ["schema", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0
    schema = json.loads(out.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def data(path):
    return load_yaml(path.read_text(), str(path))


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_bundled_specs_validate(validator, path):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data(path))]
    assert not errors, errors[:5]


@pytest.mark.parametrize("path", LIB_FILES, ids=[p.stem for p in LIB_FILES])
def test_library_files_validate(validator, path):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data(path))]
    assert not errors, errors[:5]


def test_a_document_is_a_network_or_a_library(validator):
    lib = {"netc": 1, "templates": {"T": {"body": "relu"}}}
    assert validator.is_valid(lib)
    assert not validator.is_valid({**lib, "layers": ["relu"]})  # layers without name and input
    assert not validator.is_valid({"netc": 1})
    assert not validator.is_valid({**lib, "templates": {"T": {"body": "relu", "argz": {}}}})


@pytest.mark.parametrize("typo", [
    ("layers", 0, "convv"),     # an op
    ("layers", 0, "repet"),     # a node key
    ("namee",),                 # a top-level key
])
def test_typos_are_rejected(validator, typo):
    doc = json.loads(json.dumps(data(SPECS / "resnet50.yaml")))
    target = doc
    for part in typo[:-1]:
        target = target[part]
    key = typo[-1]
    if key == "convv":
        target["convv"] = target.pop("conv")
    else:
        target[key] = 1
    assert not validator.is_valid(doc)


@pytest.mark.parametrize("attrs,ok", [
    ({"out": 8, "k": 3}, True), ({"out": "$c * 2", "k": [1, 7]}, True), ({"out": 8, "k": 3, "p": "same"}, True),
    ({"out": 8, "kernel": 3}, False), ({"out": "eight", "k": 3}, False), ({"out": 8, "k": 3, "p": "full"}, False),
    ({"out": 8, "k": ["$kh", 3]}, True), ({"out": 8, "k": ["three", 3]}, False),  # an item may be an expression
])
def test_op_attributes(validator, attrs, ok):
    doc = {"netc": 1, "name": "t", "input": [3, 8, 8], "layers": [{"conv": attrs}, "relu", ["relu", "tanh"]]}
    assert validator.is_valid(doc) == ok


def test_schema_to_stdout_imports_no_torch():
    out = run_without_torch("schema")
    schema_text, ok = out.rstrip().rsplit("\n", 1)  # run_without_torch prints 'ok' last
    assert ok == "ok" and json.loads(schema_text)["title"] == "netc spec"
