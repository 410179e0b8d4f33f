"""The pad op against torch.nn.functional.pad computed here, in every mode and width form, its
errors (widths past what reflection and wrapping can reach), and its import."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.test_ops_v2 import assert_close, assert_refused, built, load, x_of

CASES = [
    ("{p: 2}", lambda x: F.pad(x, (2, 2, 2, 2))),
    ("{p: [1, 3]}", lambda x: F.pad(x, (3, 3, 1, 1))),  # [h, w], as a conv's padding
    ("{p: [0, 1, 2, 3], value: -1.5}", lambda x: F.pad(x, (0, 1, 2, 3), value=-1.5)),
    ("{p: [4, 3, 0, 5], mode: reflect}", lambda x: F.pad(x, (4, 3, 0, 5), mode="reflect")),
    ("{p: 9, mode: replicate}", lambda x: F.pad(x, (9, 9, 9, 9), mode="replicate")),
    ("{p: [6, 5], mode: circular}", lambda x: F.pad(x, (5, 5, 6, 6), mode="circular")),
    ("{p: [-1, 1, -1, 1]}", lambda x: F.pad(x, (-1, 1, -1, 1))),  # NASNet's shift by a pixel
]


@pytest.mark.parametrize("attrs, reference", CASES, ids=[c[0] for c in CASES])
def test_pad_is_torch(tmp_path, attrs, reference):
    net = load(tmp_path, f"  - {{name: pad, pad: {attrs}}}\n", "[3, 6, 5]")
    x = x_of(3, 6, 5)
    want = reference(x)
    with torch.no_grad():
        assert_close(built(net)(x), want, 0)
    assert net.graph.node(net.outputs[0][1]).shape == tuple(want.shape[1:])


@pytest.mark.parametrize("attrs, words", [
    ("{p: [6, 0], mode: reflect}", "reflect padding of 6×0 reaches past the 6×6 map"),
    ("{p: [0, 7], mode: circular}", "circular padding of 0×7 reaches past the 6×6 map"),
    ("{p: 1, mode: reflect, value: 2.0}", "value goes with mode: constant"),
    ("{p: [1, 2, 3]}", "p"),
    ("{p: -3}", "padding -3, -3, -3, -3 crops the 6×6 map to nothing"),
    ("{p: [0, -1], mode: reflect}", "a negative width (a crop, as nn.ZeroPad2d's) goes with mode: constant"),
    ("{p: 1, mode: edge}", "mode"),
])
def test_pad_errors(tmp_path, attrs, words):
    assert_refused(tmp_path, f"  - {{name: pad, pad: {attrs}}}\n", words)


def test_pad_imports(tmp_path):
    from tests.test_import import import_sequential

    text, verdict = import_sequential(tmp_path, "nn.ReflectionPad2d(3), nn.Conv2d(3, 8, 7), nn.ZeroPad2d((1, 2, 0, 0)), "
                                      "nn.ConstantPad2d((1, 1, 2, 2), 0.5), nn.ReplicationPad2d((1, 1, 2, 2)), "
                                      "nn.ZeroPad2d((-1, 1, -1, 1))", (3, 8, 8))
    for words in ("pad: {p: 3, mode: reflect}", "pad: {p: [1, 2, 0, 0]}", "pad: {p: [2, 1], value: 0.5}",
                  "pad: {p: [2, 1], mode: replicate}", "pad: {p: [-1, 1, -1, 1]}"):
        assert words in text, (words, text)
    assert verdict.same_order and verdict.max_diff <= 1e-6
