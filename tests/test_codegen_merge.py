"""Instances of a template that differ only by which items the spec writes under `if:` share one
class, written as torchvision writes such blocks: an activation chosen by a string argument
(`if act == "relu":`), an inline nn.Sequential built from a list with conditional appends (its
positional names shift as the interpreter's do), a residual join under `if self.use_res_connect:`;
the merged class equals the interpreter for every instance, in state_dict order, and scripts."""
import torch

import netc
from netc.backends.codegen.names import RUNTIME
from tests.conftest import factory, import_source, pair

MOBILE = """
netc: 1
name: mobile
input: [3, 16, 16]
params: {width: 8}
templates:
  ConvBNAct:
    module: true
    args: {out: int, k: 3, s: 1, groups: 1, act: relu}
    body:
      - {conv: {out: $out, k: $k, s: $s, p: ($k - 1) // 2, groups: $groups, bias: false}}
      - bn
      - {if: "$act == 'relu'", relu: {inplace: true}}
      - {if: "$act == 'hardswish'", hardswish: {inplace: true}}
  Gate:
    module: true
    args: {squeeze: int}
    body:
      - {name: avgpool, gap: {}}
      - {name: fc1, conv: {out: $squeeze, k: 1}}
      - {name: fc2, conv: {out: $in_c, k: 1}}
      - {name: scale_activation, hardsigmoid: {}}
      - {mul: {}, from: [scale_activation, input]}
  Block:
    module: true
    args: {exp: int, out: int, se: bool, act: str, s: 1, wide: false}
    body:
      - name: block
        seq:
          - {if: "$exp != $in_c", use: ConvBNAct, args: {out: $exp, k: 1, act: $act}}
          - {use: ConvBNAct, args: {out: $exp, s: $s, groups: $exp, act: $act}}
          - {if: $se, use: Gate, args: {squeeze: "max(2, $exp // 4)"}}
          - {if: "make_divisible($exp) > 16", use: ConvBNAct, args: {out: $exp, k: 1}}
          - {use: ConvBNAct, args: {out: $out, k: 1, act: none}}
      - {if: "$s == 1 and $in_c == $out", add: {}, from: [block, input]}
layers:
  - name: features
    seq:
      - {use: ConvBNAct, args: {out: $width, s: 2, act: hardswish}}
      - {use: Block, args: {exp: $width, out: $width, se: false, act: relu}}
      - {use: Block, args: {exp: $width * 3, out: 12, se: false, act: relu, s: 2}}
      - {use: Block, args: {exp: 24, out: 12, se: true, act: hardswish}}
      - {use: Block, args: {exp: 12, out: 16, se: true, act: hardswish}}
  - gap
  - flatten
  - {name: fc, linear: {out: 10}}
"""


def flat(source: str) -> str:
    return " ".join(source.split()).replace("( ", "(").replace(" )", ")").replace(",)", ")")


def test_optional_items_share_one_class_per_template(tmp_path):
    net = netc.loads(MOBILE, str(tmp_path / "mobile.yaml"))
    source = net.codegen()
    classes = [c for c in (ln.split("(")[0][6:] for ln in source.splitlines() if ln.startswith("class "))
               if c not in RUNTIME]
    assert classes == ["ConvBNAct", "Gate", "Block", "Mobile"]
    text = flat(source)
    # the activation: a string argument and the spec's own conditions
    assert 'groups=1, act="relu"):' in text
    assert 'self.relu = None if act == "relu": self.relu = nn.ReLU(inplace=True)' in text
    assert "if self.hardswish is not None: x = self.hardswish(x)" in text
    # the inline Sequential: a list with conditional appends
    assert "layers = [] if exp != in_channels: layers.append(ConvBNAct(in_channels, exp, k=1, act=act))" in text
    assert "if se: layers.append(Gate(exp, max(2, exp // 4)))" in text
    assert "self.block = nn.Sequential(*layers)" in text
    # a condition Python cannot compute (make_divisible) is a boolean argument of the class
    assert "if arg0: layers.append(ConvBNAct(exp, exp, k=1))" in text
    # the residual: a flag set from the spec's condition, tested in the forward
    assert "self.use_res_connect = s == 1 and in_channels == out" in text
    assert "block = self.block(x) if self.use_res_connect: block = block + x return block" in text
    # an argument the use leaves at its default is the default, not a name that equals it here
    assert "ConvBNAct(exp, out, k=1, act=\"none\")" in text


def test_merged_classes_equal_the_interpreter(tmp_path):
    net = netc.loads(MOBILE, str(tmp_path / "mobile.yaml"))
    ref, gen = pair(net, tmp_path)
    assert list(gen.state_dict()) == list(ref.state_dict())
    assert [len(b.block) for b in gen.features[1:]] == [2, 4, 5, 3]
    assert [b.use_res_connect for b in gen.features[1:]] == [True, False, True, False]
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref.eval()(x)
        assert (gen.eval()(x) - want).abs().max().item() <= 1e-5
        assert (torch.jit.script(gen)(x) - want).abs().max().item() <= 1e-5
        assert (torch.fx.symbolic_trace(gen)(x) - want).abs().max().item() <= 1e-5
    for a, b in zip(gen.features, ref.features):  # each instance, alone
        with torch.no_grad():
            y = torch.randn(1, a_in(b), 8, 8, generator=torch.Generator().manual_seed(2))
            assert (a.eval()(y) - b.eval()(y)).abs().max().item() <= 1e-5


def a_in(module) -> int:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


def test_factory_argument_changes_structure_as_set_does(tmp_path):
    """`width` decides which items exist (exp != in_c, the residual): the class decides it the same way."""
    mod = import_source(netc.loads(MOBILE, str(tmp_path / "mobile.yaml")).codegen(), tmp_path)
    for width in (12, 9):
        want = netc.loads(MOBILE, str(tmp_path / "mobile.yaml"), {"width": width})
        with torch.device("meta"):
            got = factory(mod)(width=width)
        assert list(got.state_dict()) == list(want.build(device="meta").state_dict())
        assert sum(p.numel() for p in got.parameters()) == want.params
