"""Weight transfer between corresponding specs (netc.backends.torch.convert, netc convert-weights).

The reference is torchvision's vgg16 (random init) and the dense evaluation of Simonyan &
Zisserman 2014, 3.2: "the first FC layer is first converted to a 7x7 conv. layer, the last two
FC layers to 1x1 conv. layers ... the class score map is spatially averaged"."""
import pytest
import torch
import torch.nn.functional as F

import netc
from netc.errors import NetcError


@pytest.fixture(scope="module")
def vgg16():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.vgg16().eval()


@pytest.fixture(scope="module")
def fcn_state(vgg16):
    return netc.load("vgg16_fcn").weights_from(netc.load("vgg16"), vgg16.state_dict())


def test_vgg16_weights_give_vgg16_logits_at_224(vgg16, fcn_state):
    fcn = netc.load("vgg16_fcn").build(init=False).eval()
    fcn.load_state_dict(fcn_state, strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (fcn(x) - vgg16(x)).abs().max().item() <= 1e-4


def dense_check(fcn, tv, fc, window, last_conv, x):
    """The score map of `fcn` on `x` against the paper's construction by hand from the
    torchvision model `tv`: its features, then its FC layers `fc` as a window x window conv and
    1x1 convs; and the output as the map's spatial mean."""
    maps = []
    fcn.get_submodule(last_conv).register_forward_hook(lambda m, i, o: maps.append(o))
    with torch.no_grad():
        scores = fcn(x)
        h = tv.features(x)
        h = F.relu(F.conv2d(h, fc[0].weight.reshape(4096, -1, window, window), fc[0].bias))
        h = F.relu(F.conv2d(h, fc[1].weight[..., None, None], fc[1].bias))
        reference = F.conv2d(h, fc[2].weight[..., None, None], fc[2].bias)
    (score_map,) = maps
    torch.testing.assert_close(score_map, reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores, score_map.mean(dim=(2, 3)), atol=1e-6, rtol=1e-6)
    return score_map


def test_dense_evaluation_at_384(vgg16, fcn_state):
    fcn = netc.load("vgg16_fcn", input_shape=(3, 384, 384)).build(init=False).eval()
    fcn.load_state_dict(fcn_state, strict=True)
    fc = [vgg16.classifier[i] for i in (0, 3, 6)]
    score_map = dense_check(fcn, vgg16, fc, 7, "classifier.6", torch.randn(1, 3, 384, 384))
    assert score_map.shape == (1, 1000, 6, 6)  # 384 / 32 = 12 cells, a 7x7 window: 6x6 positions


def test_alexnet_dense():
    """alexnet_fcn (its `mapping:` names fc6..fc8) from torchvision's alexnet: same logits at
    224, and at 384 the 6x6 score map of the dense evaluation."""
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.alexnet().eval()
    state = netc.load("alexnet_fcn").weights_from(netc.load("alexnet_torchvision"), tv.state_dict())
    x = torch.randn(1, 3, 224, 224)
    fcn = netc.load("alexnet_fcn").build(init=False).eval()
    fcn.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert (fcn(x) - tv(x)).abs().max().item() <= 1e-4
    fcn = netc.load("alexnet_fcn", input_shape=(3, 384, 384)).build(init=False).eval()
    fcn.load_state_dict(state, strict=True)
    fc = [tv.classifier[i] for i in (1, 4, 6)]
    score_map = dense_check(fcn, tv, fc, 6, "fc8", torch.randn(1, 3, 384, 384))
    assert score_map.shape == (1, 1000, 6, 6)  # features give 11x11 at 384, a 6x6 window


def test_round_trip_is_exact(vgg16, fcn_state):
    back = netc.load("vgg16").weights_from(netc.load("vgg16_fcn"), fcn_state)
    state = vgg16.state_dict()
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


FCN6 = """netc: 1
name: fcn6
input: [3, 224, 224]
params: {num_classes: 1000}
imports: [{file: lib/vgg.yaml}]
MAPPING
layers:
  - name: features
    seq:
      - {use: Stage, args: {out: 64, n: 2}}
      - {use: Stage, args: {out: 128, n: 2}}
      - {use: Stage, args: {out: 256, n: 3}}
      - {use: Stage, args: {out: 512, n: 3}}
      - {use: Stage, args: {out: 512, n: 3}}
  - name: head
    seq:
      - {name: fc6, conv: {out: 4096, k: KERNEL}}
      - relu
      - {name: fc7, conv: {out: 4096, k: 1}}
      - relu
      - {name: fc8, conv: {out: $num_classes, k: 1}}
  - gap
  - flatten
"""


def _fcn6(tmp_path, kernel=7, mapping="mapping: {head.fc6: classifier.0, head.fc7: classifier.3, head.fc8: classifier.6}"):
    import shutil

    from tests.conftest import SPECS

    shutil.copytree(SPECS / "lib", tmp_path / "lib", dirs_exist_ok=True)
    p = tmp_path / "fcn6.yaml"
    p.write_text(FCN6.replace("KERNEL", str(kernel)).replace("MAPPING", mapping))
    return p


def test_declared_mapping(vgg16, tmp_path):
    dst = netc.load(_fcn6(tmp_path))
    state = dst.weights_from(netc.load("vgg16"), vgg16.state_dict())
    assert torch.equal(state["head.fc6.weight"], vgg16.classifier[0].weight.reshape(4096, 512, 7, 7))
    assert torch.equal(state["head.fc8.bias"], vgg16.classifier[6].bias)


def test_inferred_by_position_without_mapping(vgg16, tmp_path):
    state = netc.load(_fcn6(tmp_path, mapping="")).weights_from(netc.load("vgg16"), vgg16.state_dict())
    assert torch.equal(state["head.fc7.weight"], vgg16.classifier[3].weight[..., None, None])


def test_refuses_a_window_that_is_not_the_fc_input(vgg16, tmp_path):
    with pytest.raises(NetcError) as exc:
        netc.load(_fcn6(tmp_path, kernel=6)).weights_from(netc.load("vgg16"), vgg16.state_dict())
    text = exc.value.diagnostics[0].format()
    assert "fcn6.yaml:17:9: error[convert]: 'head.fc6.weight' is 4096×512×6×6" in text
    assert "flattened input is 512×7×7" in text


def test_refuses_a_mapping_to_nothing(vgg16, tmp_path):
    with pytest.raises(NetcError) as exc:
        netc.load(_fcn6(tmp_path, mapping="mapping: {head.fc6: classifier.9}")).weights_from(
            netc.load("vgg16"), vgg16.state_dict())
    text = exc.value.diagnostics[0].format()
    assert "fcn6.yaml:6:21: error[convert]" in text and "'classifier.9', which is not a layer with weights in vgg16" in text


def test_refuses_ambiguous_position(vgg16):
    with pytest.raises(NetcError, match="unmatched layers with weights"):
        netc.load("alexnet_torchvision").weights_from(netc.load("vgg16"), vgg16.state_dict())


def test_refuses_weights_of_another_network(vgg16):
    with pytest.raises(NetcError, match="not a state_dict of vgg11"):
        netc.load("vgg16_fcn").weights_from(netc.load("vgg11"), vgg16.state_dict())


TINY = """netc: 1
name: NAME
input: [3, 16, 16]
layers:
  - {name: conv, conv: {out: 8, k: 3, s: 2, p: 1}}
  - relu
HEAD
"""
TINY_FC = "  - flatten\n  - {name: fc, linear: {out: 10}}"
TINY_CONV = "  - {name: fc, conv: {out: 10, k: 8}}\n  - gap\n  - flatten"


def test_cli(netc_cli, tmp_path):
    for name, head in (("tiny", TINY_FC), ("tiny_fcn", TINY_CONV)):
        (tmp_path / f"{name}.yaml").write_text(TINY.replace("NAME", name).replace("HEAD", head))
    torch.manual_seed(0)
    state = netc.load(tmp_path / "tiny.yaml").build().state_dict()
    torch.save(state, tmp_path / "tiny.pt")
    code, out, _ = netc_cli("convert-weights", tmp_path / "tiny.yaml", tmp_path / "tiny_fcn.yaml",
                            "--weights", tmp_path / "tiny.pt", "-o", tmp_path / "fcn.pt")
    assert code == 0 and "4 tensors of tiny_fcn from tiny" in out
    converted = torch.load(tmp_path / "fcn.pt")
    assert torch.equal(converted["fc.weight"], state["fc.weight"].reshape(10, 8, 8, 8))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    code, _, err = netc_cli("convert-weights", tmp_path / "tiny.yaml", tmp_path / "tiny_fcn.yaml",
                            "--weights", tmp_path / "junk.pt", "-o", tmp_path / "x.pt")
    assert code == 2 and "error[weights]" in err and not (tmp_path / "x.pt").exists()
    code, _, err = netc_cli("convert-weights", tmp_path / "tiny.yaml", tmp_path / "tiny_fcn.yaml",
                            "--input", "3x32x32", "--weights", tmp_path / "tiny.pt", "-o", tmp_path / "y.pt")
    assert code == 0  # the weights do not depend on the destination's input size
    (tmp_path / "tiny_fcn.yaml").write_text(TINY.replace("NAME", "tiny_fcn").replace("HEAD", TINY_CONV.replace("k: 8", "k: 4")))
    code, _, err = netc_cli("convert-weights", tmp_path / "tiny.yaml", tmp_path / "tiny_fcn.yaml",
                            "--weights", tmp_path / "tiny.pt", "-o", tmp_path / "z.pt")
    assert code == 2 and "tiny_fcn.yaml:7:5: error[convert]" in err and not (tmp_path / "z.pt").exists()
