"""Training cost predicted before a run (netc.analysis.train) against what torch does.

The per-op facts (`Op.autograd`) are checked against the tensors torch's autograd actually saves
(`saved_tensors_hooks`) for every registered op; the whole-step prediction against the peak the
CPU allocator reports for a real training step (netc.backends.torch.train_memory) within 10%; the
FLOP count of conv/linear against torch's FlopCounterMode on a real step."""
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import netc
from netc.analysis import onednn
from netc.analysis.onednn import ISAS, RULES
from netc.analysis.train import describe, max_batch, parse_bytes, predict
from netc.backends.torch.module import make_leaf, resolve
from netc.backends.torch.train_memory import measure_training_peak
from netc.ops import REGISTRY, numel
from tests.conftest import ROOT, SPECS, run_without_torch
from tools import train_peaks

BATCH = 2
# op -> [(attrs, input shapes)]: a case per behaviour (in place or not, flat or map, ...)
CASES = {
    "conv": [({"out": 4, "k": 3, "p": 1}, [(8, 6, 6)]), ({"out": 8, "k": 3, "groups": 8}, [(8, 6, 6)])],
    "conv_transpose": [({"out": 4, "k": 3, "s": 2, "p": 1, "output_padding": 1}, [(8, 6, 6)]),
                       ({"out": 8, "k": 2, "s": 2, "groups": 4, "bias": False}, [(8, 6, 6)])],
    "sepconv": [({"out": 12, "k": 3, "s": 2, "p": 1}, [(8, 6, 6)])],
    "bn": [({}, [(8, 6, 6)]), ({}, [(8,)])],
    "lrn": [({"size": 5}, [(8, 6, 6)]), ({"size": 3}, [(4, 5, 5)])],
    "relu": [({}, [(8, 6, 6)]), ({"inplace": True}, [(8, 6, 6)])],
    "relu6": [({}, [(8, 6, 6)]), ({"inplace": True}, [(8, 6, 6)])],
    "silu": [({}, [(8, 6, 6)]), ({"inplace": True}, [(8, 6, 6)])],
    "leaky_relu": [({}, [(8, 6, 6)]), ({"inplace": True}, [(8, 6, 6)])],
    "sigmoid": [({}, [(8, 6, 6)])],
    "tanh": [({}, [(8, 6, 6)])],
    "gelu": [({}, [(8, 6, 6)]), ({"approximate": "tanh"}, [(8, 6, 6)])],
    "mish": [({}, [(8, 6, 6)]), ({"inplace": True}, [(8, 6, 6)])],
    "selu": [({}, [(8, 6, 6)]), ({"inplace": True}, [(8, 6, 6)])],
    "elu": [({}, [(8, 6, 6)]), ({"alpha": 0.5, "inplace": True}, [(8, 6, 6)])],
    "celu": [({}, [(8, 6, 6)]), ({"alpha": 0.5, "inplace": True}, [(8, 6, 6)])],
    "softplus": [({}, [(8, 6, 6)]), ({"beta": 2.0, "threshold": 5.0}, [(8,)])],
    "softsign": [({}, [(8, 6, 6)]), ({}, [(8,)])],
    "hardtanh": [({}, [(8, 6, 6)]), ({"min_val": -2.0, "max_val": 2.0, "inplace": True}, [(8, 6, 6)])],
    "prelu": [({}, [(8, 6, 6)]), ({"per_channel": True, "init": 0.1}, [(8, 6, 6)]), ({"per_channel": True}, [(8,)])],
    "softmax": [({}, [(10,)]), ({"dim": 0}, [(8, 6, 6)])],
    "log_softmax": [({}, [(10,)])],
    "add": [({}, [(8, 6, 6)] * 2), ({}, [(8, 6, 6)] * 3), ({"broadcast": True}, [(8, 6, 6), (8, 1, 1)])],
    "cat": [({}, [(8, 6, 6), (4, 6, 6)]), ({"dim": -1}, [(6, 6, 8), (6, 6, 4)])],
    "scale": [({"factor": 0.2}, [(8, 6, 6)])],
    "pad": [({"p": 1}, [(8, 6, 6)]), ({"p": [1, 2, 0, 3], "mode": "reflect"}, [(8, 6, 6)]),
            ({"p": [2, 1], "mode": "replicate"}, [(8, 6, 6)]), ({"p": 2, "mode": "circular"}, [(8, 6, 6)]),
            ({"p": 1, "value": -1.0}, [(8, 6, 6)])],
    "pad_channels": [({"out": 12, "s": 2}, [(8, 6, 6)])],
    "maxpool": [({"k": 3, "s": 2, "p": 1}, [(8, 7, 7)])],
    "avgpool": [({"k": 2}, [(8, 6, 6)])],
    "adaptive_avgpool": [({"out": 2}, [(8, 6, 6)]), ({"out": 1}, [(8, 6, 6)])],
    "adaptive_maxpool": [({"out": 2}, [(8, 6, 6)])],
    "gap": [({}, [(8, 6, 6)])],
    "flatten": [({}, [(8, 6, 6)]), ({"start": 1}, [(8, 6, 6)])],
    "linear": [({"out": 4}, [(8,)]), ({"out": 4, "bias": False}, [(8,)]), ({"out": 4}, [(6, 6, 8)])],
    "dropout": [({"p": 0.5}, [(8, 6, 6)]), ({"p": 0.5, "inplace": True}, [(8, 6, 6)]), ({"p": 0.0}, [(8,)])],
    "identity": [({}, [(8, 6, 6)])],
    "hardswish": [({}, [(8, 6, 6)]), ({"inplace": True}, [(8, 6, 6)])],
    "hardsigmoid": [({}, [(8, 6, 6)]), ({"inplace": True}, [(8, 6, 6)])],
    "mul": [({}, [(8, 6, 6), (8, 1, 1)]), ({}, [(8, 6, 6)] * 3)],
    "layernorm": [({}, [(8, 6, 6)]), ({"over": "last"}, [(6, 6, 8)]), ({"over": "last"}, [(8,)])],
    "instancenorm": [({}, [(8, 6, 6)]), ({"affine": True, "track_running_stats": True}, [(8, 6, 6)])],
    "groupnorm": [({"groups": 4}, [(8, 6, 6)]), ({"groups": 1, "bias": False}, [(8, 6, 6)])],
    "permute": [({"dims": [1, 2, 0]}, [(8, 6, 6)])],
    "reshape": [({"shape": [8, 36]}, [(8, 6, 6)])],
    "chunk": [({"parts": 2, "index": 1}, [(8, 6, 6)])],
    "slice": [({"start": 2, "end": 5}, [(8, 6, 6)]), ({"start": -3, "dim": 2}, [(8, 6, 6)])],
    "upsample": [({"scale": 2}, [(8, 6, 6)]), ({"size": [9, 12], "mode": "bilinear"}, [(8, 6, 6)]),
                 ({"scale": [1, 3], "mode": "bilinear", "align_corners": True}, [(8, 6, 6)])],
    "pixel_shuffle": [({"factor": 2}, [(8, 6, 6)])],
    "pixel_unshuffle": [({"factor": 3}, [(8, 6, 6)])],
    "channel_shuffle": [({"groups": 2}, [(8, 6, 6)])],
    "stochastic_depth": [({"p": 0.5}, [(8, 6, 6)]), ({"p": 0.5, "mode": "batch"}, [(8, 6, 6)]), ({"p": 0.0}, [(8,)])],
    "layer_scale": [({}, [(8, 6, 6)])],
    "layer_bias": [({}, [(8, 6, 6)]), ({"shape": [1]}, [(6, 6, 8)])],
    "sum": [({"dims": [0]}, [(2, 8, 6, 6)]), ({"dims": [1, 2], "keepdim": True}, [(8, 6, 6)])],
    "mean": [({"dims": [-1]}, [(8, 6, 6)]), ({"dims": [1, 2], "keepdim": True}, [(8, 6, 6)])],
    "stack": [({}, [(8, 6, 6)] * 2), ({"dim": -1}, [(8, 6, 6)] * 3)],
    "conv1d": [({"out": 1, "k": 3, "p": 1, "bias": False}, [(1, 16)]), ({"out": 4, "k": 3, "s": 2}, [(8, 12)])],
    "sub": [({}, [(8, 6, 6)] * 2), ({}, [(8, 6, 6), (8, 1, 1)])],
    "div": [({}, [(8, 6, 6)] * 2), ({}, [(8, 6, 6), (8, 1, 1)])],
    "pow": [({"exponent": 2.0}, [(8, 6, 6)])],
    "affine": [({"scale": 1.5, "bias": 0.2}, [(8, 6, 6)])],
    "channel_scale": [({}, [(8, 6, 6)]), ({"over": "last", "param": "scale"}, [(6, 6, 8)])],
    "grn": [({}, [(6, 6, 8)]), ({"over": "channels"}, [(8, 6, 6)])],
    "blurpool": [({}, [(8, 6, 6)]), ({"k": 5, "pad_mode": "constant"}, [(8, 7, 7)])],
    "expand_as": [({}, [(8, 1, 1), (8, 6, 6)])],
    "normalize": [({}, [(8, 6, 6)]), ({"dim": 2, "p": 1.0}, [(8, 6, 6)]), ({}, [(8,)])],
}


def test_every_op_has_a_case():
    assert sorted(CASES) == sorted(REGISTRY)


class ParamOp(torch.nn.Module):
    def __init__(self, param, fn):
        super().__init__()
        self.param, self.fn = param, resolve(fn)

    def forward(self, x):
        return self.fn(self.param, x)


def _observed(op, attrs, shapes):
    """Bytes of the distinct non-parameter storages autograd saves, and whether the output is
    the input's storage."""
    module = make_leaf(op, attrs, shapes)
    if isinstance(module, torch.nn.Parameter):  # a parameter the op owns on its block: fn(param, x)
        module = ParamOp(module, REGISTRY[op].owned(attrs, shapes).fn)
    module.train()
    xs = [torch.randn(BATCH, *s, requires_grad=True).clone() for s in shapes]  # non-leaf: in-place allowed
    held = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    saved = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in held:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(*xs)
    return sum(saved.values()), out.untyped_storage().data_ptr() == xs[0].untyped_storage().data_ptr()


def _predicted(op, attrs, shapes):
    o = REGISTRY[op]
    out = o.infer(attrs, shapes)
    ag = o.autograd(attrs, shapes, out)
    per = {"act": 4 * BATCH, "index": 8 * BATCH, "stat": 4, "mask": 4 * BATCH}
    storages = {("in", k): 4 * BATCH * numel(shapes[k]) for k in ag.inputs}
    if ag.output:
        storages[("in", 0) if ag.alias else "out"] = 4 * BATCH * numel(out)
    return sum(storages.values()) + sum(n * per[kind] for n, kind in ag.extra), ag.alias


@pytest.mark.parametrize("op,attrs,shapes", [(op, a, s) for op, cases in CASES.items() for a, s in cases],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_saved_for_backward_matches_autograd(op, attrs, shapes):
    a = REGISTRY[op].Attrs.model_validate(attrs)
    assert _predicted(op, a, shapes) == _observed(op, a, shapes)


# the cases (tests/fixtures/train: a mix of every op kind; the language-v2 ops; the conv cases
# oneDNN's reorders treat apart - a 1x1 first layer on 3 channels, strided, grouped and depthwise
# convs, a sepconv) with their peaks as measured per CPU ISA by tools/train_peaks.py
TRAIN = ROOT / "tests" / "fixtures" / "train"
RECORDED = json.loads((TRAIN / "peaks.json").read_text(encoding="utf-8"))
CASE_IDS = [f"{c['spec']}-{c['batch']}-{c['optimizer']}" for c in RECORDED["cases"]]


@pytest.fixture(scope="session")
def measured_here():
    """isa -> the cases' measured peaks, for every ISA this CPU runs (its own and the weaker ones)."""
    return {isa: train_peaks.measure(isa) for isa in train_peaks.runnable_isas()}


def _within_10_percent(case: dict, isa: str, measured: int) -> None:
    predicted = predict(train_peaks.load_case(case), case["batch"], case["optimizer"], isa=isa).peak
    assert abs(predicted / measured - 1) <= 0.10, (isa, predicted, measured)


@pytest.mark.parametrize("isa", train_peaks.runnable_isas())
@pytest.mark.parametrize("k", range(len(RECORDED["cases"])), ids=CASE_IDS)
def test_peak_within_10_percent_of_measured_here(measured_here, isa, k):
    """On this CPU, under each ISA it runs (oneDNN capped by ONEDNN_MAX_CPU_ISA in a process of
    its own); the ISAs this CPU lacks are checked against their recorded measurements below."""
    _within_10_percent(RECORDED["cases"][k], isa, measured_here[isa][k])


@pytest.mark.parametrize("isa", sorted(RECORDED["peaks"]))
@pytest.mark.parametrize("k", range(len(RECORDED["cases"])), ids=CASE_IDS)
def test_peak_within_10_percent_of_recorded(isa, k):
    """Every ISA's rule against a real measurement under that ISA, on any CPU."""
    _within_10_percent(RECORDED["cases"][k], isa, RECORDED["peaks"][isa][k])


def test_every_measured_isa_is_recorded():
    """amx's rule is the AVX-512 one, unmeasured (no AMX CPU was at hand): the table says so."""
    assert sorted(RECORDED["peaks"]) == sorted(isa for isa in ISAS if RULES[isa].measured)
    text = describe(predict(netc.load(SPECS / "lenet5.yaml"), 8, isa="amx"))
    assert "with amx kernels" in text and "not measured" in text
    assert "not measured" not in describe(predict(netc.load(SPECS / "lenet5.yaml"), 8, isa="avx2"))


@pytest.mark.parametrize("spec", ["lenet5", "resnet20", "vgg11"])
def test_conv_and_linear_flops_match_flop_counter(spec):
    # not on grouped convs: FlopCounterMode ignores groups in the backward (its
    # conv_backward_flop says so) and counts a depthwise weight gradient C times over
    network = netc.load(SPECS / f"{spec}.yaml", input_shape=(1, 32, 32) if spec == "lenet5" else (3, 32, 32))
    model = network.build().train()
    x = torch.randn(2, *network.input_shape)
    with FlopCounterMode(display=False) as counter:
        model(x).square().mean().backward()
    assert predict(network, 2).matmul_flops == counter.get_total_flops()


def test_budget_solver_answer_fits_when_tried():
    network = netc.load(TRAIN / "mixed.yaml")
    budget = 40 * 2**20
    cost = max_batch(network, budget)
    assert cost is not None and cost.peak * 1.05 <= budget < predict(network, cost.batch + 1).peak * 1.05
    measured = measure_training_peak(network.build(), network.input_shape, cost.batch)
    assert measured <= budget, measured
    assert cost.batch >= 8  # not a trivial answer
    assert max_batch(network, 2**19) is None  # not even batch 1 fits in 512 KiB


def test_peak_grows_with_batch_and_optimizer_state():
    network = netc.load(SPECS / "resnet50.yaml")
    sgd, adam = predict(network, 8), predict(network, 8, "adam")
    assert adam.optimizer_state == 2 * sgd.optimizer_state == 2 * sgd.params
    assert predict(network, 16).peak > sgd.peak
    assert predict(network, 8, amp=True).saved < sgd.saved


@pytest.mark.parametrize("isa", ISAS)
def test_peak_names_the_op_of_a_positional_layer(isa):
    """A layer named by its position (a Sequential's `features.14`) is reported with its op; a
    named one (`layer4.0.conv1`) by its name alone."""
    peak = predict(netc.load(SPECS / "vgg16.yaml", input_shape=(3, 64, 64)), 2, isa=isa).peak_at
    scope = peak.removeprefix("backward of ").split(" (")[0]
    assert peak.startswith("backward of features.") and scope.rpartition(".")[2].isdigit()
    assert peak.endswith(")") and peak.split(" (")[1][:-1] in REGISTRY
    peak = predict(netc.load(SPECS / "resnet50.yaml"), 8, isa=isa).peak_at
    assert peak.startswith("backward of layer") and "(" not in peak


@pytest.mark.parametrize("text,n", [("24GiB", 24 * 2**30), ("512 MiB", 512 * 2**20), ("1.5g", 1_500_000_000),
                                    ("1048576", 1048576)])
def test_parse_bytes(text, n):
    assert parse_bytes(text) == n


@pytest.mark.parametrize("text", ["", "GiB", "-1GiB", "3 parsecs", "0"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError):
        parse_bytes(text)


def test_table_train_does_not_import_torch():
    out = run_without_torch("table", "resnet50", "--train", "--batch", "32", "--optimizer", "adam")
    assert "peak" in out and "batch 32, Adam" in out
    out = run_without_torch("table", "resnet50", "--train", "--budget", "24GiB", "--format", "json")
    assert '"budget": 25769803776' in out


@pytest.mark.parametrize("args,message", [
    (["--budget", "24 parsecs"], "Invalid value for '--budget': expected a size"),
    (["--budget", "1MiB"], "does not fit in 1MiB even at batch 1"),
    (["--train", "--format", "csv"], "--train prints text or json"),
])
def test_table_train_bad_options(netc_cli, args, message):
    code, out, err = netc_cli("table", "resnet50", *args)
    assert code == 2 and message in err and not out


def test_the_isa_is_the_cpus_as_torch_sees_it(monkeypatch):
    """The flags netc reads agree with ATen's own reading of the CPU (an independent oracle)."""
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(var, raising=False)
    aten = torch.backends.cpu.get_cpu_capability()
    assert (onednn.detect_isa() != "avx2") == aten.startswith("AVX512"), (onednn.detect_isa(), aten)


@pytest.mark.parametrize("cpu,limit,isa", [
    ("amx", "", "amx"), ("amx", "ALL", "amx"), ("amx", "avx512_core", "avx512"), ("amx", "AVX512_CORE_AMX", "amx"),
    ("amx", "AVX2", "avx2"), ("avx512", "AVX512_CORE_AMX", "avx512"), ("avx2", "AVX512_CORE", "avx2"),
    ("avx512", "AVX2_VNNI", "avx2"), ("avx512", "SSE41", "avx2")])
def test_onednn_max_cpu_isa_caps_the_isa_as_onednn_does(monkeypatch, cpu, limit, isa):
    monkeypatch.setattr(onednn, "_cpu_isa", lambda: cpu)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    assert onednn.detect_isa() == isa


def test_isa_is_named_in_every_report_and_refused_off_the_cpu(netc_cli):
    code, out, _ = netc_cli("table", "lenet5", "--train", "--isa", "avx512")
    assert code == 0 and "on cpu with avx512 kernels" in out
    code, out, _ = netc_cli("table", "lenet5", "--train", "--isa", "avx2", "--format", "json")
    assert code == 0 and json.loads(out)["isa"] == "avx2"
    code, out, _ = netc_cli("table", "lenet5", "--train", "--device", "cuda", "--format", "json")
    assert code == 0 and json.loads(out)["isa"] is None
    code, out, err = netc_cli("table", "lenet5", "--train", "--isa", "avx2", "--device", "cuda")
    assert code == 2 and "--isa" in err and not out
    with pytest.raises(ValueError, match="unknown CPU ISA"):
        predict(netc.load(SPECS / "lenet5.yaml"), 8, isa="neon")
