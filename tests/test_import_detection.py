"""`netc import torchvision:NAME` of a detection model imports its `.backbone` (the backbone and its
FPN, SSD's feature extractor), built with weights=None, weights_backbone=None; the dict it returns
(keys '0', '1', …, 'pool') becomes the spec's named outputs in the same order, a key that is no
output name made one by the rule `netc.names.output_name_for_key` ('0' -> `out0`). References are
torchvision's modules built in the test (random init, nothing downloaded)."""
import subprocess
import sys

import pytest
import yaml

from netc.api import import_spec, loads, verify
from netc.errors import NetcError
from netc.names import output_name_for_key
from tests.conftest import ROOT
from tests.test_import_dense import _same_outputs_from_one_build

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

FIXTURE = ROOT / "tests" / "fixtures" / "interop" / "detection.py"


def _outputs_follow_the_keys(text: str, reference, shape) -> None:
    """The spec's outputs are the reference's dict keys, in its order, each made an output name by
    the rule; `meta.output_keys` gives back each key the rule changed."""
    keys = list(reference.eval()(torch.zeros(1, *shape)))
    spec = yaml.safe_load(text)
    assert spec["outputs"] == [output_name_for_key(k) for k in keys]
    assert spec.get("meta", {}).get("output_keys", {}) == {output_name_for_key(k): k for k in keys
                                                           if output_name_for_key(k) != k}
    assert loads(text).spec.outputs == spec["outputs"]


@pytest.mark.parametrize("kwargs, names", [
    ({}, ["out0", "out1", "pool"]),
    ({"returned_layers": (3, 4), "trainable_layers": 0, "extra": "p6p7"}, ["out0", "out1", "p6", "p7"]),
])
def test_fpn_backbone_imports_exact_at_every_size(kwargs, names):
    from tests.fixtures.interop.detection import fpn

    text, verdict = import_spec(f"{FIXTURE}:fpn", kwargs, (3, 64, 64))
    assert verdict.verified and verdict.same_order and verdict.max_diff <= 1e-5
    reference = fpn(**kwargs)
    assert verdict.params == sum(p.numel() for p in reference.parameters())
    assert "frozen: true" in text  # FrozenBatchNorm2d: four buffers, no parameters
    assert loads(text).spec.outputs == names
    _outputs_follow_the_keys(text, reference, (3, 64, 64))
    # FPN upsamples each level to the next finer map's size: at odd sizes that is no plain factor
    _same_outputs_from_one_build(text, reference, [(3, 72, 56), (3, 97, 130)])


def test_torchvision_detection_name_imports_the_backbone():
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    text, verdict = import_spec(f"torchvision:{name}", {}, (3, 64, 64))
    assert verdict.verified and verdict.same_order
    assert verdict.reference.startswith(f"torchvision:{name}(weights=None, weights_backbone=None).backbone")
    assert verdict.reference in verdict.summary()
    assert f"{name}(weights=None, weights_backbone=None).backbone" in yaml.safe_load(text)["description"]
    reference = torchvision.models.get_model(name, weights=None, weights_backbone=None).backbone
    assert verdict.params == sum(p.numel() for p in reference.parameters())
    _outputs_follow_the_keys(text, reference, (3, 64, 64))
    assert loads(text).spec.outputs == ["out0", "out1", "pool"]
    _same_outputs_from_one_build(text, reference, [(3, 96, 128), (3, 72, 56)])
    # `netc verify SPEC torchvision:NAME` compares with the same backbone and says so
    again = verify(lambda shape=None: loads(text, input_shape=shape), f"torchvision:{name}")
    assert again.verified and again.reference == verdict.reference


def test_ssd_l2_norm_is_normalize_then_a_flat_layer_scale():
    """SSD's conv4_3 L2Norm (`scale_weight.view(1, -1, 1, 1) * F.normalize(x)`): the scale keeps
    the source's key, the normalisation is the `normalize` op."""
    from tests.fixtures.interop.detection import L2Scaled

    text, verdict = import_spec(f"{FIXTURE}:L2Scaled", {}, (3, 15, 17))
    assert verdict.verified and verdict.same_order
    assert "  - normalize\n  - {name: scale_weight, layer_scale: {init: 20.0, flat: true}, output: out0}" in text
    _outputs_follow_the_keys(text, L2Scaled(), (3, 15, 17))
    _same_outputs_from_one_build(text, L2Scaled(), [(3, 15, 17), (3, 33, 20)])


def test_output_name_rule():
    assert [output_name_for_key(k) for k in ["out", "pool", "p6", "0", "12", "layer1.0", "a-b", "_x", "class",
                                             "input", 3]] == \
        ["out", "pool", "p6", "out0", "out12", "out_layer1_0", "out_a_b", "out_x", "out_class", "out_input", "out3"]
    for key in ["x" * 65, "0" * 62, "é" * 62]:  # no output name even with the prefix: longer than 64
        with pytest.raises(ValueError, match="at most 64"):
            output_name_for_key(key)


def test_keys_that_become_one_name_are_refused_with_exit_2():
    with pytest.raises(NetcError, match="'0' and 'out0', which both become the netc output name 'out0'"):
        import_spec(f"{FIXTURE}:Colliding", {}, (3, 8, 8), check=False)
    run = subprocess.run([sys.executable, "-m", "netc", "import", f"{FIXTURE}:Colliding", "--input", "3x8x8"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "error[import]" in run.stderr and "Traceback" not in run.stderr + run.stdout
    assert run.stdout == ""


def test_unknown_detection_name_hints_the_closest():
    with pytest.raises(NetcError) as exc:
        import_spec("torchvision:retinanet_resnet50", {}, (3, 64, 64), check=False)
    assert "no classification, segmentation or detection model 'retinanet_resnet50'" in str(exc.value)
    assert "retinanet_resnet50_fpn" in str(exc.value)
