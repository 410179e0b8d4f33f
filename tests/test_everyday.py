"""The small things a day's use runs into (issue 30, item 6): folders and globs as SPECs,
did-you-mean for commands and attribute names, a short repr, help that starts with what a
command does, hints that fit the mistake, init rules that match nothing, the HTML report's
layout, and a README that says where its files come from."""
from __future__ import annotations

import re
from pathlib import Path

import click
import click.testing
import pytest

import netc
import netc.cli
from tests.conftest import ROOT, SPECS, run_without_torch

PROBE = """netc: 1
name: probe
input: [3, 32, 32]
init:
  preset: default
  rules:
    - {scope: conv1, weight: 0.5}
    - {scope: cnv1, weight: 0.5}
layers:
  - {name: conv1, %s}
"""


def write_spec(tmp_path, layer="conv: {out: 8, k: 3}", name="probe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(PROBE % layer)
    return path


# --- folders and glob patterns ------------------------------------------------------------

def test_lint_and_check_take_a_folder(netc_cli):
    specs = sorted(p.stem for p in SPECS.glob("*.yaml"))
    code, _, err = netc_cli("lint", str(SPECS))
    assert code == 0 and f"in {len(specs)} specs" in err
    code, out, _ = netc_cli("check", "-q", str(SPECS))
    assert code == 0
    names = [line.split(":")[0] for line in out.splitlines() if ": input " in line]
    assert len(names) == len(specs)


def test_check_and_table_take_a_glob(netc_cli):
    wanted = sorted(p for p in SPECS.glob("vgg1[69].yaml"))
    assert len(wanted) == 2
    code, out, _ = netc_cli("check", "-q", str(SPECS / "vgg1[69].yaml"))
    assert code == 0 and [line.split(":")[0] for line in out.splitlines() if ": input " in line] == \
        [p.stem for p in wanted]
    code, out, _ = netc_cli("table", str(SPECS / "vgg1[69].yaml"), "--layout", "paper")
    assert code == 0 and re.search(r"vgg16\s+vgg19", out)
    code, out, _ = netc_cli("table", str(SPECS / "vgg1[69].yaml"))  # cost layout: each spec's table in turn
    assert code == 0 and out.count("total") >= 2


def test_folder_without_specs_and_glob_without_match(netc_cli, tmp_path):
    code, _, err = netc_cli("lint", str(tmp_path))
    assert code == 2 and "holds no .yaml or .yml spec" in err
    code, _, err = netc_cli("check", str(tmp_path / "*.yaml"))
    assert code == 2 and "no file matches" in err


def test_check_reports_every_bad_spec_of_a_folder(netc_cli, tmp_path):
    write_spec(tmp_path, "conv: {out: 8, kernel: 3}", "a.yaml")
    write_spec(tmp_path, "conv: {out: 8, k: 3}", "b.yaml")
    write_spec(tmp_path, "conv: {out: 8, stride: 3, k: 3}", "c.yaml")
    code, out, err = netc_cli("check", "-q", str(tmp_path))
    assert code == 2 and "probe: input" in out  # b.yaml was checked between the two bad ones
    assert "a.yaml:10:" in err and "c.yaml:10:" in err


# --- did you mean ----------------------------------------------------------------------------

def test_mistyped_subcommand():
    out = click.testing.CliRunner().invoke(netc.cli.main, ["tabel", "resnet50"])
    assert out.exit_code == 2 and "no such command 'tabel'; did you mean 'table'?" in out.stderr


@pytest.mark.parametrize("written, meant", [("kernel", "k"), ("kernel_size", "k"), ("stride", "s"),
                                            ("padding", "p"), ("out_channels", "out")])
def test_torch_attribute_names_get_netc_names(netc_cli, tmp_path, written, meant):
    layer = f"conv: {{out: 8, k: 3, {written}: 1}}" if meant != "out" else f"conv: {{{written}: 8, k: 3}}"
    code, _, err = netc_cli("check", write_spec(tmp_path, layer))
    assert code == 2 and f"unknown key '{written}' for conv" in err and f"did you mean '{meant}'?" in err
    line = next(i for i, text in enumerate((PROBE % layer).splitlines(), 1) if written in text)
    assert f"probe.yaml:{line}:" in err


# --- repr, help, hints ----------------------------------------------------------------------

def test_short_repr():
    import torchvision

    net = netc.load("resnet50")
    text = repr(net)
    expected = sum(p.numel() for p in torchvision.models.resnet50().parameters())
    assert len(text) < 200 and "resnet50" in text and f"{expected:,} params" in text
    assert "(lesion layer3.0)" in repr(net.lesion("layer3.0"))


COMPILING = ["check", "build", "table", "render", "bench", "diff", "lint", "paths", "codegen", "export"]


@pytest.mark.parametrize("command", COMPILING)
def test_limits_end_the_help(netc_cli, command):
    code, out, _ = netc_cli(command, "--help")
    assert code == 0
    options = re.findall(r"^  (?:-\w, )?(--[\w-]+)", out, re.MULTILINE)
    limits = [o for o in options if o.startswith("--max-")]
    assert len(limits) == 5 and options[-6:] == limits + ["--help"], options


def test_every_build_option_has_help(netc_cli):
    from netc.cli.build import build

    assert all(p.help for p in build.params if isinstance(p, click.Option)), \
        [p.name for p in build.params if isinstance(p, click.Option) and not p.help]


def test_two_size_input_for_an_image_network(netc_cli):
    code, _, err = netc_cli("check", "resnet18", "--input", "3x224")
    assert code == 2 and "three sizes" in err and "flatten" not in err


# --- init rules that match nothing ----------------------------------------------------------

def test_init_rule_matching_nothing_is_a_located_warning(netc_cli, tmp_path):
    path = write_spec(tmp_path)
    net = netc.load(path)
    assert [w.code for w in net.warnings] == ["init"] and net.warnings[0].severity == "warning"
    code, out, err = netc_cli("check", "-q", path)
    line = next(i for i, text in enumerate(PROBE.splitlines(), 1) if "cnv1" in text)
    assert code == 0 and "probe: input" in out
    assert f"probe.yaml:{line}:7: warning[init]: init rule 2: no layer has scope 'cnv1'" in err
    assert "did you mean 'conv1'?" in err and "rule 1" not in err


def test_bundled_init_rules_all_match():
    """inception_v3's AuxLogits rules match with its aux head, and warn without it."""
    assert netc.load("inception_v3").warnings == []
    assert len(netc.load("inception_v3", {"aux_logits": False}).warnings) == 2


def test_check_of_a_folder_never_imports_torch(tmp_path):
    write_spec(tmp_path)
    assert "probe: input" in run_without_torch("check", "-q", str(tmp_path))


# --- the HTML report and diff page ----------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    from tests.test_render_html import browser as chromium

    yield from chromium.__wrapped__()


@pytest.mark.parametrize("spec", ["resnet50", "inception_v3"])
def test_cost_table_fits_without_horizontal_scrolling(browser, tmp_path, spec):
    from selenium.webdriver.common.by import By

    from tests.test_render_html import open_report

    open_report(browser, netc.load(spec), tmp_path)
    browser.find_element(By.CSS_SELECTOR, "#depth-switch button[data-depth='all']").click()
    scroll, width = browser.execute_script(
        "const p = document.getElementById('table-pane'); return [p.scrollWidth, p.clientWidth]")
    assert scroll <= width


def test_diff_page_opens_at_the_first_change(browser, tmp_path):
    page = tmp_path / "diff.html"
    page.write_text(netc.api.diff_html(netc.load("resnet50"), netc.load("resnet50_v1")))
    browser.get(page.as_uri())
    for side in ("side-a", "side-b"):
        box, view = browser.execute_script(
            f"const s = document.getElementById('{side}'), g = s.querySelector('g[data-mark]');"
            "const b = g.getBoundingClientRect(), v = s.getBoundingClientRect();"
            "return [[b.top, b.bottom], [v.top, v.bottom]]")
        assert view[0] <= box[0] and box[1] <= view[1], (side, box, view)
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []  # CSP let it run


# --- README -----------------------------------------------------------------------------------

def test_readme_says_where_its_weights_file_comes_from():
    readme = (ROOT / "README.md").read_text()
    used = readme.index("--weights g.pt")
    written = readme.find("--save g.pt")
    assert 0 <= written < used
