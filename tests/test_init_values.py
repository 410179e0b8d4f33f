"""Init settings are strictly typed and finite like the rest of the language (issue 17, class 4):
strings such as 'nan', 'inf' or '1e999' used to pass and give NaN weights (and `nan` in generated
code, a NameError)."""
from __future__ import annotations

import pytest

from netc.api import loads
from netc.errors import NetcError

HEAD = "netc: 1\nname: t\ninput: [3, 8, 8]\nlayers: [{conv: {out: 4, k: 3}}]\ninit:\n  rules:\n"


@pytest.mark.parametrize("rule, where", [
    ("{op: conv, weight: 'nan'}", "'nan'"),
    ("{op: conv, weight: {constant: '1e999'}}", "'1e999'"),
    ("{op: conv, weight: {normal: {std: 'inf'}}}", "'inf'"),
    ("{op: conv, weight: {normal: {mean: '0'}}}", "'0'"),
    ("{op: conv, bias: {constant: true}}", "true"),
    ("{op: conv, weight: {trunc_normal: {std: 0.1, a: 2, b: -2}}}", "{std"),
    ("{op: conv, weight: {uniform: {a: 1, b: 1}}}", "{a"),
    ("{op: conv, weight: {kaiming_normal: {a: .nan}}}", ".nan"),
])
def test_bad_init_values_are_refused_where_written(rule, where):
    text = HEAD + f"    - {rule}\n"
    with pytest.raises(NetcError) as info:
        loads(text, "init.yaml")
    d = info.value.diagnostics[0]
    line = text.splitlines()[d.loc.line - 1]
    assert d.code == "schema" and d.loc.line == 7, d.format()
    assert line[d.loc.col - 1:].startswith(where), d.format()


def test_good_init_values_pass():
    net = loads(HEAD + "    - {op: conv, weight: {normal: {std: 1}}, bias: 0}\n"
                "    - {op: conv, weight: {uniform: {a: -1, b: 1.5}}}\n", "init.yaml")
    assert net.params == 4 * 3 * 9 + 4
