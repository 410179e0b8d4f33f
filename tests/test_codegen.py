"""Generated PyTorch source: equal to the interpreter, current, formatted, safe, readable."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import netc
from netc.backends.codegen import generate, output_name
from netc.backends.codegen.names import RUNTIME
from tests.conftest import ROOT, SPECS, committed_source, factory, import_source, pair, shapes

GENERATED = ROOT / "generated"
SPEC_NAMES = sorted(p.stem for p in SPECS.glob("*.yaml"))
ALLOWED_IMPORTS = {"torch", "typing", "collections", "math"}


def small_input(name):
    """The spec's input, or a smaller one that compiles to the same parameters (faster tests). A
    spec that sizes layers by its input (`$in_h`: the segmentation heads' upsampling) runs only at
    the size it is compiled at: it comes back compiled at the smaller size."""
    net = netc.load(SPECS / f"{name}.yaml")
    c, *hw = net.input_shape
    for size in (32, 64, 96, 128, 160):
        if hw and size < min(hw):
            try:
                small = netc.load(SPECS / f"{name}.yaml", input_shape=(c, size, size))
            except netc.NetcError:
                continue
            if small.params == net.params:
                return (net if net.graph.size_from_input is None else small), (c, size, size)
    return net, net.input_shape


def source_of(net) -> str:
    """The committed generated file of `net`; for a spec fixed to its input size, the code generated
    at the size `net` is compiled at (the committed file is its code at the spec's own input)."""
    return committed_source(net) if net.graph.size_from_input is None else generate(net)


# ResNet-1202's forward costs more than all the others together; its code is the CIFAR
# ResNet template of resnet20/32/44/56/110 (compared in full) with n = 200: keys and shapes only
KEYS_ONLY = {"resnet1202"}


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_generated_equals_interpreter(name, tmp_path):
    import torch

    net, shape = small_input(name)
    if name in KEYS_ONLY:
        from netc.backends.torch.module import build_module

        mod = import_source(committed_source(net), tmp_path)
        with torch.device("meta"):
            gen = factory(mod)()
        ref = build_module(net, device="meta")
        assert shapes(gen) == shapes(ref)
        return
    ref, gen = pair(net, tmp_path, shape, source=source_of(net))
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ref.eval()(x), gen.eval()(x)
    a, b = (list(a), list(b)) if isinstance(a, tuple) else ([a], [b])
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert torch.isfinite(u).all()
        assert (u - v).abs().max().item() <= 1e-6
    _same_backbone(net, ref, gen, x)


def _same_backbone(net, ref, gen, x):
    """The generated factory's features_only (where the file offers it) returns the interpreter's
    feature maps, with its channels and reductions."""
    import torch

    from netc.backends.torch.features import feature_module

    mod = type(gen).forward.__globals__  # the generated file's namespace
    if "FEATURES" not in mod:
        return
    info = net.feature_info
    assert [(f.name, f.reduction) for f in info] == [tuple(p) for p in mod["FEATURES"]]
    ours = mod["backbone"](gen, mod["FEATURES"], None, tuple(x.shape[1:]))
    assert ours.feature_info.channels() == info.channels() and ours.feature_info.reduction() == info.reduction()
    with torch.no_grad():
        want, got = feature_module(ref, info)(x), ours(x)
    assert len(got) == len(want) == len(info)
    for u, v in zip(want, got):
        assert (u - v).abs().max().item() <= 1e-6


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_training_outputs_with_aux_heads(name, tmp_path):
    """Training mode returns every output (aux heads included) in the spec's order."""
    import torch

    if not (SPECS / f"{name}.yaml").exists():
        pytest.skip(f"{name}.yaml not bundled")
    net, shape = small_input(name)
    ref, gen = pair(net, tmp_path, shape, source=committed_source(net))
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    a = ref.train()(x)
    torch.manual_seed(3)
    b = gen.train()(x)
    assert isinstance(a, tuple) and len(a) == len(b) == len(net.outputs) > 1
    assert a._fields == b._fields
    for u, v in zip(a, b):
        assert (u - v).abs().max().item() <= 1e-5


# the head is written after the trunk and reads `stem` (a value the trunk is done with) via `from:`
SIDE_HEAD_AFTER_TRUNK = """\
netc: 1
name: late_head
input: [3, 12, 12]
outputs: [logits, aux]
layers:
  - {name: stem, conv: {out: 4, k: 3, p: 1}}
  - {name: mid, conv: {out: 6, k: 3, p: 1}}
  - {name: deep, conv: {out: 6, k: 1}}
  - {name: head, from: stem, side: [gap, flatten, {name: fc, linear: {out: 3}}], output: aux, aux: true}
  - {name: pool, from: deep, gap: {}}
  - flatten
  - {name: fc, linear: {out: 5}, output: logits}
"""


def test_side_head_written_after_the_trunk_reads_its_from_value(tmp_path):
    """An aux head written after the trunk registers there, computes from its `from:` value in
    training (a NamedTuple like the interpreter's) and is skipped in eval mode."""
    import torch

    spec = tmp_path / "late_head.yaml"
    spec.write_text(SIDE_HEAD_AFTER_TRUNK, encoding="utf-8")
    net = netc.load(spec)
    ref, gen = pair(net, tmp_path)
    assert list(gen.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in gen.named_children()] == ["stem", "mid", "deep", "head", "pool", "flatten", "fc"]
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = ref.train()(x), gen.train()(x)
        assert b._fields == a._fields == ("logits", "aux")
        for u, v in zip(a, b):
            assert (u - v).abs().max().item() <= 1e-6
        want = gen.head(gen.stem(x))  # the head applied to the stem's output, by hand
        assert (b.aux - want).abs().max().item() <= 1e-6
        calls = []
        gen.head.register_forward_hook(lambda *_: calls.append(1))
        out = gen.eval()(x)
        assert torch.is_tensor(out) and not calls
        assert (out - ref.eval()(x)).abs().max().item() <= 1e-6


def test_every_op_generates_the_interpreters_module(tmp_path):
    """The spec that uses every op of the registry (test_torch_module's): generated code has the
    interpreter's parameters and outputs, so a new op joins the code generator too."""
    import torch

    from tests.test_torch_module import EVERY_OP

    net = netc.loads(f"netc: 1\nname: every\ninput: [4, 8, 8]\nlayers:\n{EVERY_OP}", "every.yaml")
    torch.manual_seed(0)  # some random weights drive the chain of ops to NaN, and NaN equals nothing
    ref, gen = pair(net, tmp_path)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        out = ref.eval()(x)
        assert torch.isfinite(out).all() and torch.equal(gen.eval()(x), out)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_committed_file_is_current(name):
    """generated/<name>.py is what netc generates now (regenerate: make generated)."""
    net = netc.load(SPECS / f"{name}.yaml")
    path = GENERATED / output_name(net)
    assert path.exists(), f"{path} missing: run make generated"
    assert path.read_text(encoding="utf-8") == generate(net), f"{path} is stale: run make generated"


def test_no_stray_generated_files():
    expected = {output_name(netc.load(SPECS / f"{n}.yaml")) for n in SPEC_NAMES}
    assert {p.name for p in GENERATED.glob("*.py")} == expected


def test_formatting_is_stable():
    """ruff format leaves every committed file unchanged."""
    out = subprocess.run([sys.executable, "-m", "ruff", "format", "--isolated", "--line-length", "100", "--check",
                          str(GENERATED)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", sorted(GENERATED.glob("*.py")), ids=lambda p: p.stem)
def test_imports_only_torch_and_stdlib(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= ALLOWED_IMPORTS
        elif isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in ALLOWED_IMPORTS, node.module


def test_deterministic():
    net = netc.load(SPECS / "resnet50.yaml")
    assert generate(net) == generate(netc.load(SPECS / "resnet50.yaml"))


def test_one_class_per_template_and_loops():
    src = (GENERATED / "resnet50.py").read_text(encoding="utf-8")
    tree = ast.parse(src)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name not in RUNTIME]
    assert classes == ["Bottleneck", "Resnet50"]  # one class; the projection is optional in it
    assert "if self.downsample is not None:" in src and "if project:" in src
    assert "for _ in range(5)" in src  # layer3's 5 identical blocks
    assert "def resnet50(num_classes=1000, width=64, features_only=False, out_indices=None)" in src
    assert "25,557,032 parameters" in src and "specs/resnet50.yaml" in src


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_factory_argument_is_honoured(name, tmp_path):
    """Each keyword argument of a factory changes the model exactly as --set changes the spec:
    numbers doubled (halved below 1) at once, state_dict shapes compared on the meta device."""
    import inspect

    import torch

    from netc.backends.torch.module import build_module

    net = netc.load(SPECS / f"{name}.yaml")
    mod = import_source((GENERATED / output_name(net)).read_text(encoding="utf-8"), tmp_path)
    make = factory(mod)
    kw = {}
    for p, param in inspect.signature(make).parameters.items():
        v = param.default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        kw[p] = v * 2 if v >= 1 else v / 2
    if not kw:
        pytest.skip("no numeric parameters")
    try:
        changed = netc.load(SPECS / f"{name}.yaml", overrides=kw)
    except netc.NetcError:
        pytest.skip(f"{kw} does not compile")
    with torch.device("meta"):
        gen = make(**kw)
    ref = build_module(changed, device="meta")
    assert shapes(gen) == shapes(ref)


def test_inception_v3_shorter_than_torchvision():
    """The generated file is shorter than torchvision's hand-written model classes."""
    import torchvision.models.inception as tv

    if not (GENERATED / "inception_v3.py").exists():
        pytest.skip("inception_v3.yaml not bundled")
    tree = ast.parse(Path(tv.__file__).read_text(encoding="utf-8"))
    model = sum(n.end_lineno - n.lineno + 1 for n in tree.body if isinstance(n, ast.ClassDef)
                and n.name != "Inception_V3_Weights")
    ours = (GENERATED / "inception_v3.py").read_text(encoding="utf-8").count("\n")
    assert model > 300 and ours < model, (ours, model)
    src = (GENERATED / "inception_v3.py").read_text(encoding="utf-8")
    for cls in ("InceptionA", "InceptionB", "InceptionC", "InceptionD", "InceptionE"):
        assert f"class {cls}(nn.Module)" in src


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "resnet20", "xception", "inception_resnet_v1", "googlenet"])
def test_torchscript(name, tmp_path):
    """Every op kind of the bundled specs scripts: LRN and dropout (alexnet), zero-pad shortcut as
    an optional module (resnet20), separable conv (xception), residual scale (inception_resnet_v1),
    concat and aux heads returning a NamedTuple (googlenet)."""
    import warnings

    import torch

    if not (SPECS / f"{name}.yaml").exists():
        pytest.skip(f"{name}.yaml not bundled")
    net, shape = small_input(name)
    ref, gen = pair(net, tmp_path, shape, source=committed_source(net))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(gen.eval())
    x = torch.randn(1, *shape)
    with torch.no_grad():
        out, want = scripted(x), ref.eval()(x)
    out = out[0] if isinstance(out, tuple) else out
    assert (out - want).abs().max().item() <= 1e-6


@pytest.mark.parametrize("path", sorted(GENERATED.glob("*.py")), ids=lambda p: p.stem)
def test_every_generated_model_scripts(path, tmp_path):
    """torch.jit.script compiles every committed model (on the meta device: no weights)."""
    import warnings

    import torch

    mod = import_source(path.read_text(encoding="utf-8"), tmp_path)
    with torch.device("meta"):
        model = factory(mod)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(model.eval())


def test_torch_compile(tmp_path):
    import torch

    net = netc.load(SPECS / "lenet5.yaml")
    ref, gen = pair(net, tmp_path)
    compiled = torch.compile(gen.eval(), backend="aot_eager")
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        assert (compiled(x) - ref.eval()(x)).abs().max().item() <= 1e-6


# The frontend admits only ASCII identifier-like names, so hostility left to codegen is: names
# of things generated code uses (keywords break the interpreter's fx code, so they are covered
# by test_names_are_sanitised), free text in descriptions, and strings.
HOSTILE = """
netc: 1
name: evil
description: 'ends the docstring \"\"\" then import os; a \\\\ backslash and a newline\\n'
input: [3, 16, 16]
params: {torch: 8, mode: "'); import os #"}
templates:
  Blk:
    description: "''' and \\"\\"\\" import os"
    args: {in_channels: int, max: 2, nn: "'); import os #"}
    body:
      - {name: torch, conv: {out: $in_channels, k: 3, p: 1}}
      - {name: self, bn: {}}
      - relu
      - {name: "0", conv: {out: $max * 2, k: 1}, if: "$nn == $mode"}
layers:
  - {name: x, use: Blk, args: {in_channels: $torch, nn: $mode}}
  - {name: nn, use: Blk, args: {in_channels: 4, max: 3, nn: $mode}}
  - {name: max, gap: {}}
  - flatten
  - {name: Tensor, linear: {out: 5}}
"""


def test_names_are_sanitised():
    from netc.backends.codegen.names import Names, is_identifier

    names = Names({"self", "torch"})
    hostile = ["x'); import os #", "größe", "0", "class", "match", "self", "torch", "a\nb", "", "x'); import os #"]
    out = [names.take(h) for h in hostile]
    assert all(is_identifier(o) for o in out) and len(set(out)) == len(out)
    assert not {"self", "torch", "class", "match"} & set(out)


def test_hostile_names_cannot_inject_code(tmp_path):
    import torch

    spec = tmp_path / "evil.yaml"
    spec.write_text(HOSTILE, encoding="utf-8")
    net = netc.load(spec)
    src = generate(net)
    tree = ast.parse(src)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all((n.names[0].name if isinstance(n, ast.Import) else n.module).split(".")[0] in ALLOWED_IMPORTS
               for n in imports)
    assert not any(isinstance(n, ast.Name) and n.id == "os" for n in ast.walk(tree))
    assert "ends the docstring" in ast.get_docstring(tree)
    ref, gen = pair(net, tmp_path)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert (ref.eval()(x) - gen.eval()(x)).abs().max().item() <= 1e-6


def test_cli_writes_atomically_and_not_on_error(netc_cli, tmp_path):
    code, out, err = netc_cli("codegen", SPECS / "lenet5.yaml", "-o", tmp_path)
    assert code == 0, err
    assert (tmp_path / "lenet5.py").read_text(encoding="utf-8") == (GENERATED / "lenet5.py").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("netc: 1\nname: bad\ninput: [3, 8, 8]\nlayers:\n  - {conv: {out: 4, k: 9}}\n", encoding="utf-8")
    code, out, err = netc_cli("codegen", bad, "-o", tmp_path / "out")
    assert code == 2 and "error[shape]" in err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_api_codegen(tmp_path):
    net = netc.load(SPECS / "lenet5.yaml")
    assert net.codegen() == net.codegen(tmp_path) == (tmp_path / "lenet5.py").read_text(encoding="utf-8")


def test_build_writes_generated_source(netc_cli, tmp_path):
    code, out, err = netc_cli("build", "lenet5", "--device", "cpu", "--codegen-dir", tmp_path)
    assert code == 0, err
    assert (tmp_path / "lenet5.py").read_text(encoding="utf-8") == (GENERATED / "lenet5.py").read_text(encoding="utf-8")


def test_block_reentered_by_data_flow_is_a_clean_error(netc_cli, tmp_path):
    """A 'from:' that leaves a template instance and comes back cannot be one call of its class:
    exit 2, located at the instance, nothing written. (A named seq or repeat so re-entered is
    written as a list its parent's forward calls: tests/test_zoo_res2_hrnet.py.)"""
    spec = tmp_path / "reenter.yaml"
    spec.write_text("netc: 1\nname: reenter\ninput: [3, 8, 8]\ntemplates:\n"
                    "  Blk: {body: [{name: a, conv: {out: 4, k: 1}}, {name: b, add: {}, from: [a, c]}]}\nlayers:\n"
                    "  - {name: blk, use: Blk}\n"
                    "  - {name: c, conv: {out: 4, k: 1}, from: blk.a}\n"
                    "  - {name: d, add: {}, from: [blk, c]}\n", encoding="utf-8")
    code, _, err = netc_cli("codegen", spec, "-o", tmp_path / "out")
    assert code == 2 and "reenter.yaml:7:5: error[codegen]" in err and "'blk'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["vgg11", "xception", "inception_v3"])
def test_factory_initialises_like_netc_build(name, tmp_path):
    """The generated model applies the spec's init scheme: every tensor that netc build fills with
    a constant is that constant, every random one has netc build's mean and spread (within 10%)."""
    import torch

    net = netc.load(SPECS / f"{name}.yaml")
    torch.manual_seed(0)
    ref = net.build(device="cpu").state_dict()
    torch.manual_seed(1)
    gen = factory(import_source(generate(net), tmp_path))().state_dict()
    for key, a in ref.items():
        b = gen[key]
        if not a.is_floating_point():
            continue
        if (a == a.flatten()[0]).all():
            assert torch.equal(a, b), key
        elif a.numel() >= 4096:
            sa, sb = a.std().item(), b.std().item()
            assert abs(sa - sb) <= 0.1 * sa and abs(a.mean().item() - b.mean().item()) <= 0.1 * sa, (key, sa, sb)
