"""Text from a spec is data on a terminal too (issue 17, class 5): every diagnostic shows control
characters as escapes, so an ESC sequence cannot retitle or clear the terminal and a carriage
return cannot overwrite the message with 'FAKE: all checks passed'."""
from __future__ import annotations

import re

import pytest

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
