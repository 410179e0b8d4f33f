"""Text from a spec is data on a terminal too (issue 17, class 5): every diagnostic shows control
characters as escapes, so an ESC sequence cannot retitle or clear the terminal and a carriage
return cannot overwrite the message with 'FAKE: all checks passed'."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

from tests.test_hostile_work import TORCH_MEMORY, netc_run

ESC = "\x1b]0;pwned\x07\x1b[2J"
CR = "\rFAKE: all checks passed"
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # all but the newline
HEAD = "netc: 1\nname: t\ninput: [3, 8, 8]\n"


def yaml_str(text: str) -> str:
    """A double-quoted YAML scalar holding `text` (control characters as YAML escapes)."""
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


CASES = {
    "unknown key": HEAD + f"layers:\n  - {{conv: {{out: 4, k: 3, {yaml_str('x' + ESC)}: 1}}}}\n",
    "unknown op": HEAD + f"layers:\n  - {yaml_str(CR)}\n",
    "template argument": HEAD + "templates: {T: {args: {c: 4}, body: {conv: {out: $c, k: 1}}}}\n"
                                f"layers:\n  - {{use: T, args: {{{yaml_str('c' + CR)}: 1}}}}\n",
    "import path": HEAD + f"imports: [{{file: {yaml_str('lib' + ESC + '.yaml')}}}]\nlayers: [relu]\n",
    "expression": HEAD + f"layers:\n  - {{conv: {{out: {yaml_str('$c' + CR)}, k: 1}}}}\n",
    "name": HEAD + f"layers:\n  - {{name: {yaml_str('a' + ESC)}, relu: {{}}}}\n",
    "bidi override in a description key": HEAD + f"layers: [relu]\n{yaml_str('x‮y')}: 1\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_text_in_diagnostics_is_escaped(case, tmp_path, netc_cli):
    path = tmp_path / "s.yaml"
    path.write_text(CASES[case])
    status, out, err = netc_cli("check", path)
    assert status == 2, (out, err)
    assert not UNSAFE.search(err), repr(err)
    assert "\\x1b" in err or "\\r" in err or "\\u202e" in err, repr(err)


def test_set_key_and_spec_path_are_escaped(tmp_path, netc_cli):
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + "params: {c: 4}\nlayers: [{conv: {out: $c, k: 1}}]\n")
    status, _, err = netc_cli("check", path, "--set", ESC + "=1")
    assert status == 2 and not UNSAFE.search(err) and "\\x1b" in err, repr(err)
    weird = tmp_path / f"spec{CR}.yaml"
    status, _, err = netc_cli("check", weird)
    assert status == 2 and not UNSAFE.search(err) and "\\rFAKE" in err, repr(err)


# --- issue 31, class 5: everything netc echoes, not only diagnostics -----------------------------
# Run as real processes: argv and file names are bytes there, and a name that is not UTF-8 reaches
# netc surrogate-escaped (os.fsdecode), which a UTF-8 stream cannot write unless it is escaped.

WEIRD = os.fsdecode(b"x\xff") + "\x1b]0;pwned\x07\u202e"  # a non-UTF-8 byte, an ESC sequence, a bidi override
SMALL = HEAD + "layers:\n  - conv_transpose: {out: 4, k: 3, s: 2}\n"  # NL508 fires on it


def weird_spec(tmp_path) -> Path:
    path = tmp_path / f"s{WEIRD}.yaml"
    path.write_text(SMALL)
    return path


def escaped(stream: str) -> bool:
    """The weird name shown escaped: its bytes as \\xff and \\x1b or \\u001b."""
    return ("\\xff" in stream or "\\udcff" in stream) and ("\\x1b" in stream or "\\u001b" in stream)


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_lint_of_a_file_whose_name_is_not_utf8(fmt, tmp_path):
    path = weird_spec(tmp_path)
    status, out, _ = netc_run("lint", path, "--format", fmt)  # no raw control byte, strict UTF-8
    assert status == 1 and (fmt == "sarif" or escaped(out)), out
    if fmt == "json":  # the escapes are JSON's: the name reads back exactly
        assert json.loads(out)["findings"][0]["file"] == str(path)
    if fmt == "sarif":  # a file URI of the name's bytes; relative stays relative
        uri = json.loads(out)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert unquote_to_bytes(uri.removeprefix("file://")) == os.fsencode(path)
        status, out, _ = netc_run("lint", path.name, "--format", fmt, cwd=tmp_path)
        uri = json.loads(out)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert status == 1 and unquote_to_bytes(uri) == os.fsencode(path.name)


def test_lint_json_to_a_file_escapes_bidi_overrides(tmp_path):
    path, out = weird_spec(tmp_path), tmp_path / "lint.json"
    status, _, _ = netc_run("lint", path, "--format", "json", "-o", out)
    text = out.read_text(encoding="utf-8")
    assert status == 1 and "\u202e" not in text and "\\u202e" in text
    assert json.loads(text)["findings"][0]["file"] == str(path)


def test_wrote_lines_escape_the_path(tmp_path):
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(SMALL)
    weights = tmp_path / f"w{WEIRD}.pt"
    runs = {
        "render": ["render", spec_path, "--dot", "-o", tmp_path / f"r{WEIRD}.dot"],
        "diff --html": ["diff", spec_path, spec_path, "--html", "-o", tmp_path / f"d{WEIRD}.html"],
        "build --save": ["build", spec_path, "-q", "--save", weights],
        "convert-weights": ["convert-weights", spec_path, spec_path, "--weights", weights,
                            "-o", tmp_path / f"c{WEIRD}.pt"],
        "codegen": ["codegen", spec_path, "-o", tmp_path / f"g{WEIRD}"],
        "export": ["export", spec_path, "--onnx", tmp_path / f"e{WEIRD}.onnx", "--no-verify"],
    }
    for what, args in runs.items():
        status, out, err = netc_run(*args, timeout=120, memory=TORCH_MEMORY)
        assert status == 0 and escaped(out + err), (what, out, err)
    # every file was written under its own name
    assert len([p for p in tmp_path.iterdir() if WEIRD in p.name]) == len(runs)


def test_import_verdict_escapes_the_source_path(tmp_path):
    module = tmp_path / f"m{WEIRD}.py"
    module.write_text("import torch.nn as nn\n\nclass Net(nn.Sequential):\n"
                      "    def __init__(self):\n        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    status, out, err = netc_run("import", f"{module}:Net", "--input", "3x8x8", "-o", tmp_path / "n.yaml",
                                timeout=120, memory=TORCH_MEMORY)
    assert status == 0 and escaped(out + err), (out, err)


@pytest.mark.parametrize("args", [
    ["table", "resnet18", "--depth", ESC],  # an option value click echoes
    ["check", "--bogus" + ESC],  # an unknown option
    ["--bogus" + ESC],  # the group's own options
    ["chec" + ESC],  # an unknown command
    ["check", "resnet18", "extra" + ESC],  # click echoes extra arguments as typed
    ["diff", "resnet18", "resnet18", "-o", "{tmp}"],  # click.Path's check: a directory, not a file
])
def test_click_usage_errors_escape_what_was_typed(args, tmp_path):
    directory = tmp_path / f"d{ESC}"
    directory.mkdir()
    status, _, err = netc_run(*(str(directory) if a == "{tmp}" else a for a in args))
    assert status == 2 and ("\\x1b" in err or "\\u001b" in err), err
