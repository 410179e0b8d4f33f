"""`if:` / `else:` semantics with `from:` (docs: README's language section; issue 27): an `else:`
node without its own `from:` reads the node's; a name its false `if:` removed is an error to refer
to, never a silent match of the same name in an enclosing scope."""
from __future__ import annotations

import pytest
import torch

import netc
from netc.errors import NetcError
from tests.conftest import pair

BASE = """netc: 1
name: t
input: [3, 8, 8]
layers:
  - {name: a, conv: {out: 4, k: 1}}
  - {name: c, conv: {out: 4, k: 3, p: 1}}
"""


def _inputs(net, scope):
    names = {nid: d.scope for nid, d in net.nodes()}
    node = next(d for _, d in net.nodes() if d.scope == scope)
    return node.op, [names[i] for i in node.inputs]


def test_else_reads_the_nodes_from(tmp_path):
    net = netc.loads(BASE + "  - {name: b, if: false, add: {}, from: [a, c], else: {mul: {}}}\n")
    assert _inputs(net, "b") == ("mul", ["a", "c"])
    ref, gen = pair(net, tmp_path)  # the generated code reads the same inputs
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = ref.a(x) * ref.c(ref.a(x))
        assert torch.allclose(ref(x), expected, atol=1e-6) and torch.allclose(gen(x), expected, atol=1e-6)


def test_an_else_with_its_own_from_keeps_it():
    net = netc.loads(BASE + "  - {name: b, if: false, add: {}, from: [a, c], else: {from: [c, a], cat: {}}}\n")
    assert _inputs(net, "b") == ("cat", ["c", "a"])


def test_an_else_that_takes_one_input_is_refused_two_at_its_line():
    with pytest.raises(NetcError) as exc:
        netc.loads(BASE + "  - {name: b, if: false, add: {}, from: [a, c], else: identity}\n")
    assert "<string>:7:" in str(exc.value) and "'identity' takes 1 input, got 2" in str(exc.value)


@pytest.mark.parametrize("layers,ref_line", [
    # inner scope: the disabled 'a' shadows the outer one
    ("  - name: blk\n    seq:\n      - {if: false, name: a, conv: {out: 4, k: 1}}\n      - {from: a, relu: {}}\n", 10),
    # same scope, no other 'zz'
    ("  - {if: false, name: zz, conv: {out: 4, k: 1}}\n  - {from: zz, relu: {}}\n", 8),
])
def test_a_name_its_if_removed_is_an_error_to_refer_to(layers, ref_line):
    with pytest.raises(NetcError) as exc:
        netc.loads(BASE + layers)
    text = str(exc.value)
    assert f"<string>:{ref_line}:" in text and "which its 'if:' at <string>:" in text and "removed" in text


def test_a_name_defined_under_the_true_branch_of_two_ifs_resolves():
    net = netc.loads(BASE + "  - {if: false, name: zz, conv: {out: 4, k: 1}}\n"
                            "  - {if: true, name: zz, conv: {out: 5, k: 1}}\n  - {from: zz, relu: {}}\n")
    relu = next(d for _, d in net.nodes() if d.op == "relu")
    assert relu.shape == (5, 8, 8)


def test_the_cli_reports_it_located_with_exit_2(netc_cli, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE + "  - {if: false, name: zz, conv: {out: 4, k: 1}}\n  - {from: zz, relu: {}}\n")
    code, out, err = netc_cli("check", str(spec))
    assert code == 2 and f"{spec}:8:" in err and "removed" in err and "Traceback" not in err
