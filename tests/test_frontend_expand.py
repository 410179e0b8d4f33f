"""Expansion into the IR: naming, repeat, if, from: DAGs, side outputs, imports, --set, errors together."""
from pathlib import Path

import pytest

import netc
from netc.errors import NetcError
from tests.conftest import SPECS

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HEAD = "netc: 1\nname: t\ninput: [3, 16, 16]\n"


def load(body, **kw):
    return netc.loads(HEAD + body, "t.yaml", **kw)


def scopes(net):
    return [(d.scope, d.op) for _, d in net.nodes()]


def errors(body, **kw):
    with pytest.raises(NetcError) as exc:
        load(body, **kw)
    return [(d.code, d.loc.line if d.loc else None) for d in exc.value.diagnostics]


def test_positions_follow_nn_sequential():
    net = load("layers:\n  - name: features\n    seq: [{conv: {out: 8, k: 3}}, relu, [relu, relu], maxpool: {k: 2}]\n"
               "  - flatten\n")
    assert scopes(net) == [("features.0", "conv"), ("features.1", "relu"), ("features.2", "relu"),
                           ("features.3", "relu"), ("features.4", "maxpool"), ("1", "flatten")]


def test_generated_nodes_take_no_position():
    net = load("layers:\n  - name: m\n    seq:\n      - concat: [{conv: {out: 4, k: 1}}, {conv: {out: 4, k: 1}}]\n"
               "      - residual: {body: [{conv: {out: 8, k: 1}}], scale: 0.2, then: relu}\n")
    assert scopes(net) == [("m.0", "conv"), ("m.1", "conv"), ("m._cat", "cat"), ("m.2", "conv"),
                           ("m._scale", "scale"), ("m._add", "add"), ("m.3", "relu")]
    assert net.graph.node([n for n, d in net.nodes() if d.op == "add"][0]).inputs[1] == \
        [n for n, d in net.nodes() if d.op == "cat"][0]  # shortcut = the residual's input


def test_repeat_first_at_and_index():
    net = load("templates:\n  B:\n    args: {c: int, s: 1}\n    body: {name: conv, conv: {out: $c, k: 3, s: $s, p: 1}}\n"
               "layers:\n  - {name: stage, repeat: 4, use: B, args: {c: 8 + $i}, first: {s: 2}, at: {3: {c: 32}}}\n")
    convs = [(d.scope, d.attrs.out, d.attrs.s) for _, d in net.nodes()]
    assert convs == [("stage.0.conv", 8, 2), ("stage.1.conv", 9, 1), ("stage.2.conv", 10, 1), ("stage.3.conv", 32, 1)]
    assert net.graph.blocks["stage"].repeat == 4


def test_unnamed_repeat_continues_the_numbering():
    net = load("layers:\n  - name: f\n    seq: [{repeat: 3, relu: {}}, {conv: {out: 4, k: 1}}]\n")
    assert [s for s, _ in scopes(net)] == ["f.0", "f.1", "f.2", "f.3"]


def test_if_drops_a_node_and_its_position():
    net = load("params: {deep: false}\nlayers:\n  - name: f\n    seq: [relu, {if: $deep, relu: {}}, {if: not $deep, tanh: {}}]\n")
    assert scopes(net) == [("f.0", "relu"), ("f.1", "tanh")]
    assert scopes(load("params: {deep: false}\nlayers:\n  - name: f\n    seq: [relu, {if: $deep, relu: {}}]\n",
                       overrides={"deep": True})) == [("f.0", "relu"), ("f.1", "relu")]


def test_from_builds_a_dag():
    net = load("layers:\n  - {name: a, conv: {out: 8, k: 1}}\n  - {name: b, conv: {out: 8, k: 3, p: 1}, from: input}\n"
               "  - {name: c, add: {}, from: [a, b]}\n")
    ids = {d.scope: n for n, d in net.nodes()}
    assert net.graph.node(ids["c"]).inputs == [ids["a"], ids["b"]]
    assert net.graph.node(ids["b"]).inputs == [0]
    assert net.outputs == [("out", ids["c"], False)]


def test_from_resolves_names_in_enclosing_scopes_first():
    net = load("layers:\n  - {name: x, relu: {}}\n  - name: blk\n    seq:\n      - {name: x, tanh: {}}\n"
               "      - {name: y, add: {}, from: [x, input]}\n")
    ids = {d.scope: n for n, d in net.nodes()}
    assert net.graph.node(ids["blk.y"]).inputs == [ids["blk.x"], 0]


def test_side_outputs_and_aux():
    net = load("layers:\n  - {name: c, conv: {out: 8, k: 3}}\n"
               "  - {side: [gap, flatten, {linear: {out: 5}}], name: aux, aux: true}\n"
               "  - {side: [gap, flatten], output: feats}\n  - {name: head, relu: {}, output: logits}\n")
    names = [(n, a) for n, _, a in net.outputs]
    assert names == [("aux", True), ("feats", False), ("logits", False)]
    aux_nodes = [d.scope for _, d in net.nodes() if d.aux]
    assert aux_nodes == ["aux.0", "aux.1", "aux.2"]
    ids = {d.scope: n for n, d in net.nodes()}
    assert net.graph.node(ids["head"]).inputs == [ids["c"]]  # the main path skips the side branch
    assert net.graph.node(ids["aux.2"]).shape == (5,)


def test_main_output_is_named_out_and_first():
    net = load("layers:\n  - {side: [gap], output: pooled}\n  - relu\n")
    assert [n for n, _, _ in net.outputs] == ["out", "pooled"]


def test_templates_imported_from_another_file():
    net = netc.load(FIXTURES / "uses_lib.yaml")
    assert scopes(net) == [("stem.conv", "conv"), ("stem.bn", "bn"), ("stem.2", "relu"),
                           ("body.conv", "conv"), ("body.bn", "bn"), ("body.2", "relu")]
    conv = next(d for _, d in net.nodes() if d.scope == "body.conv")
    assert (conv.attrs.k, conv.attrs.p) == (1, 0)
    # the op's location is in the library; the instantiation chain points at the user
    assert conv.loc.file.endswith("lib_blocks.yaml") and conv.loc.line == 8
    assert conv.via[0].file.endswith("uses_lib.yaml") and conv.via[0].line == 9


def test_import_cycle_across_files():
    with pytest.raises(NetcError) as exc:
        netc.load(FIXTURES / "cycle_a.yaml")
    d = exc.value.diagnostics[0]
    assert d.code == "import" and d.loc.file.endswith("cycle_b.yaml") and (d.loc.line, d.loc.col) == (3, 11)


def test_import_of_a_template_the_library_lacks(tmp_path):
    spec = tmp_path / "s.yaml"
    lib = FIXTURES / "lib_blocks.yaml"
    spec.write_text(HEAD + f"imports:\n  - {{file: {lib}, templates: [ConvBM]}}\nlayers: [relu]\n")
    with pytest.raises(NetcError) as exc:
        netc.load(spec)
    assert exc.value.codes == ["import"]  # an absolute path is refused
    (tmp_path / "lib.yaml").write_text(lib.read_text())
    spec.write_text(HEAD + "imports:\n  - {file: lib.yaml, templates: [ConvBM]}\nlayers: [relu]\n")
    with pytest.raises(NetcError) as exc:
        netc.load(spec)
    d = exc.value.diagnostics[0]
    assert d.code == "import" and d.hint == "did you mean 'ConvBN'?" and d.loc.line == 5


def test_set_overrides():
    net = netc.load(SPECS / "resnet50.yaml", overrides={"num_classes": 10, "width": 32})
    fc = next(d for _, d in net.nodes() if d.scope == "fc")
    assert fc.shape == (10,)
    assert next(d for _, d in net.nodes() if d.scope == "conv1").shape[0] == 32
    assert net.env["num_classes"] == 10


def test_set_via_cli(netc_cli):
    status, out, err = netc_cli("check", "-q", SPECS / "lenet5.yaml", "--set", "num_classes=7")
    assert status == 0, err
    status, out, err = netc_cli("check", "-q", SPECS / "lenet5.yaml", "--set", "num_classes")
    assert status == 2 and "error[usage]" in err and "Traceback" not in err


def test_vars_derive_from_params():
    net = load("params: {w: 2}\nvars: {c: $w * 4, d: $c + 1}\nlayers:\n  - conv: {out: $d, k: 1}\n")
    assert net.env["d"] == 9 and next(net.nodes())[1].shape[0] == 9


def test_independent_errors_are_reported_together(netc_cli, tmp_path):
    # compilation is staged (schema, then expansion, then shapes); each stage reports all it finds
    schema = "layers:\n  - {convv: {out: 8, k: 3}}\n  - {relu: {}, repeat: -1}\n  - {relu: {}, repet: 2}\n"
    assert errors(schema) == [("unknown-op", 5), ("schema", 6), ("schema", 7)]
    body = ("layers:\n  - {conv: {out: $nope, k: 3}}\n"
            "  - {name: a, relu: {}, from: missing}\n  - {use: Nothing}\n  - {tanh: {}, repeat: -1 + $i}\n")
    assert errors(body) == [("undefined-var", 5), ("template", 7), ("undefined-var", 8), ("ref", 6)]
    spec = tmp_path / "many.yaml"
    spec.write_text(HEAD + body)
    status, _, err = netc_cli("check", spec)
    assert status == 2 and err.rstrip().endswith("4 errors")


def test_independent_shape_errors_are_reported_together():
    body = ("layers:\n  - concat:\n      - {conv: {out: 4, k: 3, groups: 3}}\n      - {conv: {out: 4, k: 99}}\n"
            "      - {channel_shuffle: {groups: 2}}\n")
    assert errors(body) == [("shape", 6), ("shape", 7), ("shape", 8)]


def test_template_argument_defaults_may_use_other_arguments():
    net = load("templates:\n  T:\n    args: {c: int, mid: $c * 2}\n    body: [{conv: {out: $mid, k: 1}}, {conv: {out: $c, k: 1}}]\n"
               "layers:\n  - {use: T, args: {c: 3}}\n")
    assert [d.shape[0] for _, d in net.nodes()] == [6, 3]
    net = load("templates:\n  T:\n    args: {c: int, mid: $c * 2}\n    body: [{conv: {out: $mid, k: 1}}, {conv: {out: $c, k: 1}}]\n"
               "layers:\n  - {use: T, args: {c: 3, mid: 5}}\n")  # an expression default may be overridden
    assert [d.shape[0] for _, d in net.nodes()] == [5, 3]


@pytest.mark.parametrize("body", [
    "layers:\n  - {name: a.b, relu: {}}\n",
    "layers:\n  - {name: '', relu: {}}\n",
    "layers:\n  - {name: input, relu: {}}\n",
    "layers:\n  - {name: import, relu: {}}\n",  # a keyword: fx and generated code access modules as attributes
    "layers:\n  - {name: \"x'y\", relu: {}}\n",
    "layers:\n  - {name: ../../etc, relu: {}}\n",
    "layers:\n  - {name: \"a\\nb\", relu: {}}\n",
    "layers:\n  - {name: \u0440elu, relu: {}}\n",  # Cyrillic 'р'
    "layers:\n  - {relu: {}, output: 'a b'}\n",
    "templates:\n  'T-1': {body: relu}\nlayers: [relu]\n",
    "outputs: ['../x']\nlayers: [relu]\n",
])
def test_names_must_be_plain_ascii(body):
    assert errors(body)[0][0] == "schema"


def test_unicode_confusable_spec_name():
    with pytest.raises(NetcError) as exc:
        netc.loads(HEAD.replace("name: t", "name: \u0430lexnet") + "layers: [relu]\n")
    assert exc.value.codes == ["schema"] and exc.value.diagnostics[0].loc.line == 2


def test_at_keys_may_be_quoted():
    net = load('params: {c: 3}\nlayers:\n  - {name: r, repeat: 2, conv: {out: $c, k: 1}, at: {"1": {c: 5}}}\n')
    assert [d.shape[0] for _, d in net.nodes()] == [3, 5]


def test_reference_to_a_block_whose_layers_were_all_skipped():
    # the block 'a' yields its own input, so 'from: a' means the node before it
    net = load("layers:\n  - {name: x, relu: {}}\n  - {name: a, seq: [{if: false, relu: {}}]}\n"
               "  - {name: y, tanh: {}, from: a}\n")
    ids = {d.scope: n for n, d in net.nodes()}
    assert net.graph.node(ids["y"]).inputs == [ids["x"]]
    assert all(d.op != "_ref" for _, d in net.graph.node_items())
    assert errors("layers:\n  - {seq: [{name: a, repeat: 0, relu: {}, from: a}], from: a}\n")[0][0] == "ref"


def test_every_layer_skipped():
    assert errors("layers:\n  - {if: false, relu: {}}\n") == [("schema", 4)]


def test_first_and_at_keys_must_be_template_args_or_feed_them():
    tpl = "templates:\n  B:\n    args: {c: int, stride: 1}\n    body: {conv: {out: $c, k: 3, s: $stride, p: 1}}\n"
    body = tpl + "layers:\n  - {name: l, repeat: 2, use: B, args: {c: $w}, first: {w: 4, stride: 2}, at: {1: {w: 6}}}\n"
    net = load(body)
    assert [(d.shape, d.attrs.s) for _, d in net.nodes()] == [((4, 8, 8), 2), ((6, 8, 8), 1)]
    with pytest.raises(NetcError) as exc:
        load(tpl + "layers:\n  - {name: l, repeat: 2, use: B, args: {c: 4}, first: {strde: 2}}\n")
    d = exc.value.diagnostics[0]
    assert d.code == "template" and d.hint == "did you mean 'stride'?" and (d.loc.line, d.loc.col) == (9, 48)


@pytest.mark.parametrize("body,line", [
    ("layers:\n  - {side: [{if: false, relu: {}}], output: a}\n  - relu\n", 5),      # empty side branch
    ("layers:\n  - {side: [relu], output: a, aux: true}\n", 4),                      # main path = the input
])
def test_degenerate_outputs(body, line):
    assert errors(body) == [("schema", line)]


def test_main_output_is_added_when_an_aux_output_shares_its_node():
    net = load("layers:\n  - {name: c, conv: {out: 4, k: 1}}\n  - {side: [gap], output: pooled, aux: true}\n"
               "  - {relu: {}, from: c, output: act}\n")
    assert [(n, a) for n, _, a in net.outputs] == [("pooled", True), ("act", False)]


def test_reference_cycles_through_empty_blocks_are_errors():
    body = ("layers:\n  - {side: {bn: {}}, output: aux, name: a, from: a}\n"
            "  - {bn: {}, from: [a, input]}\n  - gap\n")
    assert errors(body) == [("ref", 5), ("ref", 6)]


def test_outputs_inside_an_aux_branch_are_aux():
    net = load("layers:\n  - relu\n  - side:\n      - {side: [tanh], output: inner}\n      - {sigmoid: {}, output: deep}\n"
               "    output: head\n    aux: true\n")
    assert {n: a for n, _, a in net.outputs} == {"out": False, "inner": True, "deep": True, "head": True}
