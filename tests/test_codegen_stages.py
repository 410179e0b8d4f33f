"""The code generator's stages, each alone: spec index, scope tree, drafted instances and their
forward, fitting, merged and fitted classes, the file, and the exactness check of factory
arguments (netc/backends/codegen/*.py). End-to-end behaviour is in test_codegen.py."""
from __future__ import annotations

import pytest

import netc
from netc.backends.codegen.exact import alternatives, exact_generator
from netc.backends.codegen.fitting import IN, NOTHING, Hole, fit_holes, influences
from netc.backends.codegen.forward import forward, render_forward
from netc.backends.codegen.instances import Drafter
from netc.backends.codegen.merge import merge
from netc.backends.codegen.pipeline import Generator
from netc.backends.codegen.scopes import scope_tree
from netc.backends.codegen.source import doc_text, init_loop
from netc.backends.codegen.spec_index import SpecIndex
from netc.ops import REGISTRY
from tests.conftest import ROOT, SPECS

PARAMS = ROOT / "tests" / "fixtures" / "params"

VARS = """
netc: 1
name: widths
input: [3, 8, 8]
params: {base: 8, mult: 1.5}
vars: {c2: "ceil($base * $mult)", c3: "make_divisible($base * 3, 8)"}
layers:
  - {conv: {out: $c2, k: 1}}
  - {conv: {out: $c3, k: 1}}
"""


def box(root, scope):
    """The box of a scope (`layer1.0`) in a scope tree."""
    b = root
    for part in scope.split("."):
        b = next(c for c in b.children if c.local == part)
    return b


def drafter_for(net, fixed=()):
    from netc.backends.torch.module import output_order

    index = SpecIndex(net, fixed)
    return index, Drafter(net, index, output_order(net))


# --- spec index ---------------------------------------------------------------------------

def test_index_keeps_params_python_can_compute_and_taints_the_others(tmp_path):
    spec = tmp_path / "widths.yaml"
    spec.write_text(VARS, encoding="utf-8")
    index = SpecIndex(netc.load(spec))
    assert index.var_text["c2"] == "ceil(base * mult)"
    assert "c3" not in index.var_text and index.tainted == {"base"}  # make_divisible has no Python twin
    assert SpecIndex(netc.load(spec), fixed={"mult"}).tainted == {"base", "mult"}


def test_index_env_of_a_block_holds_its_template_args_and_input_channels():
    net = netc.load(SPECS / "resnet50.yaml")
    index = SpecIndex(net)
    env = index.env_of(box(scope_tree(net), "layer2.0"))
    assert env["planes"] == 128 and env["stride"] == 2 and env["project"] is True
    assert env[IN] == 256 and env["width"] == 64


def test_index_lifts_expressions_through_unnamed_template_uses():
    """lib/resnet.yaml's BasicBlock uses Shortcut unnamed: `$out` inside it is `planes` outside."""
    net = netc.load(SPECS / "resnet18.yaml")
    index = SpecIndex(net)
    nid = next(n for n, d in net.nodes() if d.scope == "layer2.0.downsample.0")
    via = net.graph.node(nid).via
    assert "planes" in index.lift(["out"], via)


# --- scope tree ----------------------------------------------------------------------------

def test_scope_tree_orders_items_and_finds_chains():
    root = scope_tree(netc.load(SPECS / "resnet18.yaml"))
    assert [c.local for c in root.children] == ["layer1", "layer2", "layer3", "layer4"]
    layer2 = box(root, "layer2")
    assert layer2.chain and not box(root, "layer2.0").chain  # a repeat is a Sequential, a block a class
    assert box(root, "layer2.0.downsample").chain
    assert [kind for kind, _ in box(root, "layer2.0").items][:2] == ["op", "op"]


# --- instances and their forward -------------------------------------------------------------

def test_draft_has_a_hole_per_constructor_value_with_the_spec_expression():
    net = netc.load(PARAMS / "resnext.yaml")
    _, drafter = drafter_for(net)
    member = drafter.draft(box(scope_tree(net), "layer1.1"))
    init = dict(member.init)
    assert init[("op", "conv2")].startswith("self.conv2 = nn.Conv2d(")
    # groups=1 is torch's default, yet the spec writes `$groups`: a keyword hole, not dropped
    groups = next(h for h in member.holes if h.kwarg == "groups")
    assert groups.value == 1 and groups.default == 1 and groups.cands == ["groups"]


def test_influences_finds_a_keyword_left_out_at_its_default():
    op = REGISTRY["conv"]
    attrs = op.Attrs(out=8, k=3, groups=1)
    ms = op.module(attrs, [(8, 4, 4)])
    assert "groups" not in ms.kwargs
    found = influences(op, attrs, [(8, 4, 4)], ms)
    assert found["groups"] == ["groups"] and found[1] == ["out"] and found[0] == [IN]


def test_forward_lines_reuse_variables_and_join_inline():
    net = netc.load(SPECS / "resnet18.yaml")
    _, drafter = drafter_for(net)
    b = box(scope_tree(net), "layer2.0")
    member = drafter.draft(b)
    lines, tail = forward(net.graph.node_table(), b, member.attr_of, drafter.outputs, drafter.pos)
    texts = [ln.text for ln in lines]
    assert texts[0] == "out = self.conv1(x)" and "out = out + x" in texts and tail == ["return out"]
    down = next(ln for ln in lines if ln.key == ("box", "downsample"))
    assert down.text == "x = self.downsample(x)" and down.passthrough
    body = render_forward(lines, tail, {("box", "downsample"): "self.downsample is not None"})
    assert "if self.downsample is not None:\n    x = self.downsample(x)" in body


# --- fitting -------------------------------------------------------------------------------

class Inst:
    def __init__(self, env, holes):
        self.env, self.holes = env, holes


def test_fit_holes_prefers_an_expression_every_instance_agrees_with():
    a = Inst({"planes": 64, "stride": 1}, [Hole(256, ["planes * 4", "stride"]), Hole(3, [])])
    b = Inst({"planes": 128, "stride": 2}, [Hole(512, ["planes * 4"]), Hole(3, [])])
    texts, used, extra = fit_holes([a, b], {"planes": "int", "stride": 1})
    assert [(k, v) for k, v, _ in texts] == [("expr", "planes * 4"), ("lit", 3)]
    assert used == ["planes"] and extra == []


def test_fit_holes_falls_back_to_an_argument_when_nothing_explains_the_values():
    a = Inst({"k": 3}, [Hole(5, [])])
    b = Inst({"k": 3}, [Hole(7, [])])
    texts, used, extra = fit_holes([a, b], {"k": 3})
    assert [(k, v) for k, v, _ in texts] == [("param", "arg0")] and extra == [("arg0", [5, 7])]
    c = Inst({"k": 5}, [Hole(5, [])])
    d = Inst({"k": 7}, [Hole(7, [])])
    assert [v for _, v, _ in fit_holes([c, d], {"k": 3})[0]] == ["k"]  # a template argument that does


# --- classes -------------------------------------------------------------------------------

def test_merge_makes_a_projection_optional_under_the_spec_condition():
    net = netc.load(SPECS / "resnet50.yaml")
    _, drafter = drafter_for(net)
    root = scope_tree(net)
    first, other = drafter.draft(box(root, "layer1.0")), drafter.draft(box(root, "layer1.1"))
    key, members = merge([[first], [other]], drafter.condition_cands)
    assert len(members) == 2 and "self.downsample = None" in key[1]
    assert "if self.downsample is not None:" in key[2]
    cond = [h for h in members[0].holes if h is not None and h.cands == ["project"]]
    assert cond and cond[0].value is True
    assert merge([[first]] * 2, drafter.condition_cands) is None  # nothing optional: no merge


def test_classes_take_what_fitting_needs_and_the_network_class_comes_last():
    gen = Generator(netc.load(SPECS / "resnet50.yaml")).build()
    classes = gen.classes.classes
    assert [c.name for c in classes] == ["Bottleneck", "Resnet50"]
    assert [(p, d) for _, p, d in classes[0].params] == [("in_channels", NOTHING), ("planes", NOTHING),
                                                          ("stride", 1), ("project", False)]
    assert gen.exposed == ["num_classes", "width"] and gen.classes.fixed == []


# --- the file ------------------------------------------------------------------------------

def test_init_loop_writes_the_spec_scheme_as_torchvision_does():
    net = netc.load(SPECS / "resnet50.yaml")
    _, drafter = drafter_for(net)
    lines, fnmatch = init_loop(net, drafter.callee_of)
    assert lines[0] == "for m in self.modules():" and not fnmatch
    assert any("nn.init.kaiming_normal_(m.weight, mode='fan_out'" in ln for ln in lines)
    assert "    if isinstance(m, nn.Conv2d):" in lines


def test_doc_text_cannot_close_a_docstring():
    assert '"""' not in doc_text('end """ here') and "\n" not in doc_text("a\nb")


def test_fingerprint_hides_the_values_of_this_compile():
    net = netc.load(SPECS / "resnet50.yaml")
    a = Generator(net).build()
    b = Generator(net.recompile({"num_classes": 10, "width": 32})).build()
    assert a.fingerprint() == b.fingerprint()
    assert "num_classes=_" in a.fingerprint() and "num_classes=1000" in a.generate()
    assert Generator(netc.load(SPECS / "resnet18.yaml")).build().fingerprint() != a.fingerprint()


# --- exactness of factory arguments -----------------------------------------------------------

def test_alternatives_are_nearby_values_of_the_same_kind():
    net = netc.load(PARAMS / "switches.yaml")
    assert alternatives(net, "mix") == [False]
    assert alternatives(net, "width")[:2] == [9, 16]
    assert all(isinstance(v, float) and v != 0.2 for v in alternatives(net, "dropout"))


def test_recompile_is_load_with_overrides():
    path = PARAMS / "resnext.yaml"
    kw = {"groups": 32, "width_per_group": 4}
    a, b = netc.load(path).recompile(kw), netc.load(path, overrides=kw)
    assert a.params == b.params == 25_028_904 and a.env == b.env


@pytest.mark.parametrize("name, fixed", [("depths", {"depth", "depth2"}), ("switches", {"mix", "project_all"}),
                                         ("resnext", set())])
def test_params_that_change_the_code_are_fixed(name, fixed):
    net = netc.load(PARAMS / f"{name}.yaml")
    gen = exact_generator(net)
    assert {p for p, _ in gen.classes.fixed} == fixed
    assert not fixed & set(gen.exposed)


def test_fitting_alone_would_expose_a_repeat_count():
    """`depth` sets a conv width (fitted as an expression) and a repeat count (a literal
    range(2)): one compile's fitting exposes it; the check against other compiles fixes it."""
    net = netc.load(PARAMS / "depths.yaml")
    assert "depth" in Generator(net).build().exposed
    assert "depth" not in exact_generator(net).exposed


ONE_VALUE = """
netc: 1
name: one_value
input: [3, 4, 4]
params: {n: 4}
layers:
  - {name: flat, flatten: {}}
  - {name: a, linear: {out: $n}}
  - {name: b, linear: {out: 4}, from: flat}
  - {add: {}, from: [a, b]}
"""


def test_a_param_no_other_value_confirms_is_fixed(tmp_path):
    """`n` must equal 4 (the add needs equal widths): no other compile confirms `n` as an argument."""
    spec = tmp_path / "one_value.yaml"
    spec.write_text(ONE_VALUE, encoding="utf-8")
    net = netc.load(spec)
    assert Generator(net).build().exposed == ["n"]
    gen = exact_generator(net)
    assert gen.exposed == [] and gen.classes.fixed == [("n", 4)]
