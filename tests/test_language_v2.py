"""Language v2 constructs: `$in_c`/`$in_h`/`$in_w`, `from: input` inside a template, `else`,
computed names, `start:`, module templates, list expressions. Expected names and shapes are
read off the spec texts below; outputs are compared with the same arithmetic written in torch."""
import pytest
import torch

import netc
from netc.errors import NetcError
from netc.ir import passes

HEADER = "netc: 1\nname: t\ninput: [3, 16, 16]\n"


def load(body: str, **kw):
    return netc.loads(HEADER + body, **kw)


def test_in_c_sizes_a_template_from_its_input():
    net = load("""
templates:
  Expand:
    args: {factor: 2, out: $in_c * 4}
    body:
      - {name: wide, conv: {out: $in_c * $factor, k: 1}}
      - {name: back, conv: {out: $out, k: 1}}
      - {name: pool, avgpool: {k: "2 if $in_h == 16 else 1"}}
layers:
  - {name: a, conv: {out: 5, k: 3, p: 1}}
  - {name: b, use: Expand}
  - {name: c, use: Expand, args: {factor: 3}}
""")
    shapes = {d.scope: d.shape for _, d in net.nodes()}
    assert shapes["b.wide"] == (10, 16, 16) and shapes["b.back"] == (20, 16, 16)
    assert shapes["b.pool"] == (20, 8, 8)  # $in_h of b is 16
    assert shapes["c.wide"] == (60, 8, 8) and shapes["c.back"] == (80, 8, 8)
    assert shapes["c.pool"] == (80, 8, 8)  # $in_h of c is 8


def test_from_input_inside_a_template_is_the_instance_input():
    net = load("""
templates:
  Dense:
    args: {growth: int}
    body:
      - {name: conv, conv: {out: $growth, k: 3, p: 1}}
      - {cat: {}, from: [input, conv]}
layers:
  - {name: stem, conv: {out: 4, k: 1}}
  - {name: d1, use: Dense, args: {growth: 2}}
  - {name: d2, use: Dense, args: {growth: 2}}
""")
    m = net.build()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        s = m.stem(x)
        d1 = torch.cat([s, torch.nn.functional.conv2d(s, m.d1.conv.weight, m.d1.conv.bias, padding=1)], 1)
        d2 = torch.cat([d1, torch.nn.functional.conv2d(d1, m.d2.conv.weight, m.d2.conv.bias, padding=1)], 1)
        assert torch.equal(m(x), d2)


def test_top_level_from_input_is_still_the_network_input():
    net = load("""
layers:
  - {name: a, conv: {out: 3, k: 1}}
  - {add: {}, from: [input, a]}
""")
    m = net.build()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(m(x), x + m.a(x))


@pytest.mark.parametrize("hs, want", [(True, torch.nn.Hardtanh), (False, torch.nn.ReLU)])
def test_else_takes_the_place_and_name_of_the_if_node(hs, want):
    net = load(f"""
params: {{hs: {str(hs).lower()}}}
layers:
  - {{name: conv, conv: {{out: 4, k: 1}}}}
  - {{if: $hs, name: act, relu6: {{}}, else: relu}}
  - {{if: $hs, relu: {{}}, else: [sigmoid, tanh]}}
""")
    m = net.build()
    assert isinstance(m.act, want) or (hs and type(m.act).__name__ == "ReLU6")
    names = [d.scope for _, d in net.nodes()]
    assert names[:2] == ["conv", "act"]
    assert names[2:] == (["2"] if hs else ["2", "3"])


def test_computed_names_and_start():
    net = load("""
params: {depths: [2, 3]}
templates:
  Layer:
    args: {}
    body:
      - {name: norm, bn: {}}
layers:
  - name: denseblock1
    seq:
      - {name: "denselayer{$i + 1}", repeat: "sum($depths)", use: Layer}
  - {name: stage, repeat: "len($depths)", start: 1, relu: {}}
  - {name: "last_{$depths[-1]}", relu: {}}
""")
    keys = [k for k in net.build().state_dict() if k.endswith("weight")]
    assert keys == [f"denseblock1.denselayer{k}.norm.weight" for k in range(1, 6)]
    scopes = [d.scope for _, d in net.nodes()]
    assert scopes[5:] == ["stage.1", "stage.2", "last_3"]


def test_module_template_instances_take_positions():
    net = load("""
templates:
  Unit:
    module: true
    args: {out: int}
    body:
      - {name: conv, conv: {out: $out, k: 1}}
      - {name: bn, bn: {}}
  Inline:
    args: {}
    body: [relu]
layers:
  - name: features
    seq:
      - {conv: {out: 4, k: 1}}
      - {use: Unit, args: {out: 8}}
      - {use: Inline}
      - {repeat: 2, use: Unit, args: {out: 8}}
""")
    scopes = [d.scope for _, d in net.nodes()]
    assert scopes == ["features.0", "features.1.conv", "features.1.bn", "features.2",
                      "features.3.conv", "features.3.bn", "features.4.conv", "features.4.bn"]


def test_input_shape_is_inferred_once_per_node(monkeypatch):
    calls = []
    real = passes.infer_node
    monkeypatch.setattr("netc.spec.input_shape.infer_node", lambda g, n: (calls.append(n), real(g, n)))
    n = 300
    net = load(f"""
templates:
  Same:
    args: {{}}
    body:
      - {{conv: {{out: $in_c, k: 1}}}}
layers:
  - {{repeat: {n}, use: Same}}
""")
    assert len(calls) == len(set(calls)) <= net.graph.number_of_nodes()
    assert net.params == n * (3 * 3 + 3)


@pytest.mark.parametrize("text, code", [
    ("layers:\n  - {conv: {out: $in_d, k: 1}}\n", "undefined-var"),  # $in_c/h/w are the input (v3)
    ("layers:\n  - {name: 'a{$i}', repeat: 2, else: relu, relu: {}}\n", "schema"),
    ("layers:\n  - {name: '{\"-\"}a', relu: {}}\n", "name"),  # a computed name may not start with "-"
    ("params: {d: [1]}\nlayers:\n  - {relu: {}, repeat: '$d[0:1]'}\n", "schema"),
])
def test_bad_uses(text, code):
    with pytest.raises(NetcError) as exc:
        load(text)
    assert exc.value.codes[0] == code
    assert exc.value.diagnostics[0].loc.line > 0
