"""The static cost pass against torchvision (built in the test) and hand-computed receptive fields."""
from decimal import Decimal

import pytest

import netc
from netc.analysis.cost import analyse
from tests.conftest import SPECS, reference_model

# spec file -> torchvision builder; the weights enum gives the published "_ops" (GMACs) and crop size
TORCHVISION = {
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "alexnet_torchvision": "alexnet",
    "googlenet": "googlenet",
    "inception_v3": "inception_v3",
}


def spec_path(name):
    path = SPECS / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"specs/{name}.yaml does not exist yet")
    return path


def torchvision_reference(builder, size, aux):
    """(params, buffers, MACs) of the torchvision model: built on the meta device, MACs counted
    by FlopCounterMode in eval mode (aux heads not run) and halved (it counts 2 FLOPs per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    kwargs = {"aux_logits": aux} if builder in ("googlenet", "inception_v3") else {}
    model = reference_model(builder, device="meta", **kwargs)
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, size, size, device="meta"))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return (sum(p.numel() for p in model.parameters()), sum(b.numel() for b in model.buffers()), flops // 2)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_params_and_macs_match_torchvision(name):
    import torchvision

    path = spec_path(name)
    weights = torchvision.models.get_model_weights(TORCHVISION[name]).DEFAULT
    size = weights.transforms().crop_size[0]
    net = netc.load(path, input_shape=(3, size, size))
    report = analyse(net)
    has_aux = any(aux for _, _, aux in net.outputs)
    params, buffers, macs = torchvision_reference(TORCHVISION[name], size, has_aux)

    assert report.total.params == params
    assert report.total.buffers == buffers
    assert report.total.macs == macs
    # the published GFLOPS column, at its own precision (e.g. 4.089, 15.47)
    published = Decimal(str(weights.meta["_ops"]))
    assert round(Decimal(report.total.macs) / 10**9, -published.as_tuple().exponent) == published
    if has_aux:  # aux heads have MACs of their own, outside the total
        assert report.aux.macs > 0 and report.aux.params > 0


# torchvision's documented GFLOPS (MACs) with the exact counts from FlopCounterMode / 2
@pytest.mark.parametrize("name,size,macs", [("resnet50", 224, 4_089_184_256), ("inception_v3", 299, 5_713_216_096)])
def test_headline_macs(name, size, macs):
    net = netc.load(spec_path(name), input_shape=(3, size, size))
    assert analyse(net).total.macs == macs
    assert net.macs == macs


def rf_at(report, scope):
    row = next(r for r in report.rows if r.scope == scope)
    return row.rf, row.jump


def last_of(report, op, prefix=""):
    return [r for r in report.rows if r.op == op and r.scope.startswith(prefix)][-1]


def test_receptive_field_vgg16():
    # 13 3x3 convs and 5 2x2/2 pools: 1 + 2·(2·1 + 2·2 + 3·4 + 3·8 + 3·16) + 1·(1+2+4+8+16) = 212
    pool5 = last_of(analyse(netc.load(SPECS / "vgg16.yaml")), "maxpool")
    assert (pool5.rf, pool5.jump) == ((212, 212), (32, 32))


@pytest.mark.parametrize("name", ["alexnet", "alexnet_torchvision"])
def test_receptive_field_alexnet(name):
    # conv 11/4: 11; pool 3/2: +2·4 = 19; conv 5: +4·8 = 51; pool: +2·8 = 67; 3 convs 3: +3·2·16 = 163;
    # pool: +2·16 = 195
    pool5 = last_of(analyse(netc.load(spec_path(name))), "maxpool")
    assert (pool5.rf, pool5.jump) == ((195, 195), (32, 32))


def test_receptive_field_resnet50_through_residuals():
    # conv 7/2: 7 (jump 2); maxpool 3/2: 11 (4); layer1, 3 blocks of one 3x3: 11 + 3·2·4 = 35;
    # layer2: 35 + 2·4 = 43 (8), then 3·2·8 -> 91; layer3: 91 + 2·8 = 107 (16), then 5·2·16 -> 267;
    # layer4: 267 + 2·16 = 299 (32), then 2·2·32 -> 427
    report = analyse(netc.load(SPECS / "resnet50.yaml"))
    assert [rf_at(report, f"layer{i}.{n - 1}._add") for i, n in ((1, 3), (2, 4), (3, 6), (4, 3))] == \
        [((35, 35), (4, 4)), ((91, 91), (8, 8)), ((267, 267), (16, 16)), ((427, 427), (32, 32))]


# Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019
# (table of github.com/google-research/receptive_field): receptive field and effective stride of
# the last feature map before global pooling
PUBLISHED_RF = {"alexnet": 195, "alexnet_torchvision": 195, "vgg16": 212, "resnet50_v1": 483,
                "resnet101_v1": 1027, "resnet152_v1": 1507, "inception_v2": 699, "inception_v3": 1311,
                "inception_v4": 2071, "inception_resnet_v2": 3039}


@pytest.mark.parametrize("name", sorted(PUBLISHED_RF))
def test_receptive_fields_match_the_published_table(name):
    report = analyse(netc.load(spec_path(name)))
    last_map = [r for r in report.rows if len(r.shape) == 3 and r.shape[1] * r.shape[2] > 1 and not r.aux][-1]
    rf = PUBLISHED_RF[name]
    assert (last_map.rf, last_map.jump) == ((rf, rf), (32, 32)), last_map.scope


def tiny(layers: str, size: int = 32) -> "netc.api.Network":
    return netc.loads(f"netc: 1\nname: tiny\ninput: [3, {size}, {size}]\nlayers:\n{layers}")


def test_three_stacked_3x3_convs_see_7x7():
    report = analyse(tiny("  - {repeat: 3, conv: {out: 4, k: 3, p: 1}}\n"))
    assert [r.rf for r in report.rows] == [(3, 3), (5, 5), (7, 7)]
    assert all(r.jump == (1, 1) for r in report.rows)


def test_receptive_field_dilation_stride_and_asymmetric_kernels():
    report = analyse(tiny("  - {name: a, conv: {out: 4, k: 3, d: 2, p: 2}}\n"       # 1 + 2·2 = 5
                          "  - {name: b, conv: {out: 4, k: 3, s: 2, p: 1}}\n"       # 5 + 2 = 7, jump 2
                          "  - {name: c, conv: {out: 4, k: [1, 7], p: [0, 3]}}\n"   # w: 7 + 6·2 = 19
                          "  - {name: d, conv: {out: 4, k: [7, 1], p: [3, 0]}}\n"))  # h: 7 + 6·2 = 19
    assert [r.rf for r in report.rows] == [(5, 5), (7, 7), (7, 19), (19, 19)]
    assert [r.jump for r in report.rows] == [(1, 1), (2, 2), (2, 2), (2, 2)]


def test_branches_take_the_largest_receptive_field():
    report = analyse(tiny("  - {name: m, concat: [{conv: {out: 4, k: 1}}, {conv: {out: 4, k: 5, p: 2}},"
                          " {maxpool: {k: 3, s: 1, p: 1}}]}\n"))
    assert rf_at(report, "m._cat") == ((5, 5), (1, 1))


def test_global_pooling_and_linear_cover_the_whole_input():
    # conv 3x3/2 on 8x8 -> 4x4 grid with jump 2 (rf 3); global pooling spans it: 3 + 3·2 = 9
    report = analyse(tiny("  - {name: c, conv: {out: 4, k: 3, s: 2, p: 1}}\n"
                          "  - {name: g, gap: {}}\n"
                          "  - {name: c2, conv: {out: 4, k: 3, s: 2, p: 1}}\n"
                          "  - {name: f, flatten: {}}\n"
                          "  - {name: fc, linear: {out: 2}}\n", size=8))
    assert rf_at(report, "g") == ((9, 9), (8, 8))
    # flatten then linear: the flattened grid is the 1x1 map after the second conv, so nothing grows
    assert rf_at(report, "fc")[0] == (9 + 2 * 8, 9 + 2 * 8)
    flat = analyse(tiny("  - {name: c, conv: {out: 4, k: 3, s: 2, p: 1}}\n"
                        "  - {name: f, flatten: {}}\n"
                        "  - {name: fc, linear: {out: 2}}\n"
                        "  - {name: fc2, linear: {out: 2}}\n", size=8))
    assert rf_at(flat, "fc") == ((9, 9), (8, 8))  # linear over the flattened 4x4 grid, jump 2
    assert rf_at(flat, "fc2") == ((9, 9), (8, 8))  # a second linear has nothing left to widen


def test_adaptive_pooling_uses_torchs_widest_window():
    # 13 -> 7: torch's windows [floor(i·13/7), ceil((i+1)·13/7)) are at most 3 wide
    report = analyse(tiny("  - {name: p, adaptive_avgpool: {out: 7}}\n", size=13))
    assert rf_at(report, "p")[0] == (3, 3)


def test_buffers_activation_memory_and_dtype():
    net = netc.load(SPECS / "resnet50.yaml")
    report = analyse(net)
    conv1 = report.by_id[1]
    assert conv1.cost.activation_bytes == 64 * 112 * 112 * 4
    assert next(r for r in report.rows if r.scope == "bn1").cost.buffers == 2 * 64 + 1  # mean, var, count
    half = analyse(net, "float16")
    assert half.total.activation_bytes * 2 == report.total.activation_bytes
    assert half.total.macs == report.total.macs
    with pytest.raises(ValueError):
        analyse(net, "float7")


AUX_SPEC = """netc: 1
name: tiny_aux
input: [3, 32, 32]
layers:
  - {name: conv1, conv: {out: 8, k: 3, p: 1}}
  - {name: head, side: {seq: [gap, flatten, {name: fc, linear: {out: 10}}]}, output: aux, aux: true}
  - {name: conv2, conv: {out: 8, k: 3, p: 1}}
  - gap
  - flatten
  - {name: fc, linear: {out: 10}}
"""


def test_aux_heads_count_params_but_not_macs():
    report = analyse(netc.loads(AUX_SPEC))
    conv = 8 * 32 * 32 * 3 * 9 + 8 * 32 * 32 * 8 * 9
    assert report.total.macs == conv + 8 * 10
    assert report.aux.macs == 8 * 10
    assert report.total.params == (8 * 27 + 8) + (8 * 72 + 8) + 2 * (8 * 10 + 10)
    assert report.aux.params == 8 * 10 + 10
    assert report.block("head").macs == 80  # a side head's own subtotal shows its MACs
