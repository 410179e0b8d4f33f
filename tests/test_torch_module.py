"""The torch backend: module structure, aux outputs, devices and dtypes, init schemes, copying,
pickling, TorchScript, torch.compile and the `netc build` command."""
import copy
import math
import pickle

import pytest
import torch

import netc
from netc.backends.torch.module import NetcModule, ShapeMismatch, confirm_shapes
from netc.errors import NetcError
from tests.conftest import SPECS

torchvision = pytest.importorskip("torchvision")


def tiny(text_layers: str, extra: str = "") -> "netc.api.Network":
    return netc.loads(f"netc: 1\nname: tiny\ninput: [3, 16, 16]\n{extra}layers:\n{text_layers}", "tiny.yaml")


TINY_AUX = """\
  - {name: stem, conv: {out: 8, k: 3, p: 1}}
  - {name: bn, bn: {}}
  - relu
  - {name: head, side: [{gap: {}}, flatten, {name: fc, linear: {out: 3}}], output: aux, aux: true}
  - {name: body, conv: {out: 4, k: 3, s: 2, p: 1}}
  - {gap: {}}
  - flatten
  - {name: fc, linear: {out: 5}}
"""


def test_hierarchy_mirrors_scopes():
    net = netc.load(SPECS / "resnet50.yaml")
    m = net.build(device="meta")
    assert isinstance(m, torch.fx.GraphModule)
    scopes = {d.scope for _, d in net.nodes()}
    leaves = {name for name, mod in m.named_modules() if name and not list(mod.children())}
    assert leaves == scopes
    assert isinstance(m.get_submodule("layer1.0.conv1"), torch.nn.Conv2d)
    assert set(m.state_dict()) == set(torchvision.models.resnet50().state_dict())


def test_meta_device_allocates_nothing():
    m = netc.load(SPECS / "vgg16.yaml").build(device="meta")
    assert all(p.is_meta for p in m.parameters())


def test_confirm_shapes_catches_a_wrong_ir_shape():
    net = netc.load(SPECS / "resnet18.yaml", input_shape=(3, 64, 64))
    m = net.build(device="meta")
    assert confirm_shapes(m, net) == len(list(net.nodes()))
    nid = next(nid for nid, d in net.nodes() if d.scope == "layer2.0.conv1")
    net.graph.node(nid).shape = (128, 9, 9)
    with pytest.raises(ShapeMismatch, match="layer2.0.conv1"):
        confirm_shapes(m, net)


def test_aux_outputs_train_tuple_eval_tensor():
    net = tiny(TINY_AUX)
    m = net.build()
    x = torch.randn(2, 3, 16, 16)
    out = m.train()(x)
    assert out._fields == ("out", "aux") and out.out.shape == (2, 5) and out.aux.shape == (2, 3)
    m.eval()
    y = m(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 5)


def test_eval_forward_does_not_run_aux_head():
    net = tiny(TINY_AUX)
    m = net.build().eval()
    calls = []
    m.get_submodule("head.fc").register_forward_hook(lambda *a: calls.append(1))
    m(torch.randn(2, 3, 16, 16))
    assert calls == []
    m.train()(torch.randn(2, 3, 16, 16))
    assert calls == [1]


def test_outputs_order_and_unknown_name():
    net = tiny(TINY_AUX, "outputs: [aux, out]\n")
    out = net.build().train()(torch.randn(2, 3, 16, 16))
    assert out._fields == ("aux", "out")
    with pytest.raises(NetcError) as exc:
        tiny(TINY_AUX, "outputs: [out, auxx]\n").build(device="meta")
    assert "did you mean 'aux'" in str(exc.value)


@pytest.mark.parametrize("spec, size, ctor, names", [
    ("googlenet", 64, "googlenet", ("logits", "aux_logits2", "aux_logits1")),
    ("inception_v3", 299, "inception_v3", ("logits", "aux_logits")),
])
def test_aux_outputs_match_torchvision_in_train_mode(spec, size, ctor, names):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, ctor)(aux_logits=True, init_weights=True).train()
    m = netc.load(SPECS / f"{spec}.yaml", input_shape=(3, size, size)).build(device="meta")
    m.load_state_dict(ref.state_dict(), strict=True, assign=True)
    m.train()
    x = torch.randn(2, 3, size, size)
    torch.manual_seed(1)  # dropout draws in the same order in both
    want = ref(x)
    torch.manual_seed(1)
    got = m(x)
    assert got._fields == names and len(want) == len(got)
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() <= 1e-5
    for (k, a), (k2, b) in zip(sorted(m.state_dict().items()), sorted(ref.state_dict().items())):
        assert k == k2 and torch.allclose(a.float(), b.float(), atol=1e-6), k  # BN running stats updated alike


def test_without_aux_heads_train_mode_returns_the_tensor():
    net = netc.load(SPECS / "googlenet.yaml", {"aux_logits": False}, input_shape=(3, 64, 64))
    assert net.params == 6_624_904  # torchvision googlenet(aux_logits=False)
    m = net.build()
    assert not m.program.has_aux
    assert isinstance(m.train()(torch.randn(2, 3, 64, 64)), torch.Tensor)


def test_deepcopy_copy_and_pickle_keep_the_class_and_weights():
    net = tiny(TINY_AUX)
    m = net.build().eval()
    x = torch.randn(2, 3, 16, 16)
    want = m(x)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert isinstance(clone, NetcModule) and not clone.training
        assert torch.equal(clone(x), want)
        assert clone.get_submodule("stem").weight is not m.get_submodule("stem").weight
        assert clone.train()(x)._fields == ("out", "aux")
    shallow = copy.copy(m)
    assert isinstance(shallow, NetcModule) and shallow.get_submodule("stem") is m.get_submodule("stem")


def test_torch_save_whole_module(tmp_path):
    m = netc.load(SPECS / "resnet18.yaml", input_shape=(3, 32, 32)).build().eval()
    torch.save(m, tmp_path / "m.pt")
    back = torch.load(tmp_path / "m.pt", weights_only=False)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(back(x), m(x))


def test_jit_trace():
    # torch.jit.script cannot compile the variadic forward of runtime.Add/Concat; trace can
    for m, x in ((netc.load(SPECS / "resnet18.yaml", input_shape=(3, 32, 32)).build(), torch.randn(2, 3, 32, 32)),
                 (tiny(TINY_AUX).build(), torch.randn(2, 3, 16, 16))):
        m.eval()
        with pytest.warns(FutureWarning):
            traced = torch.jit.trace(m, x)
        assert torch.allclose(traced(x), m(x), atol=1e-5)


def test_torch_compile():
    net = netc.load(SPECS / "lenet5.yaml")
    m = net.build().eval()
    x = torch.randn(2, *net.input_shape)
    compiled = torch.compile(m)
    assert torch.allclose(compiled(x), m(x), atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_dtype(dtype):
    m = netc.load(SPECS / "resnet18.yaml", input_shape=(3, 32, 32)).build(dtype=dtype)
    assert {p.dtype for p in m.parameters()} == {getattr(torch, dtype)}
    if dtype == "bfloat16":
        assert m.eval()(torch.randn(1, 3, 32, 32, dtype=torch.bfloat16)).shape == (1, 1000)


def test_cuda_absent_is_a_clean_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(NetcError) as exc:
        netc.load(SPECS / "lenet5.yaml").build(device="cuda")
    assert exc.value.diagnostics[0].code == "device"


def test_name_shadowing_a_module_attribute_is_an_error():
    with pytest.raises(NetcError) as exc:
        tiny("  - {name: forward, conv: {out: 4, k: 3}}\n").build(device="meta")
    assert exc.value.diagnostics[0].code == "name"


# --- initialisation --------------------------------------------------------------------------

def std(t):
    return t.float().std().item()


def test_init_resnet_preset_is_torchvisions():
    m = netc.load(SPECS / "resnet50.yaml", input_shape=(3, 32, 32)).build()
    w = m.get_submodule("layer3.0.conv2").weight  # 256 out, 3x3: kaiming fan_out std sqrt(2 / (256*9))
    assert std(w) == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.05)
    bn = m.get_submodule("layer1.0.bn1")
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0) and torch.all(bn.running_var == 1)
    fc = m.get_submodule("fc")  # torchvision leaves the classifier at nn.Linear's default
    assert fc.weight.abs().max().item() <= 1 / math.sqrt(2048) + 1e-6


def test_init_vgg_preset():
    m = netc.load(SPECS / "vgg11_bn.yaml", input_shape=(3, 32, 32)).build()
    assert std(m.get_submodule("classifier.0").weight) == pytest.approx(0.01, rel=0.05)
    assert torch.all(m.get_submodule("classifier.0").bias == 0)
    assert torch.all(m.get_submodule("features.0").bias == 0)


def test_init_rules_by_scope():
    m = netc.load(SPECS / "inception_v3.yaml").build(device="cpu")
    assert std(m.get_submodule("Mixed_5b.branch1x1.conv").weight) == pytest.approx(0.1, rel=0.05)
    assert std(m.get_submodule("AuxLogits.conv1.conv").weight) == pytest.approx(0.01, rel=0.05)
    assert std(m.get_submodule("AuxLogits.fc").weight) == pytest.approx(0.001, rel=0.05)


def test_init_default_and_disabled_keep_torch_defaults():
    net = tiny("  - {name: c, conv: {out: 64, k: 3}}\n", "init: {preset: resnet, rules: [{op: conv, bias: 0.5}]}\n")
    m = net.build()
    assert torch.all(m.c.bias == 0.5)
    plain = net.build(init=False)
    assert plain.c.weight.abs().max().item() <= 1 / math.sqrt(27) + 1e-6  # kaiming_uniform(a=sqrt(5)) bound


@pytest.mark.parametrize("init, message", [("resnett", "resnet"), ("{rules: [{op: convv, weight: 0}]}", "did you mean 'conv'")])
def test_bad_init_is_a_located_error(init, message):
    with pytest.raises(NetcError) as exc:
        tiny("  - {name: c, conv: {out: 4, k: 3}}\n", f"init: {init}\n")
    assert exc.value.diagnostics[0].loc.line == 4 and message in str(exc.value)


# --- netc build --------------------------------------------------------------------------------

def test_cli_build_saves_a_loadable_state_dict(netc_cli, tmp_path):
    out = tmp_path / "m.pt"
    code, stdout, _ = netc_cli("build", SPECS / "resnet18.yaml", "--device", "cpu", "--save", out,
                               "--set", "num_classes=10")
    assert code == 0, stdout
    assert "11,181,642 parameters" in stdout and "layer4" in stdout
    sd = torch.load(out)
    ref = torchvision.models.resnet18(num_classes=10)
    ref.load_state_dict(sd, strict=True)


def test_cli_build_errors(netc_cli, tmp_path):
    if not torch.cuda.is_available():
        code, _, stderr = netc_cli("build", SPECS / "lenet5.yaml", "--device", "cuda")
        assert code == 2 and "error[device]" in stderr and "Traceback" not in stderr
    code, _, stderr = netc_cli("build", tmp_path / "missing.yaml", "--save", tmp_path / "m.pt")
    assert code == 2 and not (tmp_path / "m.pt").exists()


def test_cli_build_refuses_what_does_not_fit(netc_cli, monkeypatch):
    import netc.backends.torch.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 2**20)
    code, _, stderr = netc_cli("build", SPECS / "resnet18.yaml", "-q", "--device", "cpu", "--codegen-dir", "")
    assert code == 2 and "error[limit]" in stderr


def test_api_build_refuses_what_does_not_fit_before_allocating(monkeypatch):
    """`Network.build` is the pipeline `netc build` runs: an API user gets the same error[limit]."""
    import netc.backends.torch.memory as memory
    import netc.backends.torch.module as module

    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 2**20)
    net = netc.load(SPECS / "resnet18.yaml")
    with monkeypatch.context() as m:
        m.setattr(module, "build_module", lambda *a, **k: pytest.fail("allocated before the memory check"))
        for dtype in ("float32", "bfloat16"):  # 11.7M parameters: 45 MiB in float32, 22 MiB in bfloat16
            with pytest.raises(NetcError) as exc:
                net.build(device="cpu", dtype=dtype)
            assert exc.value.codes == ["limit"] and "0.01 GiB is available" in exc.value.diagnostics[0].message
    assert net.build(device="meta").fc.weight.is_meta  # the meta device allocates nothing: no limit


def test_api_build_reports_what_it_established():
    from netc.api import build

    net = netc.load(SPECS / "lenet5.yaml")
    built = build(net, "cpu", "bfloat16", confirm=True)
    assert built.confirmed == len(list(net.nodes()))
    assert built.bytes == 2 * sum(p.numel() for p in built.module.parameters()) + 2 * sum(
        b.numel() for b in built.module.buffers())
    assert next(built.module.parameters()).dtype == torch.bfloat16
    assert build(net, "meta").confirmed is None


def test_inplace_op_on_a_shared_value_is_an_error():
    shared = """\
  - {name: a, conv: {out: 4, k: 3}}
  - {name: r, relu: {inplace: true}}
  - {name: b, conv: {out: 4, k: 1}}
  - {from: [a, b], add: {}}
"""
    with pytest.raises(NetcError) as exc:
        tiny(shared).build(device="meta")
    d = exc.value.diagnostics[0]
    assert d.code == "inplace" and "'a'" in d.message and d.loc.line == 6


EVERY_OP = """\
  - {name: c, conv: {out: 8, k: 3, p: 1, groups: 2}}
  - {name: sc, sepconv: {out: 8, k: [3, 1], p: [1, 0]}}
  - {name: bn, bn: {}}
  - {name: ws, conv: {out: 8, k: 3, p: tf_same, ws: {gain: true}}}
  - {blurpool: {s: 1}}
  - {maxpool: {k: 3, s: 1, p: tf_same}}
  - {affine: {scale: 1.5}}
  - {channel_scale: {init: 0.5}}
  - {bn: {frozen: true}}
  - {name: sq, pow: {exponent: 2.0}}
  - {name: g0, seq: [gap, {reshape: {shape: [1, 8]}}, {conv1d: {out: 1, k: 3, p: 1, bias: false}}, sigmoid,
                     {reshape: {shape: [8, 1, 1]}}]}
  - {name: gx, from: [g0, sq], expand_as: {}}
  - {name: den, from: sq, softplus: {}}
  - {name: q, from: [gx, den], div: {}}
  - {from: [q, sq], sub: {}}
  - {grn: {over: channels}}
  - {lrn: {size: 3}}
  - relu
  - relu6
  - {leaky_relu: {negative_slope: 0.2}}
  - gelu
  - {gelu: {approximate: tanh}}
  - mish
  - selu
  - {elu: {alpha: 0.5}}
  - {celu: {alpha: 2.0}}
  - {softplus: {beta: 2.0, threshold: 5.0}}
  - {hardtanh: {min_val: -3.0, max_val: 3.0}}
  - prelu
  - {prelu: {per_channel: true, init: 0.1}}
  - silu
  - softsign
  - {residual: {body: [{conv: {out: 16, k: 3, p: 1}}, sigmoid], shortcut: {pad_channels: {out: 16}}, scale: 0.5,
                then: tanh}}
  - {softmax: {dim: 0}}
  - {upsample: {scale: 2, mode: bilinear}}
  - {conv_transpose: {out: 16, k: 3, s: 2, p: 1, output_padding: 1, groups: 2}}
  - {conv: {out: 16, k: 2, s: 2}}
  - {pixel_shuffle: {factor: 2}}
  - {pixel_unshuffle: {factor: 2}}
  - {pad: {p: [1, 0, 2, 1], mode: reflect}}
  - {pad: {p: [1, 2], mode: replicate}}
  - {pad: {p: 1, value: 0.5}}
  - {conv: {out: 16, k: [6, 5]}}
  - {maxpool: {k: 2}}
  - {maxpool: {k: 2}}
  - {upsample: {size: [4, 4]}}
  - {avgpool: {k: 3, s: 1, p: 1, count_include_pad: false}}
  - {name: pools, concat: [{adaptive_avgpool: {out: 4}}, {adaptive_maxpool: {out: [4, 4]}}, identity]}
  - {name: mix, from: [pools, pools], cat: {}}
  - {name: sum, from: [mix, mix], add: {}}
  - {scale: {factor: 2.0}}
  - {groupnorm: {groups: 4}}
  - {groupnorm: {groups: 2, bias: false}}
  - {instancenorm: {affine: true, track_running_stats: true, eps: 1.0e-3}}
  - {layernorm: {}}
  - {channel_shuffle: {groups: 2}}
  - {name: part, chunk: {parts: 2, index: 1}}
  - {name: narrow, slice: {start: 1, end: -1}}
  - {name: gate, seq: [gap, hardsigmoid]}
  - {name: se, from: [narrow, gate], mul: {}}
  - {hardswish: {}}
  - {name: ls, layer_scale: {init: 0.5}}
  - {name: lsf, layer_scale: {init: 0.25, flat: true}}
  - {normalize: {}}
  - {name: sd, stochastic_depth: {p: 0.2}}
  - {name: bsum, from: [sd, gate], add: {broadcast: true}}
  - {permute: {dims: [1, 2, 0]}}
  - {layernorm: {over: last}}
  - {name: lb, layer_bias: {init: 0.1, shape: [1]}}
  - {name: wide, from: [lb, lb], cat: {dim: -1}}
  - {linear: {out: 8}}
  - {reshape: {shape: [16, 8]}}
  - {permute: {dims: [1, 0]}}
  - {name: r, reshape: {shape: [8, 4, 4]}}
  - {name: pair, from: [r, r], stack: {dim: 0}}
  - {name: paths, sum: {dims: [0]}}
  - {name: desc, mean: {dims: [1, 2], keepdim: true}}
  - {from: [paths, desc], mul: {}}
  - gap
  - {flatten: {start: 0, end: 2}}
  - {dropout: {p: 0.1}}
  - {linear: {out: 3}}
  - {log_softmax: {dim: 0}}
"""


def test_every_op_builds_runs_and_trains():
    from netc.ops import REGISTRY

    net = netc.loads(f"netc: 1\nname: every\ninput: [4, 8, 8]\nlayers:\n{EVERY_OP}", "every.yaml")
    assert {d.op for _, d in net.nodes()} == set(REGISTRY)  # a new op must join this test
    m = net.build()
    assert confirm_shapes(m, net) == len(list(net.nodes()))
    out = m.train()(torch.randn(2, 4, 8, 8))
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
