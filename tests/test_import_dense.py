"""`netc import` of dense-prediction models: torchvision's segmentation models and feature
extractors return a dict of named maps, which become the spec's named outputs; an interpolation
to the input's size or to an inner map's size (DeepLab's ASPP pooling, LR-ASPP's gate) becomes an
upsample whose size is an expression of `$in_h`/`$in_w`, so one built module matches the source at
every input size. References are torchvision's models (random init, nothing downloaded)."""
import pytest
import yaml

from netc.api import import_spec, loads
from netc.errors import NetcError
from netc.interop.grid import expression
from netc.interop.verify import randomise
from tests.conftest import ROOT, reference_model

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

FIXTURE = ROOT / "tests" / "fixtures" / "interop" / "dense.py"


def _same_outputs_from_one_build(text: str, source, sizes) -> None:
    """The spec built once, at its own size, loads the source's randomised weights and returns
    the source's outputs (by name, in order) at each size, in eval and training mode (dropout
    draws the same random numbers)."""
    randomise(source)
    names = loads(text).spec.outputs
    ours = loads(text).build()
    ours.load_state_dict(source.state_dict())
    for size in sizes:
        x = torch.randn(2, *size, generator=torch.Generator().manual_seed(3))
        for train in (False, True):
            source.train(train)
            ours.train(train)
            with torch.no_grad():
                torch.manual_seed(0)
                want = source(x)
                torch.manual_seed(0)
                got = ours(x)
            got = list(got) if isinstance(got, tuple) else [got]
            want = dict(zip(names, want)) if isinstance(want, list) else want  # timm's feature maps
            assert len(got) == len(want)
            for name, g, w in zip(want, got, want.values()):
                assert g.shape == w.shape, (name, size)
                assert (g - w).abs().max().item() <= 1e-5 * max(1.0, w.abs().max().item()), (name, size, train)
    source.eval()


@pytest.mark.parametrize("name, kwargs", [
    ("lraspp_mobilenet_v3_large", {}),
    ("deeplabv3_mobilenet_v3_large", {"aux_loss": True}),
    ("fcn_resnet50", {"aux_loss": True}),
    ("deeplabv3_resnet101", {}),
])
def test_torchvision_segmentation_imports_exact_at_every_size(name, kwargs):
    text, verdict = import_spec(f"torchvision:{name}", kwargs, (3, 64, 64))
    assert verdict.verified and verdict.max_diff <= 1e-5 and verdict.same_order
    spec = loads(text).spec
    reference = reference_model(name, **kwargs)
    assert spec.outputs == list(reference.eval()(torch.zeros(1, 3, 64, 64)))  # "out", then "aux"
    assert "upsample: {size: [$in_h, $in_w], mode: bilinear}, output: out" in text
    if name.startswith("deeplabv3"):  # ASPP pools its input and upsamples back to that input's size
        stride = 8 if "resnet" in name else 16
        assert f'size: ["($in_h + {stride - 1}) // {stride}", "($in_w + {stride - 1}) // {stride}"]' in text
    _same_outputs_from_one_build(text, reference, [(3, 96, 128), (3, 72, 56)])


def test_inner_sizes_follow_the_input_with_odd_offsets():
    """A valid 5x5 conv and a ceil-mode pool make inner sizes no fraction of the input's: the
    expressions are exact at sizes where rounding differs."""
    text, verdict = import_spec(f"{FIXTURE}:Segmenter", {}, (3, 37, 53))
    assert verdict.verified and verdict.same_order
    assert 'size: ["($in_h - 11) // 8", "($in_w - 11) // 8"]' in text  # Pooling: its own input's size
    assert 'size: ["($in_h + 1) // 4", "($in_w + 1) // 4"]' in text  # Head: the low-level map's size
    assert loads(text).spec.outputs == ["out", "aux"]
    from tests.fixtures.interop.dense import Segmenter

    _same_outputs_from_one_build(text, Segmenter(), [(3, 37, 53), (3, 40, 41), (3, 63, 98)])


def test_a_dict_of_block_results_names_the_blocks_outputs():
    text, verdict = import_spec(f"{FIXTURE}:Features", {}, (3, 32, 32))
    assert verdict.verified
    assert "outputs: [c1, c2]" in text and text.count("output: c") == 2
    layers = yaml.safe_load(text)["layers"]
    assert [(layer["name"], layer.get("output")) for layer in layers] == [("layer1", "c1"), ("layer2", "c2")]
    assert loads(text).spec.outputs == ["c1", "c2"]


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3_large_100"])
def test_timm_features_only_maps_are_named_outputs(name):
    """timm's `features_only` models return a list of maps: the outputs are named by the modules
    `feature_info` says they come from, each an `output:` on that layer."""
    pytest.importorskip("timm")
    text, verdict = import_spec(f"timm:{name}", {"features_only": True}, (3, 64, 64))
    assert verdict.verified and verdict.same_order
    reference = reference_model(name, source="timm", features_only=True)
    names = [n.replace(".", "_") for n in reference.feature_info.module_name()]
    assert loads(text).spec.outputs == names and text.count("output: ") == len(names)
    _same_outputs_from_one_build(text, reference, [(3, 96, 128)])


def test_grid_expressions():
    assert expression("in_h", (0, 1)) == "$in_h"
    assert expression("in_w", (7, 8)) == "($in_w + 7) // 8"
    assert expression("in_h", (-11, 8)) == "($in_h - 11) // 8"
    assert expression("in_h", (0, 4)) == "$in_h // 4"
    assert expression("in_h", (2, 1)) == "$in_h + 2"


def test_unknown_torchvision_model_names_both_kinds():
    with pytest.raises(NetcError) as exc:
        import_spec("torchvision:fcn_resnet5", {}, (3, 64, 64), check=False)
    text = str(exc.value)
    assert "no classification, segmentation or detection model 'fcn_resnet5'" in text and "fcn_resnet50" in text
