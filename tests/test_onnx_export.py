"""`netc export --onnx` of every bundled spec: onnx.checker, ONNX shape inference against netc's
shapes, onnxruntime against torch (same weights) at batch 1, and at a dynamic batch for specs
that together use every op kind; scope names on nodes and initialisers; hazards located in the
spec; bad input without a traceback."""
import functools
import math

import pytest
import torch

import netc
from tests.conftest import ROOT, SPECS
from tests.conftest import calibrate
from tests.test_codegen import small_input

onnx = pytest.importorskip("onnx")  # guard for a run without the test extra (CI installs it)
ort = pytest.importorskip("onnxruntime")

BUNDLED = sorted(p.stem for p in SPECS.glob("*.yaml"))
# the op kind of every node of every bundled spec, compiled once per process
OPS = {name: [d.op for _, d in netc.load(name).nodes()] for name in BUNDLED}
# the export's time grows with the ops: the largest first (the `heavy` marker runs the sweep first)
LARGEST_FIRST = sorted(BUNDLED, key=lambda name: -len(OPS[name]))


def export_input(name):
    """A small input (test_codegen's) doubled until every batch norm normalises at least 2x2
    positions per channel: on 1x1 maps a random-init network's calibrated statistics are so
    ill-conditioned (EfficientNetV2-S at 32x32) that float32 reorderings differ at 1e-3 of the output."""
    net, shape = small_input(name)
    while shape != net.input_shape:
        small = netc.load(name, input_shape=shape)
        if all(math.prod(d.shape[1:]) >= 4 for _, d in small.nodes() if d.op == "bn"):
            break
        shape = (shape[0], *(min(2 * s, full) for s, full in zip(shape[1:], net.input_shape[1:])))
    return shape


@functools.lru_cache(maxsize=None)
def dynamic_batch_specs() -> frozenset[str]:
    """Bundled specs that together use every op kind of the catalogue, chosen greedily by new op
    kinds per node. A symbolic batch costs torch's exporter about 1.5x a fixed one (symbolic shape
    arithmetic at every node), and whether an op keeps the batch symbolic is the op's property, so
    every op kind is exported with a dynamic batch at least once, the other specs with a fixed one."""
    kinds = {name: set(ops) for name, ops in OPS.items()}
    left, chosen = set().union(*kinds.values()), set()
    while left:
        best = max(BUNDLED, key=lambda n: (len(kinds[n] & left) / len(OPS[n]), -len(OPS[n])))
        chosen.add(best)
        left -= kinds[best]
    return frozenset(chosen)


def test_dynamic_batch_specs_cover_every_op_kind():
    chosen = dynamic_batch_specs()
    assert {op for name in chosen for op in OPS[name]} == {op for ops in OPS.values() for op in ops}
    assert len(chosen) < len(BUNDLED) / 2 and "resnet1202" not in chosen


@pytest.mark.heavy
@pytest.mark.parametrize("name", LARGEST_FIRST)
def test_export_every_bundled_spec(name, tmp_path):
    """Batch norms calibrated on one batch first (as in test_codegen), so eval outputs stay finite
    through ResNet-1202's 600 blocks and the parity check compares real numbers."""
    net = netc.load(name, input_shape=export_input(name))  # the sweep checks export, not arithmetic
    shape = net.input_shape
    dynamic = name in dynamic_batch_specs()
    torch.manual_seed(0)  # random weights, the same every run: parity is checked on fixed numbers
    module = net.build()
    calibrate(module, shape)
    out = tmp_path / f"{name}.onnx"
    verdict = net.export_onnx(out, dynamic_batch=dynamic, module=module)
    assert set(verdict.max_diff) == ({1, 3} if dynamic else {1})
    assert verdict.shapes_checked >= len(list(net.nodes())) // 2
    model = onnx.load(str(out), load_external_data=False)
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert bool(batch.dim_param) == dynamic and (dynamic or batch.dim_value == 1)
    names = {n.name for n in model.graph.node}
    assert any(d.scope in names for _, d in net.nodes() if d.op == "conv")


def test_scope_names_on_nodes_initialisers_and_tensors(tmp_path):
    import netc

    net = netc.load("resnet18", input_shape=(3, 64, 64))
    path = tmp_path / "r18.onnx"
    verdict = net.export_onnx(path)
    model = onnx.load(str(path))
    nodes = {n.name: n.op_type for n in model.graph.node}
    assert nodes["layer1.0.conv1"] == "Conv" and nodes["layer1.0.bn1"] == "BatchNormalization"
    assert nodes["fc"] == "Gemm"
    inits = {i.name for i in model.graph.initializer}
    assert {"layer1.0.conv1.weight", "layer2.0.downsample.1.running_var", "fc.bias"} <= inits
    values = {v.name for v in model.graph.value_info}
    assert "layer3.1.bn2" in values
    assert verdict.shapes_checked >= 40 and set(verdict.max_diff) == {1}


def test_weights_are_loaded_strictly(tmp_path, netc_cli):
    import torch

    import netc

    net = netc.load("resnet20")
    module = net.build()
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):  # visible in the output, and keeps it finite
                p.add_(0.5)
    weights = tmp_path / "w.pt"
    torch.save(module.state_dict(), weights)
    code, stdout, stderr = netc_cli("export", "resnet20", "--onnx", tmp_path / "a.onnx", "--weights", weights)
    assert code == 0, stderr
    model = onnx.load(str(tmp_path / "a.onnx"))
    got = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for key, value in module.state_dict().items():
        if key in got:
            assert (got[key] == value.numpy()).all(), key
    bad = tmp_path / "bad.pt"
    torch.save({k: v for k, v in module.state_dict().items() if not k.endswith("running_var")}, bad)
    code, stdout, stderr = netc_cli("export", "resnet20", "--onnx", tmp_path / "b.onnx", "--weights", bad)
    assert code == 2 and "error[weights]" in stderr and "missing" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "b.onnx").exists()


def test_torch_export_program_round_trips(tmp_path, netc_cli):
    import torch

    import netc

    path = tmp_path / "r20.pt2"
    code, stdout, stderr = netc_cli("export", "resnet20", "--torch-export", path, "--dynamic-batch")
    assert code == 0, stderr
    program = torch.export.load(str(path))
    net = netc.load("resnet20")
    module = net.build().eval()
    module.load_state_dict(program.state_dict, strict=False)  # buffers live in constants
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), module(x), atol=1e-5)


def test_every_op_exports(tmp_path):
    """The spec that uses every op of the registry (test_torch_module's) exports with a dynamic
    batch and matches onnxruntime: the sweep over bundled specs covers only the ops they use."""
    import torch

    import netc
    from tests.test_torch_module import EVERY_OP

    net = netc.loads(f"netc: 1\nname: every\ninput: [4, 8, 8]\nlayers:\n{EVERY_OP}", "every.yaml")
    torch.manual_seed(0)
    verdict = net.export_onnx(tmp_path / "every.onnx", dynamic_batch=True, module=net.build().eval())
    assert set(verdict.max_diff) == {1, 3} and verdict.shapes_checked >= len(list(net.nodes())) // 2


def test_several_outputs_are_exported_named_and_compared(tmp_path):
    """Every output a forward returns leaves the ONNX graph under its spec name and is compared
    with onnxruntime; the torch.export program returns them as a plain tuple in that order."""
    import torch

    import netc
    from tests.test_compile import SEVERAL_OUTPUTS

    net = netc.loads(SEVERAL_OUTPUTS, "several.yaml")
    torch.manual_seed(0)
    module = net.build().eval()
    verdict = net.export_onnx(tmp_path / "several.onnx", dynamic_batch=True, module=module)
    assert set(verdict.max_diff) == {1, 3}
    model = onnx.load(str(tmp_path / "several.onnx"))
    assert [o.name for o in model.graph.output] == ["out", "left", "pooled"]
    net.export_program(tmp_path / "several.pt2", dynamic_batch=True, module=module)
    program = torch.export.load(str(tmp_path / "several.pt2"))
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        got, want = program.module()(x), module(x)
    assert type(got) is tuple and len(got) == 3
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want))


HAZARD_SPEC = """netc: 1
name: hazards
input: [3, 30, 30]
layers:
  - {conv: {out: 8, k: 3}}
  - {name: pool, maxpool: {k: 3, s: 2, ceil_mode: true}}
  - {name: squeeze, adaptive_avgpool: {out: 4}}
  - flatten
  - {linear: {out: 2}}
"""


def test_hazards_are_located_and_hinted(tmp_path, netc_cli):
    spec = tmp_path / "hazards.yaml"
    spec.write_text(HAZARD_SPEC)
    code, stdout, stderr = netc_cli("export", spec, "--onnx", tmp_path / "h.onnx")
    assert code == 0, stderr  # warnings only: both export exactly, and parity is verified
    assert f"{spec}:6:5: warning[export]: maxpool 'pool': ceil_mode rounds 28×28 up to 14×14 (floor: 13×13)" in stderr
    assert f"{spec}:7:5: warning[export]: adaptive_avgpool 'squeeze': output 4×4 does not divide its 14×14" in stderr
    assert stderr.count("hint:") == 2


def test_fatal_hazard_stops_before_writing(tmp_path, netc_cli):
    spec = tmp_path / "bad.yaml"
    spec.write_text(HAZARD_SPEC.replace("adaptive_avgpool", "adaptive_maxpool"))
    out = tmp_path / "bad.onnx"
    code, stdout, stderr = netc_cli("export", spec, "--onnx", out)
    assert code == 2 and "Traceback" not in stderr
    assert f"{spec}:7:5: error[export]: adaptive_maxpool 'squeeze' cannot be exported to ONNX" in stderr
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    ((), "nothing to do"),
    (("--onnx", "{tmp}/x.onnx", "--opset", "11"), "11 is not an opset the exporter writes: 18 to"),
    (("--onnx", "{tmp}/x.onnx", "--weights", "{tmp}/none.pt"), "no such weights file"),
])
def test_bad_export_requests_are_clear(args, words, tmp_path, netc_cli):
    code, stdout, stderr = netc_cli("export", "lenet5", *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and words in stderr and "Traceback" not in stderr
    assert not (tmp_path / "x.onnx").exists()


def test_export_needs_no_backend_import_in_cli():
    source = (ROOT / "netc" / "cli" / "export.py").read_text()
    assert "netc.backends" not in source
