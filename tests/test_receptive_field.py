"""The receptive field netc prints (netc.analysis.cost.Field) against a measurement through torch.

The oracle: a batch in which image b holds NaN in the whole input row b (for H; column b for W).
NaN survives every op - a zero weight, a max, a padding - so the rows of a node's output that are
NaN in image b are exactly the positions whose value depends on input row b: the structural
receptive field of Araujo, Norris & Sim 2019 (a gradient would miss what a max pool's argmax or a
zero weight hides). For every node, every output position's dependency must span the interval
netc predicts, clipped to the image, or the whole image where netc says 'global'.
"""
from __future__ import annotations

import pytest
import torch
from torch import fx

import netc
from netc.analysis.cost import analyse
from tests.conftest import SPECS


def measured_dependencies(network, size: tuple[int, int]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """scope -> per axis, a bool matrix [input row b, output row i]: output row i depends on b."""
    torch.manual_seed(0)
    module = network.build().eval()
    c = network.input_shape[0]
    probes = []
    for axis, n in enumerate(size):
        x = torch.rand(n, c, *size)
        for b in range(n):
            x[b].select(axis + 1, b).fill_(float("nan"))
        probes.append(x)
    found: dict[str, list[torch.Tensor]] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if "netc_target" in n.meta and isinstance(out, torch.Tensor):
                nan = out.isnan()
                if out.dim() == 4:  # a map: per axis, the NaN rows (or columns) of each probe
                    axis = len(found.setdefault(n.meta["netc_target"], []))
                    found[n.meta["netc_target"]].append(nan.any(dim=(1, 3 - axis)))
                else:
                    found.setdefault(n.meta["netc_target"], []).append(nan.flatten(1).any(dim=1, keepdim=True))
            return out

    with torch.no_grad():
        for x in probes:
            Recorder(module._netc_flat()).run(x)
    return {scope: tuple(v) for scope, v in found.items()}


def _channel_first(network) -> set[str]:
    """Scopes whose output is laid out C, H, W (not permuted to H, W, C as ConvNeXt's MLPs are)."""
    layout, first = {0: "chw"}, set()
    for nid, d in network.nodes():
        lay = layout[d.inputs[0]]
        if d.op == "permute" and len(lay) == 3:
            lay = "".join(lay[k] for k in d.attrs.dims)
        layout[nid] = lay if len(d.shape) == len(lay) else "flat"
        if layout[nid] == "chw":
            first.add(d.scope)
    return first


def check_fields(net) -> int:
    """Compares every node's predicted field with the measured one; returns the positions checked."""
    size = net.input_shape[1:]
    measured = measured_dependencies(net, size)
    maps = _channel_first(net)
    checked = 0
    for row in analyse(net).rows:
        if row.scope not in measured or not all(f.exact for f in row.fields):
            continue
        for axis, (field, dep) in enumerate(zip(row.fields, measured[row.scope])):
            if row.scope not in maps:  # a flat vector mixes positions: only 'global' is a claim
                assert dep.all() or not field.whole, (row.scope, axis, field)
                checked += 1
                continue
            n = size[axis]
            for i in range(dep.shape[1]):
                rows = dep[:, i].nonzero().flatten().tolist()
                if field.whole:
                    assert rows == list(range(n)), (row.scope, axis, i, field)
                else:
                    lo = i * field.jump - field.start
                    expected = (max(lo, 0), min(lo + field.size - 1, n - 1))
                    got = (rows[0], rows[-1]) if rows else None
                    if field.dense:
                        assert got == (expected if expected[0] <= expected[1] else None), (row.scope, axis, i, field, got)
                    else:  # a dilated field: its extent, with holes, may end on pixels it skips
                        assert got is None or expected[0] <= got[0] <= got[1] <= expected[1], (row.scope, axis, i, field, got)
                checked += 1
    return checked


# every bundled family at a size small enough for a probe per row (the fields still reach the
# edges); Inception v3 without its aux head, which needs 299 pixels
@pytest.mark.heavy
@pytest.mark.parametrize("spec,size", [
    ("inception_v3", (107, 99)), ("xception", (71, 71)), ("densenet121", (64, 64)), ("resnet50", (64, 48)),
    ("convnext_tiny", (64, 64)), ("vgg11", (40, 40)), ("regnet_y_400mf", (64, 64)), ("googlenet", (64, 64)),
    ("efficientnet_b0", (64, 64)), ("shufflenet_v2_x1_0", (64, 64)), ("mobilenet_v3_large", (64, 64)),
    ("alexnet", (67, 67)), ("resnet20", (32, 32)), ("lenet5", (32, 32))])
def test_bundled_fields_match_the_nan_oracle(spec, size):
    overrides = {"aux_logits": False} if spec == "inception_v3" else None
    channels = netc.load(SPECS / f"{spec}.yaml", overrides).input_shape[0]
    assert check_fields(netc.load(SPECS / f"{spec}.yaml", overrides, input_shape=(channels, *size))) > 0


SE_RESNET = """netc: 1
name: se_resnet
input: [3, 32, 32]
templates:
  Block:
    args: {c: int, s: 1}
    body:
      residual:
        body:
          - {conv: {out: $c, k: 3, s: $s, p: 1}}
          - relu
          - {name: feat, conv: {out: $c, k: 3, p: 1}}
          - {name: gate, seq: [gap, {conv: {out: 4, k: 1}}, relu, {conv: {out: $c, k: 1}}, sigmoid]}
          - {from: [feat, gate], mul: {}}
        shortcut: {if: $s > 1, name: down, conv: {out: $c, k: 1, s: $s}}
        then: relu
layers:
  - {conv: {out: 8, k: 3, p: 1}}
  - {name: layer1, use: Block, args: {c: 8}}
  - {name: layer2, use: Block, args: {c: 16, s: 2}}
  - gap
  - flatten
  - {linear: {out: 10}}
"""


def test_a_squeeze_excitation_gate_makes_the_field_global_not_its_jump():
    """The gate's global pool covers the input; the gated map keeps its own jump (issue 27: the
    jump used to be the gate's, 2^41 after a few blocks)."""
    network = netc.loads(SE_RESNET)
    rows = {r.scope: r for r in analyse(network).rows}
    assert [f.whole for f in rows[next(k for k in rows if k.endswith("feat"))].fields] == [False, False]
    mul = next(r for r in analyse(network).rows if r.op == "mul" and r.scope.startswith("layer1"))
    assert all(f.whole for f in mul.fields) and mul.jump == (1, 1)
    mul2 = next(r for r in analyse(network).rows if r.op == "mul" and r.scope.startswith("layer2"))
    assert mul2.jump == (2, 2)
    assert check_fields(network) > 0


def test_a_pool_over_a_strided_subsample_is_not_global():
    """A 1x1 stride-2 conv skips every other pixel: the global pool after it sees half the rows."""
    network = netc.loads("netc: 1\nname: skip\ninput: [3, 16, 16]\nlayers:\n"
                         "  - {conv: {out: 4, k: 1, s: 2}}\n  - gap\n  - flatten\n  - {linear: {out: 2}}\n")
    pool = analyse(network).rows[1]
    assert not any(f.whole for f in pool.fields)
    assert check_fields(network) > 0
