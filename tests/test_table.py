"""`netc table` and `Network.table()`: grouping by depth, the four formats, the CLI, no torch."""
import csv
import io
import json
import re

import pytest

import netc
from netc.analysis.cost import Cost, analyse
from netc.analysis.formats import CSV_FIELDS, FORMATS, SCHEMA_VERSION, to_dict
from netc.analysis.table import build
from tests.conftest import ROOT, SPECS, run_without_torch
from tests.test_cost import AUX_SPEC


@pytest.fixture(scope="module")
def resnet50():
    return analyse(netc.load(SPECS / "resnet50.yaml"))


def total_of(rows):
    total = Cost()
    for r in rows:
        total += r.cost
    return total


def test_depth_1_is_one_row_per_top_level_block(resnet50):
    table = build(resnet50, 1)
    blocks = [r.scope for r in table.rows if r.kind == "block"]
    assert blocks == ["layer1", "layer2", "layer3", "layer4"]
    assert [r.scope for r in table.rows][:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert all(r.level == 0 for r in table.rows)
    assert total_of(table.rows) == resnet50.total  # the rows partition the network
    layer2 = next(r for r in table.rows if r.scope == "layer2")
    assert layer2.shape == (512, 28, 28) and layer2.label == "Bottleneck ×4"


def test_depth_2_expands_stages_into_bottlenecks(resnet50):
    rows = build(resnet50, 2).rows
    scopes = [r.scope for r in rows]
    assert scopes[scopes.index("layer3") + 1:scopes.index("layer3") + 7] == [f"layer3.{i}" for i in range(6)]
    assert total_of(r for r in rows if r.level == 1 and r.scope.startswith("layer3.")) == \
        next(r for r in rows if r.scope == "layer3").cost
    # the shortcut sum of layer1.0 is hidden inside its bottleneck row
    assert "layer1.0._add" not in scopes


def test_full_depth_lists_every_op_once(resnet50):
    rows = build(resnet50).rows
    layers = [r.scope for r in rows if r.kind == "layer"]
    assert layers == [r.scope for r in resnet50.rows]
    assert total_of(r for r in rows if r.kind == "layer") == resnet50.total
    assert build(resnet50, 0).rows == []


def test_aux_rows_are_marked_and_kept_out_of_totals():
    report = analyse(netc.loads(AUX_SPEC))
    rows = build(report, 1).rows
    head = next(r for r in rows if r.scope == "head")
    assert head.aux and head.cost.macs == 80
    text = netc.loads(AUX_SPEC).table()
    assert "[aux]" in text and "Aux heads (training only)" in text
    data = json.loads(netc.loads(AUX_SPEC).table(fmt="json"))
    assert data["aux"]["macs"] == 80 and data["total"]["macs"] == report.total.macs


def test_block_output_is_its_main_path_not_a_side_head_inside_it():
    spec = ("netc: 1\nname: t\ninput: [3, 16, 16]\nlayers:\n"
            "  - name: stage\n    seq:\n      - {name: c, conv: {out: 4, k: 3, s: 2, p: 1}}\n"
            "      - {name: head, side: {seq: [gap, flatten, {name: fc, linear: {out: 3}}]}, output: aux, aux: true}\n"
            "  - gap\n  - flatten\n  - {name: fc, linear: {out: 2}}\n")
    stage = build(analyse(netc.loads(spec)), 1).rows[0]
    assert (stage.scope, stage.shape, stage.rf, stage.aux) == ("stage", (4, 8, 8), (3, 3), False)
    assert stage.cost.macs == 4 * 8 * 8 * 3 * 9  # the head's linear is aux: not in the stage's MACs
    assert stage.cost.params == 4 * 27 + 4 + 4 * 3 + 3  # but its parameters are


def test_json_is_versioned_and_complete(resnet50):
    data = json.loads(netc.load(SPECS / "resnet50.yaml").table(depth=1, fmt="json"))
    assert data["schema"] == "netc-table" and data["version"] == SCHEMA_VERSION
    assert data["input"] == [3, 224, 224] and data["depth"] == 1
    assert data["total"]["macs"] == resnet50.total.macs and data["total"]["params"] == resnet50.total.params
    assert [r["scope"] for r in data["rows"]] == [r.scope for r in build(resnet50, 1).rows]
    assert data["rows"][0]["shape"] == [64, 112, 112] and data["rows"][0]["rf"] == [7, 7]


@pytest.mark.parametrize("spec,depth", [("resnet50", None), ("resnet50", 2), ("googlenet", 1), (None, None)])
def test_json_validates_against_its_schema(spec, depth):
    import jsonschema

    schema = json.loads((ROOT / "docs" / "table.schema.json").read_text())
    if spec is not None and not (SPECS / f"{spec}.yaml").exists():
        pytest.skip(f"specs/{spec}.yaml does not exist yet")
    net = netc.load(SPECS / f"{spec}.yaml") if spec else netc.loads(AUX_SPEC)
    jsonschema.validate(json.loads(net.table(depth=depth, fmt="json")), schema)
    jsonschema.validate(json.loads(net.table(depth=depth, fmt="json", dtype="float16")), schema)


def test_json_format_is_documented():
    """Every key the JSON writer emits is described in docs/table.md."""
    doc = (ROOT / "docs" / "table.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", doc))
    data = to_dict(build(analyse(netc.loads(AUX_SPEC)), None))
    keys = set(data) | set(data["rows"][0]) | set(data["total"]) | set(data["outputs"][0])
    assert keys <= documented, sorted(keys - documented)
    assert set(CSV_FIELDS) <= documented, sorted(set(CSV_FIELDS) - documented)


def test_csv_rows_and_totals(resnet50):
    text = netc.load(SPECS / "resnet50.yaml").table(depth=2, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_FIELDS
    total = next(r for r in rows if r["kind"] == "total")
    assert int(total["macs"]) == resnet50.total.macs and int(total["params"]) == resnet50.total.params
    body = [r for r in rows if r["kind"] in ("layer", "block") and r["level"] == "0"]
    assert sum(int(r["params"]) for r in body) == resnet50.total.params
    conv1 = rows[0]
    assert (conv1["shape"], conv1["rf_h"], conv1["jump_w"]) == ("64x112x112", "7", "2")


def test_text_and_markdown_state_the_convention(resnet50):
    net = netc.load(SPECS / "resnet50.yaml")
    for fmt in ("text", "md"):
        out = net.table(depth=1, fmt=fmt)
        assert "multiply-accumulates of conv and linear" in out
        assert "FLOPs = 2 × MACs" in out
        assert "4,089,184,256" in out and "25,557,032" in out
        assert "layer3" in out and "layer3.0" not in out
    md = net.table(depth=1, fmt="md")
    assert "| Layer | Op | Output |" in md and "| **layer1** |" in md
    with pytest.raises(ValueError):
        net.table(fmt="xml")


def test_terminal_output_is_the_text_table_with_styles(resnet50):
    from rich.console import Console

    from netc.analysis.formats import print_styled, to_text

    table = build(resnet50, 1)
    buf = io.StringIO()
    print_styled(table, Console(file=buf, force_terminal=True, color_system="standard", width=60))
    styled = buf.getvalue()
    assert "\x1b[1m" in styled  # bold block and total rows
    assert re.sub(r"\x1b\[[0-9;]*m", "", styled) == to_text(table)  # same lines, not wrapped at 60


def test_cli_formats_overrides_and_input(netc_cli, tmp_path):
    code, out, _ = netc_cli("table", SPECS / "resnet50.yaml", "--depth", "1")
    assert code == 0 and "Bottleneck ×6" in out
    target = tmp_path / "t.json"
    code, out, _ = netc_cli("table", SPECS / "resnet50.yaml", "--format", "json", "--set", "num_classes=10",
                            "--input", "3x320x320", "-o", target)
    assert code == 0 and out == ""
    data = json.loads(target.read_text())
    fc = next(r for r in data["rows"] if r["scope"] == "fc")
    assert fc["params"] == 2048 * 10 + 10
    assert data["input"] == [3, 320, 320] and data["rows"][0]["shape"] == [64, 160, 160]


def test_cli_bad_spec_exits_2_and_writes_nothing(netc_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("netc: 1\nname: bad\ninput: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, k: 11}}\n")
    target = tmp_path / "t.md"
    code, _, err = netc_cli("table", bad, "--format", "md", "-o", target)
    assert code == 2 and "error[shape]" in err and "Traceback" not in err
    assert not target.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_table_does_not_import_torch(fmt):
    out = run_without_torch("table", "specs/resnet50.yaml", "--format", fmt, "--depth", "2")
    assert "4089184256" in out.replace(",", "")
