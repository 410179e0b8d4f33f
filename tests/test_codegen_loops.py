"""Generated code for the language v2 constructs: runs of children that grow by a step become one
comprehension (DenseNet's `in + i * growth`), repeated terms are counted, `$in_c` is the class's
input channels; the generated model equals the interpreter's and honours its factory arguments."""
import torch

import netc
from netc.backends.codegen.fitting import collect_terms
from tests.conftest import factory, import_source, pair

DENSE = """
netc: 1
name: dense
input: [3, 16, 16]
params: {growth: 4, init: 8}
templates:
  DenseLayer:
    args: {growth: int}
    body:
      - {name: norm, bn: {}}
      - {name: conv, conv: {out: $growth, k: 3, p: 1, bias: false}}
      - {cat: {}, from: [input, conv]}
  Stage:
    args: {k: int, n: int, last: false}
    body:
      - {name: "block{$k}", seq: [{name: "layer{$i + 1}", repeat: $n, use: DenseLayer, args: {growth: $growth}}]}
      - {if: not $last, name: "trans{$k}", seq: [{conv: {out: ($in_c + $n * $growth) // 2, k: 1}}, {avgpool: {k: 2}}]}
layers:
  - name: features
    seq:
      - {name: conv0, conv: {out: $init, k: 3, p: 1}}
      - {use: Stage, args: {k: 1, n: 3}}
      - {use: Stage, args: {k: 2, n: 5, last: true}}
  - gap
  - flatten
  - {name: fc, linear: {out: 10}}
"""


def test_terms_are_counted():
    assert collect_terms("a + g + g + g") == "a + 3 * g"
    assert collect_terms("(a + g) // 2 + g + g") == "(a + g) // 2 + 2 * g"
    assert collect_terms("a - g + g") == "a"
    assert collect_terms("x * 2 * 4") == "x * 2 * 4"
    assert collect_terms("2 * (a // 2) + a // 2") == "3 * (a // 2)"


def test_dense_blocks_are_loops_and_equal_the_interpreter(tmp_path):
    net = netc.loads(DENSE, str(tmp_path / "dense.yaml"))
    source = " ".join(net.codegen().split()).replace("( ", "(").replace(" )", ")")
    assert '(f"layer{i + 1}", DenseLayer(init + i * growth, growth)) for i in range(3)' in source
    assert "for i in range(5)" in source
    assert "growth + growth" not in source
    ref, gen = pair(net, tmp_path)
    assert list(gen.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (gen.eval()(x) - ref.eval()(x)).abs().max().item() <= 1e-5


def test_loop_factory_arguments_change_the_model_as_set_does(tmp_path):
    mod = import_source(netc.loads(DENSE, str(tmp_path / "dense.yaml")).codegen(), tmp_path)
    for growth, init in [(3, 5), (6, 16)]:
        want = netc.loads(DENSE, str(tmp_path / "dense.yaml"), {"growth": growth, "init": init})
        with torch.device("meta"):
            got = factory(mod)(growth=growth, init=init)
        assert sum(p.numel() for p in got.parameters()) == want.params
        assert list(got.state_dict()) == list(want.build(device="meta").state_dict())


CHOICES = """
netc: 1
name: choices
input: [3, 16, 16]
params: {width: 8}
templates:
  Block:
    module: true
    args: {out: int, hs: false, se: false}
    body:
      - {name: conv, conv: {out: $out, k: 3, p: 1, bias: false}}
      - {name: bn, bn: {}}
      - {if: $hs, name: act, hardswish: {}, else: relu}
      - {if: $se, name: se, conv: {out: $out, k: 1}}
layers:
  - name: features
    seq:
      - {conv: {out: $width, k: 3, p: 1}}
      - {use: Block, args: {out: $width}}
      - {use: Block, args: {out: $width * 2, hs: true}}
      - {use: Block, args: {out: $width * 2, hs: true, se: true}}
      - {use: Block, args: {out: $width * 2, se: true}}
"""


def test_if_else_variants_share_one_class(tmp_path):
    """Instances that differ by an `if:`/`else:` choice and an optional module are one class,
    each variant built under the spec's condition, as torchvision writes such blocks."""
    net = netc.loads(CHOICES, str(tmp_path / "choices.yaml"))
    source = net.codegen()
    assert source.count("class Block") == 1
    flat = " ".join(source.split())
    assert "if hs: self.act = nn.Hardswish() else: self.act = nn.ReLU()" in flat
    assert "self.se = None if se: self.se = nn.Conv2d(out, out, kernel_size=1)" in flat
    ref, gen = pair(net, tmp_path)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (gen.eval()(x) - ref.eval()(x)).abs().max().item() <= 1e-5
    assert [type(m.act).__name__ for m in gen.features[1:]] == ["ReLU", "Hardswish", "Hardswish", "ReLU"]
