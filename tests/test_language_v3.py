"""Language v3: references as expressive as names (patterns, expressions, dotted paths to unnamed
children), nested repeats that name their index, `from:` on a repeat, joins that take no module
position, and the standard library (`lib: netc/NAME`, `--lib`, `NETC_PATH`). Expected names are
read off the spec texts below, expected values computed in torch from the built module's own
weights, and the library's ResNet checked against torchvision's."""
import json
import os
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import netc
from netc.errors import NetcError

HEADER = "netc: 1\nname: t\ninput: [4, 8, 8]\n"


def load(body: str, **kw):
    return netc.loads(HEADER + body, **kw)


def error_of(body: str, **kw):
    with pytest.raises(NetcError) as info:
        load(body, **kw)
    return info.value.diagnostics[0]


def conv(m, x, p=0):
    return F.conv2d(x, m.weight, m.bias, padding=p)


def inputs_of(net, scope):
    node = next(d for _, d in net.nodes() if d.scope == scope)
    by_id = dict(net.nodes())
    return [by_id[i].scope if i in by_id else "input" for i in node.inputs]


def test_from_takes_a_name_pattern_and_an_expression():
    net = load("""
params: {srcs: [a, b]}
layers:
  - {name: a, conv: {out: 4, k: 1}}
  - {name: b, conv: {out: 4, k: 1}}
  - {name: "p{$i}", repeat: 2, conv: {out: 4, k: 1}, from: "$srcs[$i]"}
  - {name: "q{$i}", repeat: 2, conv: {out: 4, k: 1}, from: "p{$i}"}
  - {add: {}, from: [q0, q1]}
""")
    assert inputs_of(net, "p0") == ["a"] and inputs_of(net, "p1") == ["b"]
    assert inputs_of(net, "q0") == ["p0"] and inputs_of(net, "q1") == ["p1"]
    m = net.build()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        a = conv(m.a, x)
        b = conv(m.b, a)
        want = conv(m.q0, conv(m.p0, a)) + conv(m.q1, conv(m.p1, b))
        assert torch.allclose(m(x), want, atol=1e-6)


def test_an_expression_may_give_a_list_of_names():
    net = load("""
params: {joined: [a, b]}
layers:
  - {name: a, conv: {out: 2, k: 1}}
  - {name: b, conv: {out: 3, k: 1}}
  - {cat: {}, from: $joined}
""")
    assert [d.shape for _, d in net.nodes()][-1] == (5, 8, 8)


def test_nested_repeats_name_their_index_and_see_the_outer_one():
    net = load("""
layers:
  - repeat: 2
    seq:
      - {name: "conv{$i + 2}_{$j + 1}", repeat: 3, index: j, conv: {out: "4 + $i", k: 1}}
""")
    got = [(d.scope, d.shape[0]) for _, d in net.nodes()]
    assert got == [("conv2_1", 4), ("conv2_2", 4), ("conv2_3", 4), ("conv3_1", 5), ("conv3_2", 5), ("conv3_3", 5)]


def test_an_inner_repeat_without_index_shadows_i():
    d = error_of("""
layers:
  - repeat: 2
    seq: [{name: "c{$i}", repeat: 1, conv: {out: 4, k: 1}}]
""")
    assert d.code == "name" and "duplicate name 'c0'" in d.message  # the inner $i is 0 in both outer iterations


def test_from_on_a_repeat_feeds_its_first_iteration():
    net = load("""
layers:
  - {name: a, conv: {out: 4, k: 1}}
  - {name: b, conv: {out: 4, k: 1}}
  - {name: r, repeat: 3, conv: {out: 4, k: 1}, from: input}
  - {add: {}, from: [b, r]}
""")
    assert inputs_of(net, "r.0") == ["input"] and inputs_of(net, "r.1") == ["r.0"] and inputs_of(net, "r.2") == ["r.1"]
    m = net.build()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        r = conv(m.r[2], conv(m.r[1], conv(m.r[0], x)))
        assert torch.allclose(m(x), conv(m.b, conv(m.a, x)) + r, atol=1e-6)


def test_a_from_that_uses_the_index_feeds_every_iteration():
    net = load("""
layers:
  - {name: a, conv: {out: 4, k: 1}}
  - {name: "r{$i}", repeat: 2, conv: {out: 4, k: 1}, from: "'a' if $i == 0 else 'input'"}
  - {add: {}, from: [r0, r1]}
""")
    assert inputs_of(net, "r0") == ["a"] and inputs_of(net, "r1") == ["input"]


def test_a_dotted_path_reaches_an_unnamed_child():
    net = load("""
layers:
  - {name: convs, seq: [{conv: {out: 4, k: 1}}, relu, {conv: {out: 4, k: 1}}]}
  - {name: tap, conv: {out: 4, k: 1}, from: convs.0}
  - {add: {}, from: [convs, tap]}
""")
    assert inputs_of(net, "tap") == ["convs.0"]
    m = net.build()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        c0 = conv(m.convs[0], x)
        want = conv(m.convs[2], F.relu(c0)) + conv(m.tap, c0)
        assert torch.allclose(m(x), want, atol=1e-6)


def test_joins_take_no_module_position_as_in_pytorch():
    net = load("""
layers:
  - name: body
    seq:
      - {name: "0", conv: {out: 4, k: 1}}
      - {add: {}, from: [input, "0"]}
      - {conv: {out: 4, k: 1}}
      - {mul: {}, from: [input, body.1]}
      - {conv: {out: 4, k: 1}}
""")
    m = net.build()
    # the numbering nn.Sequential gives three convs: the add and mul are functions there
    oracle = torch.nn.Sequential(*(torch.nn.Conv2d(4, 4, 1) for _ in range(3)))
    assert [k for k in m.state_dict()] == ["body." + k for k in oracle.state_dict()]


def test_the_innermost_scope_wins_and_references_may_point_forward():
    net = load("""
layers:
  - {name: x, conv: {out: 4, k: 1}}
  - name: blk
    seq:
      - {name: x, conv: {out: 4, k: 1}}
      - {name: a, add: {}, from: [x, later]}
      - {name: later, conv: {out: 4, k: 1}, from: blk.x}
      - {name: out, conv: {out: 4, k: 1}, from: a}
""")
    assert inputs_of(net, "blk.a") == ["blk.x", "blk.later"] and inputs_of(net, "blk.later") == ["blk.x"]
    assert inputs_of(net, "blk.x") == ["x"]


def test_a_wrong_reference_is_located_with_a_fitting_hint():
    d = error_of("""
layers:
  - {name: convs, seq: [{conv: {out: 4, k: 1}}]}
  - {relu: {}, from: convs.1}
""")
    assert d.code == "ref" and "'convs.1'" in d.message and (d.loc.line, d.loc.col) == (7, 22)
    assert "convs.0" in d.hint
    d = error_of("""
layers:
  - {name: "r{$i}", repeat: 2, conv: {out: 4, k: 1}}
  - {relu: {}, from: "r{$i + 5}"}
""")
    assert d.code == "undefined-var" and (d.loc.line, d.loc.col) == (7, 22)
    d = error_of("""
params: {n: 3}
layers:
  - {relu: {}, from: $n}
""")
    assert d.code == "ref" and "3" in d.message and "not a layer name" in d.message
    assert (d.loc.line, d.loc.col) == (7, 22)


def test_index_goes_with_repeat():
    d = error_of("layers:\n  - {index: j, conv: {out: 4, k: 1}}\n")
    assert d.code == "schema" and "'index'" in d.message


def test_in_c_h_w_at_top_level_are_the_network_input():
    text = """netc: 1
name: t
input: [3, 16, 24]
vars: {pooled: $in_h // 4}
layers:
  - {name: c, conv: {out: $in_c * 2, k: 1}}
  - {name: p, maxpool: {k: 4}}
  - {name: up, upsample: {size: [$in_h, $in_w]}}
  - {name: fc, conv: {out: $pooled, k: 1}}
"""
    for shape in [(3, 16, 24), (5, 32, 8)]:
        net = netc.loads(text, input_shape=shape)
        got = {d.scope: d.shape for _, d in net.nodes()}
        assert got["c"] == (2 * shape[0], *shape[1:]) and got["up"] == (2 * shape[0], *shape[1:])
        assert got["fc"] == (shape[1] // 4, *shape[1:])
    d = pytest.raises(NetcError, netc.loads, "netc: 1\nname: t\ninput: [8]\nlayers: [{linear: {out: $in_h}}]\n")
    assert d.value.diagnostics[0].code == "undefined-var" and "network's input is 8" in d.value.diagnostics[0].message


# --- the standard library -----------------------------------------------------------------------------

def resnet50_spec(dilate: tuple[bool, bool, bool], imports: str = "[{lib: netc/resnet}]") -> str:
    """torchvision's _make_layer: a dilated stage's first block keeps the previous dilation and stride 1."""
    lines, dilation, inplanes = [], 1, 64
    for k, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        stride, previous = (1 if k == 0 else 2), dilation
        if k and dilate[k - 1]:
            dilation, stride = dilation * stride, 1
        down = str(stride != 1 or inplanes != planes * 4).lower()
        lines.append(f"  - {{name: layer{k + 1}, repeat: {blocks}, use: Bottleneck, args: {{planes: {planes}, "
                     f"dilation: {dilation}}}, first: {{stride: {stride}, down: {down}, dilation: {previous}}}}}")
        inplanes = planes * 4
    return ("netc: 1\nname: r50\ninput: [3, 64, 64]\nparams: {num_classes: 1000}\n"
            f"imports: {imports}\nlayers:\n  - use: Stem\n" + "\n".join(lines) + "\n  - use: Head\n")


@pytest.mark.parametrize("dilate", [(False, False, False), (False, True, True)])
def test_the_library_bottleneck_is_torchvisions_with_dilation(tmp_path, dilate):
    torchvision = pytest.importorskip("torchvision")
    (tmp_path / "net.yaml").write_text(resnet50_spec(dilate))
    m = netc.load(tmp_path / "net.yaml").build().eval()
    ref = torchvision.models.resnet50(replace_stride_with_dilation=list(dilate)).eval()
    m.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x), atol=1e-5)


LIB = """netc: 1
templates:
  Pair:
    args: {c: int}
    body: [{name: a, conv: {out: $c, k: 1}}, {name: b, conv: {out: $c, k: 1}}]
"""


def user_spec(folder, imports="[{lib: mylib/blocks}]"):
    folder.mkdir(exist_ok=True)
    path = folder / "net.yaml"
    path.write_text(HEADER + f"imports: {imports}\nlayers:\n  - {{name: p, use: Pair, args: {{c: 6}}}}\n")
    return path


@pytest.fixture
def library(tmp_path):
    (tmp_path / "libs" / "mylib").mkdir(parents=True)
    (tmp_path / "libs" / "mylib" / "blocks.yaml").write_text(LIB)
    return tmp_path / "libs"


def test_a_user_library_is_found_on_lib_dirs_and_netc_path(tmp_path, library, monkeypatch):
    spec = user_spec(tmp_path / "project")
    monkeypatch.delenv("NETC_PATH", raising=False)
    d = pytest.raises(NetcError, netc.load, spec).value.diagnostics[0]
    assert d.code == "import" and "mylib/blocks" in d.message and "--lib" in d.hint and d.loc.line == 4
    net = netc.load(spec, limits=netc.api.Limits(lib_path=(str(library),)))
    assert [d.scope for _, d in net.nodes()] == ["p.a", "p.b"]
    assert [d.scope for _, d in net.recompile({}).nodes()] == ["p.a", "p.b"]  # the spec keeps its --lib
    assert "class Pair" in net.codegen()  # the library template becomes a class of the generated code
    monkeypatch.setenv("NETC_PATH", os.pathsep.join([str(tmp_path / "elsewhere"), str(library)]))
    assert [d.shape for _, d in netc.load(spec).nodes()][-1] == (6, 8, 8)


def test_the_library_keeps_files_confined(tmp_path, library, monkeypatch):
    monkeypatch.setenv("NETC_PATH", str(library))
    (tmp_path / "secret.yaml").write_text(LIB)
    (library / "mylib" / "escape.yaml").symlink_to(tmp_path / "secret.yaml")
    d = pytest.raises(NetcError, netc.load, user_spec(tmp_path / "p1", "[{lib: mylib/escape}]")).value.diagnostics[0]
    assert d.code == "import" and "no library 'mylib/escape'" in d.message
    d = pytest.raises(NetcError, netc.load, user_spec(tmp_path / "p2", "[{lib: ../secret}]")).value.diagnostics[0]
    assert d.code == "schema" and "'..'" in d.message
    # a `file:` import is still confined to the spec's folder, whatever the library path
    d = pytest.raises(NetcError, netc.load, user_spec(tmp_path / "p3", "[{file: ../secret.yaml}]")).value.diagnostics[0]
    assert d.code == "import" and "directory" in d.message and "lib:" in d.hint


def test_the_bundled_library_is_importable_from_any_folder(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(HEADER + "imports: [{lib: netc/mobile}]\nlayers:\n  - {name: b, use: ConvBNAct, args: {out: 8}}\n")
    assert [d.scope for _, d in netc.load(path).nodes()][:2] == ["b.0", "b.1"]
    path.write_text(HEADER + "imports: [{lib: netc/mobil}]\nlayers: [relu]\n")
    d = pytest.raises(NetcError, netc.load, path).value.diagnostics[0]
    assert d.code == "import" and "netc/mobile" in d.hint


def test_lib_on_the_command_line(tmp_path, library, netc_cli, monkeypatch):
    monkeypatch.delenv("NETC_PATH", raising=False)
    spec = user_spec(tmp_path / "project")
    code, _, err = netc_cli("check", "-q", spec)
    assert code == 2 and "error[import]" in err and "Traceback" not in err
    code, out, err = netc_cli("check", "--lib", library, spec)
    assert code == 0 and "p.b" in out or code == 0, err


# --- docs/language.md: every example compiles, every function and key is documented ---------------------

DOC = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```yaml\n(.*?)```", DOC, re.S)


@pytest.mark.parametrize("text", EXAMPLES, ids=[re.search(r"name: (\w+)", t).group(1) for t in EXAMPLES])
def test_every_example_of_the_language_reference_compiles(text):
    expected = re.match(r"# error\[([\w-]+)\]", text)
    if expected is None:
        assert netc.loads(text, "language.md").params >= 0
        return
    with pytest.raises(NetcError) as info:
        netc.loads(text, "language.md")
    assert info.value.diagnostics[0].code == expected.group(1)


def test_the_reference_documents_every_function_and_key():
    from netc.expr import FUNCTIONS, LIST_FUNCTIONS
    from netc.spec.model import Import, NodeBase, Spec, Template

    rows = set(re.findall(r"^\| `(\w+)`", DOC, re.M)) | set(re.findall(r"^\| `\w+`, `(\w+)`", DOC, re.M))
    assert set(FUNCTIONS) | set(LIST_FUNCTIONS) <= rows
    for model in (Spec, NodeBase, Template, Import):
        keys = {f.alias or n for n, f in model.model_fields.items()}
        assert not {k for k in keys if f"`{k}`" not in DOC and f"{k}:" not in DOC}, model.__name__


def test_the_reference_lists_every_library_file():
    listed = set(re.findall(r"^\| `netc/(\w+)`", DOC, re.M))
    assert listed == {p.stem for p in (Path(__file__).resolve().parent.parent / "specs" / "lib").glob("*.yaml")}


def test_importing_some_templates_brings_the_templates_they_use(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(HEADER + "imports: [{lib: netc/resnet, templates: [BasicBlock]}]\n"
                    "layers:\n  - {name: b, use: BasicBlock, args: {planes: 8, down: true, stride: 2}}\n")
    scopes = [d.scope for _, d in netc.load(path).nodes()]
    assert "b.downsample.0" in scopes  # BasicBlock's shortcut is the library's Shortcut template
    path.write_text(HEADER + "imports: [{lib: netc/resnet, templates: [BasicBlok]}]\nlayers: [relu]\n")
    d = pytest.raises(NetcError, netc.load, path).value.diagnostics[0]
    assert d.code == "import" and "has no template 'BasicBlok'" in d.message and "BasicBlock" in d.hint


@pytest.mark.parametrize("v", [3, 7.5, 12, 15.9, 16, 20, 27.99, 32 * 0.75, 100.0, 1001.3])
@pytest.mark.parametrize("divisor, min_value", [(8, None), (4, None), (8, 16)])
def test_make_divisible_rounds_as_torchvision_does(v, divisor, min_value):
    from torchvision.models._utils import _make_divisible

    from netc.expr import evaluate
    text = f"make_divisible($v, {divisor}" + (f", {min_value})" if min_value else ")")
    assert evaluate(text, {"v": v}) == _make_divisible(v, divisor, min_value)


@pytest.mark.parametrize("text, want", [  # the rounding rules docs/language.md states, from Python's own
    ("round(2.5)", round(2.5)), ("round(3.5)", 4), ("round(2.675, 2)", round(2.675, 2)), ("int(-2.7)", -2),
    ("ceil(-2.5)", -2), ("floor(-2.5)", -3), ("-7 // 2", -4), ("-7 % 3", 2), ("7 / 2", 3.5),
])
def test_the_documented_rounding_rules(text, want):
    from netc.expr import evaluate
    assert evaluate(text, {}) == want


@pytest.mark.parametrize("text", [t for t in EXAMPLES if not t.startswith("# error")],
                         ids=[re.search(r"name: (\w+)", t).group(1) for t in EXAMPLES if not t.startswith("# error")])
def test_generated_code_of_every_reference_example_computes_what_the_interpreter_does(text, tmp_path):
    from tests.conftest import pair

    net = netc.loads(text, "language.md")
    ref, gen = pair(net, tmp_path)
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        want, got = ref.eval()(x), gen.eval()(x)
    for a, b in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
        assert torch.equal(a, b)


def test_generated_code_of_top_level_input_sizes(tmp_path):
    from tests.conftest import pair

    net = netc.loads("""netc: 1
name: t
input: [3, 16, 16]
params: {w: 2}
vars: {g: $in_h // 4}
layers:
  - {name: a, conv: {out: $in_c * $w, k: 1}}
  - {if: "$in_c > 2", name: b, conv: {out: $in_c, k: 3, p: 1}}
  - {name: blk, seq: [{conv: {out: 8, k: 1}}, {conv: {out: "$in_c + 1", k: 1}}]}
  - {name: p, adaptive_avgpool: {out: $g}}
  - {name: u, upsample: {size: [$in_h, $in_w]}}
""")
    ref, gen = pair(net, tmp_path)  # same state_dict keys and shapes: blk.1 has 3 + 1 channels, not 8 + 1
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(ref.eval()(x), gen.eval()(x))


def test_every_reference_example_and_library_file_validates_against_the_json_schema():
    import jsonschema

    from netc.schema import json_schema
    from netc.spec.yamlload import load_yaml
    validator = jsonschema.Draft202012Validator(json_schema())
    docs = [load_yaml(t, "language.md") for t in EXAMPLES]
    libs = [load_yaml(p.read_text(), str(p)) for p in (Path(__file__).resolve().parent.parent / "netc/stdlib").glob("*.yaml")]
    assert len(libs) >= 8
    for doc in docs + libs:
        assert not [e.message for e in validator.iter_errors(json.loads(json.dumps(doc)))]
