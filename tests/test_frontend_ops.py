"""Every op's shape rule agrees with the torch module it builds, on flat, 2-D and 3-D inputs:
either netc refuses the input with a shape error, or torch returns exactly the inferred shape."""
import json

import pytest

import netc
from netc.errors import NetcError
from netc.ops import REGISTRY

ATTRS = {"conv": {"out": 2, "k": 1}, "sepconv": {"out": 2, "k": 1}, "lrn": {"size": 2}, "maxpool": {"k": 1},
         "avgpool": {"k": 1}, "adaptive_avgpool": {"out": 1}, "adaptive_maxpool": {"out": 1}, "linear": {"out": 3},
         "scale": {"factor": 2.0}, "pad_channels": {"out": 6}, "permute": {"dims": [1, 0]},
         "reshape": {"shape": [-1, 2]}, "chunk": {"parts": 2, "index": 1}, "channel_shuffle": {"groups": 2},
         "groupnorm": {"groups": 2}, "stochastic_depth": {"p": 0.5}, "upsample": {"scale": [2, 3]},
         "conv_transpose": {"out": 2, "k": 1}, "hardtanh": {"min_val": -2.0},
         "pixel_shuffle": {"factor": 2}, "pixel_unshuffle": {"factor": 2},
         "pad": {"p": [1, 2, 3, 4], "mode": "reflect"}, "sum": {"dims": [-1]}, "mean": {"dims": [0], "keepdim": True},
         "conv1d": {"out": 2, "k": 1}, "pow": {"exponent": 2.0}}
SINGLE_INPUT = sorted(name for name, op in REGISTRY.items() if op.max_inputs == 1)


@pytest.mark.parametrize("shape", [(4,), (4, 6), (4, 6, 5)])
@pytest.mark.parametrize("op", SINGLE_INPUT)
def test_shape_rule_matches_torch(op, shape):
    import torch

    text = json.dumps({"netc": 1, "name": "probe", "input": list(shape), "layers": [{op: ATTRS.get(op, {})}]})
    try:
        net = netc.loads(text)
    except NetcError as exc:
        assert exc.codes == ["shape"], exc
        return
    module = net.build(device="cpu")
    y = module.eval()(torch.randn(2, *shape))
    assert tuple(y.shape[1:]) == net.graph.node(net.outputs[0][1]).shape
