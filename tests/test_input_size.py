"""Modules that follow the input size (issue 28, build 1): a module built at one input size and
called at another computes what the spec compiled at that size computes, with the same weights,
or raises InputSizeError at the spec location of the first layer that cannot follow, before any
op runs (netc.backends.torch.size_guard). The oracle is always the spec compiled at the other size."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

import netc
from netc.backends.torch.size_guard import InputSizeError
from netc.errors import NetcError
from tests import fuzz_oracles
from tests.test_fuzz import spec_text
from tests.test_fuzz_oracles import QUICK

SPECS = Path(__file__).resolve().parent.parent / "specs"
HEADER = "netc: 1\nname: t\ninput: [4, 16, 16]\n"
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): ")


def compiled(text: str, shape, file: str = "size.yaml"):
    return netc.loads(text, file, input_shape=tuple(shape))


def outputs(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def same(a, b) -> bool:
    xs, ys = outputs(a), outputs(b)
    return len(xs) == len(ys) and all(x.shape == y.shape and torch.allclose(x, y, atol=1e-5, rtol=1e-5)
                                      for x, y in zip(xs, ys))


def follows_or_refuses(module, text: str, file: str, size: tuple, batch: int = 2, device: str = "cpu") -> str:
    """Call `module` at `size` (C, H, W): 'follows' when it equals the spec compiled at that size
    (same weights; on the meta device, the same output shapes), 'refuses' when it raises the
    located InputSizeError - which the spec compiled at that size must justify: it does not
    compile there, or its parameters or layers differ."""
    x = torch.randn(batch, *size, device=device)
    try:
        oracle = compiled(text, size, file)
    except NetcError:
        oracle = None
    calls = []
    hook = module.register_forward_pre_hook(lambda m, args: calls.append(1))  # runs after the size's hook
    try:
        with torch.no_grad():
            got = module(x)
    except InputSizeError as exc:
        assert calls == [], "the error came after an op ran"
        where = LOCATED.match(str(exc))
        assert where and int(where["line"]) > 0, str(exc)
        assert where["file"] == file or "imports:" in text, str(exc)  # a template's layer: its library's file
        assert "×".join(map(str, size[1:])) in str(exc)
        if oracle is not None:  # it compiles there: then something with parameters, or the layers, differ
            keys = [(d.scope, d.op, d.params, d.buffers) for _, d in oracle.nodes()]
            mine = [(d.scope, d.op, d.params, d.buffers) for _, d in module.program.follow_size.network.nodes()]
            if keys == mine:
                with pytest.raises(RuntimeError):
                    oracle.build(device="meta").load_state_dict(module.state_dict(), strict=True)
        return "refuses"
    finally:
        hook.remove()
    assert oracle is not None, "a module ran at a size its spec does not compile at"
    reference = oracle.build(device="meta").eval()  # the module's own tensors, assigned: nothing allocated
    reference.load_state_dict(module.state_dict(), strict=True, assign=True)
    with torch.no_grad():
        want = reference(x)
    if device == "meta":
        assert [o.shape for o in outputs(got)] == [o.shape for o in outputs(want)]
    else:
        assert same(got, want), "the module at the other size differs from the spec compiled there"
    return "follows"


# --- generated specs ------------------------------------------------------------------------------

@settings(QUICK, max_examples=40)
@given(spec_text(), st.integers(1, 12), st.integers(1, 12))
def test_generated_specs_built_at_one_size_run_at_another(text, h, w):
    net = fuzz_oracles.valid(text)
    c, h0, w0 = net.input_shape
    if (h, w) == (h0, w0):
        h += 1
    module = fuzz_oracles.built(net).eval()
    follows_or_refuses(module, text, "fuzz.yaml", (c, h, w))
    with torch.no_grad():  # back at the built size, it is the module it was
        assert same(module(torch.ones(1, *net.input_shape)), fuzz_oracles.built(net).eval()(torch.ones(1, *net.input_shape)))


@settings(QUICK, max_examples=20)
@given(spec_text(), st.integers(1, 12), st.integers(1, 12))
def test_generated_specs_ending_in_a_fixed_classifier_follow_or_refuse(text, h, w):
    """The same with a flatten into a linear appended, whose in_features fix the size: the refusals."""
    doc = yaml.safe_load("".join(ch for ch in text if ch.isprintable() or ch in "\n\t"))  # the description's
    doc["layers"] = list(doc["layers"]) + ["flatten", {"name": "head", "linear": {"out": 3}}]
    text = yaml.safe_dump(doc, sort_keys=False)
    net = fuzz_oracles.valid(text)
    c, h0, w0 = net.input_shape
    if (h, w) == (h0, w0):
        h += 1
    module = fuzz_oracles.built(net).eval()
    event(f"size: {follows_or_refuses(module, text, 'fuzz.yaml', (c, h, w))}")


@settings(QUICK, max_examples=15)
@given(spec_text(), st.integers(1, 12), st.integers(1, 12))
def test_generated_code_built_at_one_size_run_at_another(text, h, w):
    """The generated module: the same outputs as the built module (itself checked against the spec
    compiled at the other size above), or an error: a located one where the spec reads $in_h/$in_w in
    a way generated code cannot follow, else PyTorch's where the built module refuses too."""
    from tests.conftest import factory, import_source

    net = fuzz_oracles.valid(text)
    c, h0, w0 = net.input_shape
    if (h, w) == (h0, w0):
        h += 1
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model = factory(import_source(net.codegen(), Path(tmp)))().eval()
        except NetcError:
            return  # a spec codegen refuses (its own tests cover that)
        module = fuzz_oracles.built(net).eval()
        model.load_state_dict(module.state_dict(), strict=True)
        x = torch.randn(2, c, h, w)
        try:
            with torch.no_grad():
                got = model(x)
        except (RuntimeError, ValueError, IndexError) as exc:  # the guard's, or torch's own (no location)
            if net.graph.size_from_input is not None:  # generated code computed those sizes once
                assert LOCATED.match(str(exc)) and str(exc).startswith("fuzz.yaml:"), str(exc)
                return
            with pytest.raises(InputSizeError):  # the built module refuses that size too
                module(x)
            return
        with torch.no_grad():  # it ran: the built module follows that size, to the same outputs
            assert same(got, module(x))


# --- the cases by hand ----------------------------------------------------------------------------

FOLLOWS = {  # built at one size, each runs at another and equals the spec compiled there
    "convs": "layers:\n  - {conv: {out: 6, k: 3, s: 2, p: 1}}\n  - bn\n  - relu\n  - {maxpool: {k: 2}}\n",
    "residual": "layers:\n  - {residual: {body: [{conv: {out: 4, k: 3, p: 1}}, bn], then: relu}}\n  - {gap: {}}\n"
                "  - flatten\n  - {linear: {out: 5}}\n",
    "adaptive": "layers:\n  - {conv: {out: 4, k: 3}}\n  - {adaptive_avgpool: {out: 3}}\n  - flatten\n"
                "  - {linear: {out: 7}}\n",
    "fcn": "layers:\n  - {conv: {out: 4, k: 3, s: 2, p: 1}}\n  - {upsample: {size: [$in_h, $in_w]}}\n",
    "template": "templates:\n  Up:\n    args: {}\n    body: [{conv: {out: 2, k: 1}}, {upsample: {size: [$in_h * 2, $in_w * 2]}}]\n"
                "layers:\n  - {avgpool: {k: 2}}\n  - {name: u, use: Up}\n",
    "half": "templates:\n  Half:\n    args: {}\n    body: [{adaptive_avgpool: {out: [$in_h // 2, $in_w // 2]}}, bn]\n"
            "layers:\n  - {conv: {out: 3, k: 3, p: 1}}\n  - {name: h, use: Half}\n  - {upsample: {size: [$in_h, $in_w]}}\n",
    "vars": "vars: {grid: $in_w // 4}\nlayers:\n  - {adaptive_avgpool: {out: $grid}}\n",
    "nested": ("templates:\n  Up:\n    args: {}\n    body:\n      - {conv: {out: 2, k: 1}}\n"
               "      - {name: inner, seq: [{upsample: {size: [$in_h * 2, $in_w * 2]}}]}\n"
               "layers:\n  - {name: u, use: Up}\n"),
}
CODEGEN_FIXED = {  # generated code keeps these sizes and refuses another at this line
    "vars": 4,  # a vars: entry is a number
}
REFUSES = {  # built at 16×16, 20×12 is refused at the line of the layer that cannot follow
    "linear": ("layers:\n  - {conv: {out: 4, k: 3, s: 2, p: 1}}\n  - flatten\n  - {linear: {out: 5}}\n", 7,
               "in_features 256 → 240"),
    "channels": ("layers:\n  - {conv: {out: $in_h, k: 1}}\n", 5, "out_channels 16 → 20"),
    "kernel": (("templates:\n  K:\n    args: {}\n    body: [{conv: {out: 2, k: $in_w // 4}}]\nlayers:\n"
                "  - {use: K}\n"), 7, "kernel_size"),
    "repeat": ("layers:\n  - {repeat: $in_w // 4, conv: {out: 4, k: 1}}\n", 5, "repeat count"),
    "window": ("layers:\n  - {maxpool: {k: 14}}\n", 5, "does not compile"),
}


@pytest.mark.parametrize("name", FOLLOWS)
def test_a_module_follows_the_input_size(name):
    module = compiled(HEADER + FOLLOWS[name], (4, 16, 16)).build().eval()
    assert follows_or_refuses(module, HEADER + FOLLOWS[name], "size.yaml", (4, 20, 12)) == "follows"
    assert follows_or_refuses(module, HEADER + FOLLOWS[name], "size.yaml", (4, 16, 16)) == "follows"


@pytest.mark.parametrize("name", REFUSES)
def test_a_module_refuses_a_size_its_structure_cannot_follow_before_any_op(name):
    import copy
    import pickle

    text, line, detail = REFUSES[name]
    module = compiled(HEADER + text, (4, 16, 16)).build().eval()
    for m in (module, pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        assert follows_or_refuses(m, HEADER + text, "size.yaml", (4, 20, 12)) == "refuses"
        with pytest.raises(InputSizeError) as info:
            m(torch.randn(1, 4, 20, 12))
        message = str(info.value)
        assert message.startswith(f"size.yaml:{line}:") and "16×16" in message and "20×12" in message, message
        assert detail in message, message
        assert m(torch.randn(1, 4, 16, 16)) is not None  # the built size still runs


def test_an_fcn_style_spec_built_at_224_returns_the_size_it_is_called_at(tmp_path):
    """Issue 28's case: upsample back to [$in_h, $in_w], built for 224×224, called at 160×192; its
    generated code too."""
    from tests.conftest import factory, import_source

    text = ("netc: 1\nname: fcn\ninput: [3, 224, 224]\nlayers:\n"
            "  - {conv: {out: 8, k: 3, s: 2, p: 1}}\n  - bn\n  - relu\n  - {maxpool: {k: 2}}\n"
            "  - {conv: {out: 21, k: 1}}\n  - {upsample: {size: [$in_h, $in_w], mode: bilinear}}\n")
    module = compiled(text, (3, 224, 224), "fcn.yaml").build().eval()
    with torch.no_grad():
        assert module(torch.randn(1, 3, 160, 192)).shape == (1, 21, 160, 192)
        assert module(torch.randn(1, 3, 224, 224)).shape == (1, 21, 224, 224)
    assert follows_or_refuses(module, text, "fcn.yaml", (3, 160, 192), batch=1) == "follows"
    model = factory(import_source(compiled(text, (3, 224, 224), "fcn.yaml").codegen(), tmp_path))().eval()
    model.load_state_dict(module.state_dict(), strict=True)
    x = torch.randn(1, 3, 160, 192)
    with torch.no_grad():
        assert same(model(x), module(x)) and model(x).shape == (1, 21, 160, 192)
        assert same(torch.jit.script(model)(x), module(x))  # the runtime size scripts too


@pytest.mark.parametrize("name", FOLLOWS)
def test_generated_code_follows_the_input_size_or_refuses_with_the_location(name, tmp_path):
    """Sizes from $in_h/$in_w are written on the runtime input (`x.shape[-2]`), as torchvision's
    segmentation heads are; a `vars:` entry read from them is a number, so that code keeps its size."""
    from tests.conftest import factory, import_source

    net = compiled(HEADER + FOLLOWS[name], (4, 16, 16))
    source = net.codegen()
    model = factory(import_source(source, tmp_path))().eval()
    module = net.build().eval()
    model.load_state_dict(module.state_dict(), strict=True)
    x = torch.randn(2, 4, 20, 12)
    with torch.no_grad():
        if name not in CODEGEN_FIXED:
            assert same(model(x), module(x))
            assert ("x.shape[-2]" in source) == (net.graph.size_from_input is not None)
            return
        with pytest.raises(ValueError) as info:
            model(x)
    message = str(info.value)
    assert message.startswith(f"size.yaml:{CODEGEN_FIXED[name]}:") and "16×16" in message and "20×12" in message, \
        message


# --- every bundled spec at a second size ----------------------------------------------------------

def second_size(shape) -> tuple[int, int, int]:
    """Another input size, small to keep the test cheap, not square, odd where the spec's is even:
    half the height, five eighths of the width, plus one (224×224 → 113×141; 32×32 → 17×21)."""
    c, h, w = shape
    return c, h // 2 + 1, w * 5 // 8 + 1


HEAVY_PARAMS, HEAVY_OPS = 40_000_000, 700  # above either, a spec is run on the meta device (shapes only)


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_bundled_spec_runs_at_a_second_size(path):
    """Built once at the spec's size, called at a second one: the spec compiled there, or the
    located error. The networks too large to run cheaply on two cores (over 40M parameters or 700
    ops: the AlexNets and VGGs, ResNet-1202, the 101- and 152-layer ResNets and ResNeXts, the Wide
    ResNets, Inception-v4 and Inception-ResNet-v2) run on the meta device: the same modules, the size's plan
    and the output shapes checked, the values not computed (the other specs check them)."""
    net = netc.load(path)
    device = "meta" if net.params > HEAVY_PARAMS or len(net.order) > HEAVY_OPS else "cpu"
    module = net.build(device=device, init=False).eval()
    text = path.read_text(encoding="utf-8")
    outcome = follows_or_refuses(module, text, str(path), second_size(net.input_shape), batch=1, device=device)
    assert outcome in ("follows", "refuses")


def test_the_inference_rewrite_follows_the_input_size_as_the_module_does():
    text = HEADER + FOLLOWS["fcn"].replace("\n  - {upsample", "\n  - bn\n  - {upsample")
    net = compiled(text, (4, 16, 16))
    module = net.build().eval()
    fast = netc.optimize(module)
    x = torch.randn(2, 4, 20, 12)
    with torch.no_grad():
        assert torch.allclose(fast(x), module(x), atol=1e-5)
        assert fast(torch.randn(1, 4, 16, 16)).shape == (1, 4, 16, 16)
    lin = netc.optimize(compiled(HEADER + REFUSES["linear"][0], (4, 16, 16)).build().eval())
    with pytest.raises(InputSizeError, match=r"^size\.yaml:7:"):
        lin(x)


@pytest.mark.parametrize("text, follows", [
    ("[$in_h, $in_w]", True), ("$in_h // 2 + 1", True), ("-(-$in_w // 3)", True), ("$in_h * 2 - $in_w % 5", True),
    ("3 + $in_h", True), ("max($in_h, 8)", False), ("$in_h / 2", False), ("$in_h * 0.5", False),
    ("2 if $in_h > 3 else 1", False), ("$sizes[$in_h // 32]", False), ("abs($in_h)", False), ("$in_h ** 2", False),
    ("[$in_h, 7]", True), ("$k", False),
])
def test_a_size_expression_follows_the_input_only_by_integer_arithmetic(text, follows):
    """netc.spec.symbolic: where the source is kept, it equals the language's own value at every size."""
    from netc.expr import evaluate
    from netc.spec.symbolic import symbolic_attrs

    env = {"in_h": 24, "in_w": 20, "sizes": [1, 2, 3, 4], "k": 5}
    got = symbolic_attrs({"size": text}, env, None)
    assert (got is not None) == follows, got
    if got is None:
        return
    for h, w in [(24, 20), (7, 31), (1, 1), (160, 192)]:
        at = {**env, "in_h": h, "in_w": w}
        want = evaluate(text, at)
        source = got["size"].replace("{H}", str(h)).replace("{W}", str(w))
        assert eval(source) == (tuple(want) if isinstance(want, list) else want)  # our own source, over integers
