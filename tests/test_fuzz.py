"""Property-based fuzzing of the frontend: `netc.loads` either compiles a spec or raises NetcError.

Two generators: random specs written in the language (ops with random attributes, seq, concat,
residual, repeat with first/at, if, named blocks, templates, from: references, side outputs),
and random mutations of the bundled specs (deleted, duplicated, swapped or re-indented lines,
inserted YAML syntax and hostile tokens, truncation). Any other exception is a bug.

When a spec compiles, the IR must be coherent: every op has a positive shape, module paths are
unique, parameter totals add up, every output names an op.

The same generator feeds the differential oracles of tests/fuzz_oracles.py (every number netc
infers against a measurement of the built module; `make fuzz` for the long run).

CI runs a bounded number of examples (profile `ci`, well under a minute). A long run:

    HYPOTHESIS_PROFILE=long .venv/bin/pytest -q tests/test_fuzz.py -n 0   # 20,000 examples per test
"""
from __future__ import annotations

import json
import os
import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netc
from netc.errors import NetcError
from tests.conftest import SPECS

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NAMES = ["a", "b", "c", "d", "e", "f", "g", "conv", "fc", "x1", "x2", "x3", "0", "1", "out"]
# free text reaches generated code (docstrings) and HTML: it must come out inert
DESCRIPTIONS = st.one_of(st.text(max_size=30), st.sampled_from([
    '"""', "'''", "\\", '\\"""', "</script><script>alert(1)</script>", "{{ 7 * 7 }}", "{% raw %}", "\x00",
    "\n\nimport os\nos.system('touch PWNED')\n", "<!--", "]]>", "\u202e", "$c * 2", "\r\n\t"]))
small = st.integers(1, 4)


def pair(lo, hi):
    return st.one_of(st.integers(lo, hi), st.lists(st.integers(lo, hi), min_size=2, max_size=2))


def maybe(d: dict, draw, keys):
    """Drop a random subset of optional keys."""
    return {k: v for k, v in d.items() if k not in keys or draw(st.booleans())}


@st.composite
def op_node(draw):
    op = draw(st.sampled_from(["conv", "conv", "sepconv", "bn", "relu", "relu6", "sigmoid", "tanh", "gelu", "silu",
                               "leaky_relu", "mish", "selu", "elu", "celu", "softplus", "hardtanh", "prelu",
                               "identity", "maxpool", "avgpool", "gap", "adaptive_avgpool", "flatten",
                               "linear", "dropout", "lrn", "softmax", "scale", "pad_channels", "add", "cat",
                               "mul", "layernorm", "groupnorm", "instancenorm", "permute", "reshape", "chunk", "slice", "upsample", "conv_transpose", "pixel_shuffle", "pixel_unshuffle", "pad", "channel_shuffle",
                               "stochastic_depth", "hardswish", "hardsigmoid", "layer_scale", "softsign"]))
    if op in ("conv", "sepconv"):
        attrs = {"out": draw(st.one_of(st.integers(1, 8), st.just("$c"), st.just("$c * 2"))), "k": draw(pair(1, 4)),
                 "s": draw(pair(1, 3)), "p": draw(st.one_of(pair(0, 2), st.sampled_from(["same", "valid"]))),
                 "d": draw(st.integers(1, 2)), "bias": draw(st.booleans())}
        if op == "conv":
            attrs["groups"] = draw(st.integers(1, 2))
        attrs = maybe(attrs, draw, {"s", "p", "d", "groups", "bias"})
    elif op in ("maxpool", "avgpool"):
        attrs = maybe({"k": draw(pair(1, 3)), "s": draw(pair(1, 3)), "p": draw(st.integers(0, 1)),
                       "ceil_mode": draw(st.booleans())}, draw, {"s", "p", "ceil_mode"})
    elif op == "adaptive_avgpool":
        attrs = {"out": draw(pair(1, 3))}
    elif op == "linear":
        attrs = {"out": draw(st.integers(1, 10))}
    elif op == "dropout":
        attrs = {"p": draw(st.sampled_from([0.0, 0.1, 0.5]))}
    elif op == "lrn":
        attrs = {"size": draw(st.integers(1, 5))}
    elif op == "scale":
        attrs = {"factor": draw(st.floats(-2, 2, allow_nan=False))}
    elif op == "pad_channels":
        attrs = {"out": draw(st.integers(1, 16)), "s": draw(st.integers(1, 2))}
    elif op == "softmax":
        attrs = {"dim": 0}
    elif op == "add":
        attrs = maybe({"broadcast": draw(st.booleans())}, draw, {"broadcast"})
    elif op == "layernorm":
        attrs = maybe({"over": draw(st.sampled_from(["channels", "last"])), "eps": 1e-6}, draw, {"over", "eps"})
    elif op == "groupnorm":
        attrs = {"groups": draw(st.integers(1, 4))}
    elif op == "permute":
        attrs = {"dims": draw(st.sampled_from([[1, 2, 0], [2, 0, 1], [0], [1, 0], [0, 1, 2, 3], [0, 0, 1]]))}
    elif op == "reshape":
        attrs = {"shape": draw(st.sampled_from([[-1], [2, -1], [-1, 1, 1], [4, 4], [-1, -1], [0]]))}
    elif op == "chunk":
        attrs = {"parts": draw(st.integers(1, 3)), "index": draw(st.integers(0, 3)), "dim": draw(st.integers(-1, 3))}
    elif op == "slice":
        attrs = maybe({"start": draw(st.integers(-4, 4)), "end": draw(st.integers(-4, 6)), "dim": draw(st.integers(-1, 3))},
                      draw, {"start", "end", "dim"})
    elif op == "conv_transpose":
        attrs = {"out": draw(st.one_of(st.integers(1, 8), st.just("$c"))), "k": draw(pair(1, 4)),
                 **maybe({"s": draw(pair(1, 3)), "p": draw(pair(0, 2)), "output_padding": draw(pair(0, 2)),
                          "d": draw(pair(1, 2)), "groups": draw(st.integers(1, 3)), "bias": draw(st.booleans())},
                         draw, {"s", "p", "output_padding", "d", "groups", "bias"})}
    elif op == "upsample":
        key = draw(st.sampled_from(["scale", "size"]))  # a size may be the network input's (FCN-style)
        attrs = {key: draw(st.one_of(pair(1, 12), st.just("[$in_h, $in_w]"))) if key == "size" else draw(pair(1, 12)),
                 **maybe({"mode": draw(st.sampled_from(["nearest", "bilinear", "bicubic"])),
                          "align_corners": draw(st.booleans())}, draw, {"mode", "align_corners"})}
    elif op in ("elu", "celu"):
        attrs = maybe({"alpha": draw(st.sampled_from([0.5, 1.0, 0.0])), "inplace": draw(st.booleans())}, draw,
                      {"alpha", "inplace"})
    elif op == "hardtanh":
        attrs = maybe({"min_val": draw(st.sampled_from([-1.0, 0.0, 2.0])), "max_val": draw(st.sampled_from([1.0, 6.0]))},
                      draw, {"min_val", "max_val"})
    elif op == "prelu":
        attrs = maybe({"per_channel": draw(st.booleans()), "init": draw(st.sampled_from([0.25, 0.1]))}, draw,
                      {"per_channel", "init"})
    elif op == "pad":
        attrs = {"p": draw(st.one_of(st.integers(0, 7), pair(0, 7), st.lists(st.integers(-1, 7), min_size=4, max_size=4))),
                 **maybe({"mode": draw(st.sampled_from(["constant", "reflect", "replicate", "circular", "edge"])),
                          "value": draw(st.sampled_from([0.0, 1.5]))}, draw, {"mode", "value"})}
    elif op in ("pixel_shuffle", "pixel_unshuffle"):
        attrs = maybe({"factor": draw(st.integers(0, 3))}, draw, {"factor"})
    elif op == "channel_shuffle":
        attrs = {"groups": draw(st.integers(1, 4))}
    elif op == "stochastic_depth":
        attrs = maybe({"p": draw(st.sampled_from([0.0, 0.2, 1.0])), "mode": draw(st.sampled_from(["row", "batch", "x"]))},
                      draw, {"mode"})
    elif op == "layer_scale":
        attrs = maybe({"init": draw(st.sampled_from([1e-6, 1.0])),
                       "shape": draw(st.sampled_from([[4, 1, 1], [1], [2, 2], [3, 1, 1, 1]]))}, draw, {"init", "shape"})
    else:
        attrs = {}
    if not attrs and draw(st.booleans()):
        return op  # bare op name
    return {op: attrs}


@st.composite
def decorate(draw, node, names):
    """Add optional name / repeat / if / from / output to a node."""
    if isinstance(node, str):
        node = {node: {}}
    elif isinstance(node, list):
        if draw(st.booleans()):
            return node  # a bare list is a sequence without keys
        node = {"seq": node}
    if draw(st.integers(0, 3)) == 0:
        node["name"] = draw(st.sampled_from(NAMES))
        names.append(node["name"])
    elif draw(st.integers(0, 8)) == 0:  # a computed name, which may collide or be malformed
        node["name"] = draw(st.sampled_from(["n{$i}", "n{$i // 2}", "x{$c}", "{$i + 1}", "b{$i}_{$n}", "y{'a'}",
                                             "z{$i", "w{$i / 2}", "v{}"]))
    if draw(st.integers(0, 5)) == 0:
        node["repeat"] = draw(st.one_of(st.integers(0, 3), st.just("$n")))
        if draw(st.booleans()):
            node["first"] = {"c": draw(st.integers(1, 4))}
        if draw(st.booleans()):
            node["at"] = {draw(st.integers(0, 3)): {"c": 2}}
        if "name" in node and draw(st.integers(0, 3)) == 0:
            node["start"] = draw(st.sampled_from([0, 1, 5, "$n", -1]))
    if draw(st.integers(0, 6)) == 0:
        node["if"] = draw(st.sampled_from([True, False, "$n > 1", "$c == 3", "$in_c > 2", "$d[0] == 1"]))
        if draw(st.booleans()):
            node["else"] = draw(st.sampled_from(["relu", ["sigmoid", "tanh"], {"conv": {"out": "$c", "k": 1}},
                                                 {"name": "alt", "identity": {}}]))
    if names and draw(st.integers(0, 6)) == 0:
        refs = draw(st.lists(st.sampled_from(names + ["input"]), min_size=1, max_size=2))
        node["from"] = refs[0] if len(refs) == 1 else refs
    if draw(st.integers(0, 8)) == 0:
        node["output"] = draw(st.sampled_from(["o1", "o2", "logits"]))
    return node


@st.composite
def node(draw, depth=0, names=None):
    names = [] if names is None else names
    kinds = ["op", "op", "op"] + (["seq", "concat", "residual", "use", "side"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "op":
        n = draw(op_node())
    elif kind == "seq":
        items = [draw(node(depth + 1, names)) for _ in range(draw(st.integers(1, 4)))]
        n = items if draw(st.booleans()) else {"seq": items}
    elif kind == "concat":
        n = {"concat": [draw(node(depth + 1, names)) for _ in range(draw(st.integers(2, 3)))]}
    elif kind == "residual":
        res = {"body": draw(node(depth + 1, names))}
        if draw(st.booleans()):
            res["shortcut"] = draw(node(depth + 1, names))
        if draw(st.booleans()):
            res["scale"] = draw(st.sampled_from([0.2, 1, "$c / 10"]))
        if draw(st.booleans()):
            res["then"] = "relu"
        n = {"residual": res}
    elif kind == "use":
        n = {"use": draw(st.sampled_from(["Block"] * 5 + ["Missing"]))}
        if draw(st.integers(0, 5)):
            n["args"] = {"c": draw(st.sampled_from([1, 2, 3, 6, "$c + 1", "$c * 2", 1.5]))}
    else:
        n = {"side": draw(node(depth + 1, names)), "output": draw(st.sampled_from(["aux", "aux2"])),
             "aux": draw(st.booleans())}
    return draw(decorate(n, names))


@st.composite
def spec_text(draw):
    names: list[str] = []
    doc = {
        "netc": 1, "name": "fuzz", "description": draw(DESCRIPTIONS),
        "input": [draw(small), draw(st.integers(1, 12)), draw(st.integers(1, 12))],
        "params": {"c": draw(st.integers(1, 4)), "n": draw(st.integers(0, 3)), "d": [1, 2]},
        "templates": {"Block": {"args": {"c": "int", "s": 1}, "module": draw(st.booleans()),
                                "body": draw(st.sampled_from([
                                    [{"name": "conv", "conv": {"out": "$c", "k": 3, "s": "$s", "p": 1}}, "relu"],
                                    {"residual": {"body": [{"conv": {"out": "$c", "k": 1}}], "then": "relu"}},
                                    {"concat": [{"conv": {"out": "$c", "k": 1}}, {"maxpool": {"k": 3, "s": 1, "p": 1}}]},
                                    [{"name": "conv", "conv": {"out": "$in_c * 2", "k": 1}},
                                     {"cat": {}, "from": ["input", "conv"]}],
                                    {"if": "$in_c == $c", "residual": {"body": [{"conv": {"out": "$c", "k": 1}}]},
                                     "else": {"conv": {"out": "$c", "k": "$in_h"}}},
                                    [{"name": "pool", "avgpool": {"k": "$in_w"}}, {"linear": {"out": "$d[-1]"}}],
                                    [{"adaptive_avgpool": {"out": "[$in_h // 2 + 1, $in_w // 2 + 1]"}},
                                     {"upsample": {"size": "[$in_h, $in_w]", "mode": "bilinear"}}],
                                ]))}},
        "layers": [draw(node(0, names)) for _ in range(draw(st.integers(1, 5)))],
    }
    if draw(st.integers(0, 4)) == 0:
        doc["layers"] += ["gap", "flatten", {"name": "fc", "linear": {"out": 3}}]
    if draw(st.booleans()):
        return json.dumps(doc, ensure_ascii=False)  # JSON is YAML
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=float("inf"))


def check_network(net) -> None:
    scopes = [d.scope for _, d in net.nodes()]
    assert len(scopes) == len(set(scopes)), "module paths must be unique"
    for _, d in net.nodes():
        assert isinstance(d.shape, tuple) and d.shape and all(isinstance(x, int) and x > 0 for x in d.shape)
        assert d.params >= 0 and d.macs >= 0
    assert net.params == sum(d.params for _, d in net.nodes())
    ids = set(net.graph.nodes)
    assert net.outputs and all(nid in ids for _, nid, _ in net.outputs)
    assert len({name for name, _, _ in net.outputs}) == len(net.outputs)


def compile_or_error(text: str, file: str):
    """The property: a Network, or a NetcError whose diagnostics all format; never anything else."""
    try:
        net = netc.loads(text, file)
    except NetcError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.code and d.message and d.format()
        return None
    check_network(net)
    return net


@PROFILE
@given(spec_text())
def test_generated_specs(text):
    compile_or_error(text, "fuzz.yaml")


BUNDLED = sorted(SPECS.glob("*.yaml"))
TOKENS = [": ", "- ", "{", "}", "[", "]", ",", "$c", "$", "&a ", "*a", "!!python/object:os.system ", "\t", "0", "-1",
          "1e999", ".nan", "relu", "conv", "name: a", "\n", "'", '"', "from: input", "repeat: 3", "use: X", "#",
          "---\n", "<<: *a", "?", "%YAML 1.1\n", "\x00", "\u00e9", "\u0440", "999999999999999999999999", "if: false",
          "  ", "\n  - ", "output: o", "side: relu", "aux: true", "first: {s: 2}", "at: {9: {}}", "else: relu",
          "module: true", "$in_c", "$in_h", "{$i}", "start: 2", "$d[0]", "sum($d)"]


@st.composite
def mutated_bundled(draw):
    path = draw(st.sampled_from(BUNDLED))
    lines = path.read_text().split("\n")
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "dup", "swap", "insert", "char", "indent", "truncate"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind in ("insert", "char"):
            line = lines[i]
            pos = draw(st.integers(0, len(line)))
            new = draw(st.sampled_from(TOKENS)) if kind == "insert" else draw(st.sampled_from(string.printable))
            cut = pos + (1 if kind == "char" else 0)
            lines[i] = line[:pos] + new + line[cut:]
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(0, 6)) + lines[i].lstrip()
        elif kind == "truncate":
            lines = lines[: i + 1]
    return path, "\n".join(lines)


@PROFILE
@given(mutated_bundled())
def test_mutated_bundled_specs(case):
    path, text = case
    compile_or_error(text, str(path))  # the real path, so imports resolve


BACKEND_PROFILE = settings(PROFILE, max_examples=max(PROFILE.max_examples, 150))


@BACKEND_PROFILE
@given(spec_text())
def test_backends_agree_on_generated_specs(text):
    """Whatever compiles also builds (meta device, same parameter count as the IR and the table),
    generates code that matches the interpreter (same state_dict, same outputs) and renders;
    a backend may refuse a network only with a NetcError."""
    import tempfile

    import torch

    from tests.conftest import pair

    net = compile_or_error(text, "fuzz.yaml")
    if net is None:
        return
    try:
        module = net.build(device="meta")
    except NetcError:
        return
    assert sum(p.numel() for p in module.parameters()) == net.params
    assert json.loads(net.table(fmt="json"))["total"]["params"] == net.params
    for fmt in ("dot", "html"):
        try:
            out = net.render(fmt)
        except NetcError:
            continue
        assert "<script>alert(1)" not in out  # the description is escaped
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ref, gen = pair(net, Path(tmp))  # asserts equal state_dict keys and shapes
        except NetcError:
            return
        x = torch.randn(1, *net.input_shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            a, b = ref.eval()(x), gen.eval()(x)
    a, b = (list(a), list(b)) if isinstance(a, tuple) else ([a], [b])
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape and torch.allclose(u, v, atol=1e-5, rtol=1e-5, equal_nan=True)


@PROFILE
@given(spec_text())
def test_receptive_fields_match_the_nan_oracle_on_generated_specs(text):
    """Every exact receptive field netc prints, at every node of a random spec, equals what the
    built module's outputs depend on (tests/test_receptive_field.py's oracle)."""
    from tests.test_receptive_field import check_fields

    net = compile_or_error(text, "fuzz.yaml")
    if net is None:
        return
    try:
        net.build(device="meta")
    except NetcError:
        return
    check_fields(net)
