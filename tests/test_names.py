"""One rule for names (netc.names), checked in the frontend, so that build and codegen
accept exactly the specs `netc check` accepts; its list of what torch modules own is checked
against the installed torch here."""
from __future__ import annotations

import copy
import pickle

import pytest

from netc.api import loads
from netc.errors import NetcError
from netc.names import TORCH_OWNED

HEAD = "netc: 1\nname: t\ninput: [3, 8, 8]\n"


def owned_by_torch() -> set[str]:
    """Every attribute name nn.Module, nn.Sequential, fx.GraphModule and NetcModule own, on the
    class or on an instance (dunders aside: the rule refuses every `__` prefix)."""
    import torch.fx as fx
    import torch.nn as nn

    net = loads(HEAD + "layers: [{conv: {out: 4, k: 3}}, relu]\n").build(device="meta", init=False)
    aux = loads(HEAD + "layers:\n  - {side: [flatten, {linear: {out: 2}}], output: aux, aux: true}\n"
                "  - {conv: {out: 4, k: 3}}\n").build(device="meta", init=False)
    children = {name for name, _ in net.named_children()} | {name for name, _ in aux.named_children()}
    owned = set()
    for module in (nn.Module(), nn.Sequential(nn.ReLU()), fx.symbolic_trace(nn.Sequential(nn.ReLU())), net, aux):
        owned |= set(dir(type(module))) | set(vars(module))
    return {n for n in owned if not n.startswith("__")} - children


def test_static_list_covers_what_torch_owns():
    missing = owned_by_torch() - TORCH_OWNED
    assert not missing, f"add to netc.names.TORCH_OWNED: {sorted(missing)}"


def test_frontend_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, netc.names, netc.spec.model; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("name", ["training", "_modules", "_parameters", "_buffers", "meta",
                                  "_netc_program", "forward", "to", "graph", "code", "__w", "__init__"])
def test_names_torch_owns_are_refused_where_written(name):
    text = HEAD + f"layers:\n  - {{name: block, seq: [{{name: {name}, conv: {{out: 4, k: 3}}}}]}}\n"
    with pytest.raises(NetcError) as info:
        loads(text, "n.yaml")
    [d] = info.value.diagnostics
    assert (d.code, d.loc.line, d.loc.col) == ("name", 5, 32), d.format()
    assert repr(name) in d.message


@pytest.mark.parametrize("text, message", [
    ("layers:\n  - {relu: {}, output: a}\n  - relu\noutputs: [out, a, a]\n", "'outputs' names 'a' twice"),
    ("layers:\n  - {relu: {}, output: _a}\n  - {relu: {}, output: out1}\n", "starts with '_'"),
    ("layers:\n  - {side: [relu], name: _a}\n  - relu\n", "starts with '_'"),
    ("layers:\n  - {name: r, repeat: 3, relu: {}, at: {1.0: {}}}\n", "'at' keys are iteration numbers"),
])
def test_outputs_and_iterations_that_crashed_later(text, message):
    with pytest.raises(NetcError) as info:
        loads(HEAD + text, "o.yaml")
    assert message in str(info.value)


# names close to the rule's edges: whatever `check` accepts, build and codegen accept too and
# agree on (state_dict keys, outputs), and the built module survives deepcopy and pickling
EDGE_NAMES = ["self", "_x", "x__", "_add", "_add1", "0", "out", "Training", "to_", "forward_", "self_", "modules_",
              "print", "len", "torch", "nn", "x", "_", "block1-0", "a-", "0-1"]


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_accepted_names_build_and_generate_alike(name, tmp_path):
    import torch

    from tests.conftest import pair

    text = HEAD + (f"layers:\n  - {{name: '{name}', seq: [{{name: '{name}', conv: {{out: 4, k: 3}}}}, relu]}}\n"
                   f"  - {{residual: {{body: {{name: b{name}, conv: {{out: 4, k: 1}}}}}}}}\n"
                   f"  - {{side: [flatten, {{linear: {{out: 2}}}}], output: o{name.strip('_').replace('-', '_') or 'x'}}}\n")
    net = loads(text, "edge.yaml")
    ref, gen = pair(net, tmp_path)
    assert sorted(ref.state_dict()) == sorted(gen.state_dict())  # (their order is issue 12's §2)
    x = torch.randn(2, 3, 8, 8)
    ref.eval(), gen.eval()
    for a, b in zip(ref(x), gen(x)):
        torch.testing.assert_close(a, b)
    clone = pickle.loads(pickle.dumps(ref))
    assert list(copy.deepcopy(ref).state_dict()) == list(clone.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize("name", ["-x", "a.b", "a b", "größe", "x" * 65])
def test_malformed_names_are_refused_where_written(name):
    with pytest.raises(NetcError) as info:
        loads(HEAD + f"layers:\n  - {{name: '{name}', conv: {{out: 4, k: 3}}}}\n", "n.yaml")
    [d] = info.value.diagnostics
    assert (d.code, d.loc.line) == ("schema", 5), d.format()
    assert "letters, digits" in d.message
