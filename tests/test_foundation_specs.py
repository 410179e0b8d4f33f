"""The foundation specs check, with parameter counts from the papers and torchvision."""

import pytest

import netc
from tests.conftest import SPECS, run_without_torch

# from the seed literature (LeNet-5 modern variant; AlexNet's single-tower table at 227)
PAPER_PARAMS = {"lenet5": 61_706, "alexnet": 62_378_344}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_paper_params(name):
    assert netc.load(SPECS / f"{name}.yaml").params == PAPER_PARAMS[name]


def test_alexnet_shapes_follow_the_paper():
    net = netc.load(SPECS / "alexnet.yaml")
    convs = [d.shape for _, d in net.nodes() if d.op == "conv"]
    # Krizhevsky et al. 2012, Fig. 2 (single tower): 55x55x96, 27x27x256, 13x13x384/384/256
    assert convs == [(96, 55, 55), (256, 27, 27), (384, 13, 13), (384, 13, 13), (256, 13, 13)]


@pytest.mark.parametrize("name", ["vgg16", "resnet50"])
def test_matches_torchvision(name):
    import torch
    import torchvision

    ref = getattr(torchvision.models, name)()
    net = netc.load(SPECS / f"{name}.yaml")
    assert net.params == sum(p.numel() for p in ref.parameters())

    # every module output shape torchvision produces equals the shape netc inferred
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
             for n, m in ref.named_modules() if n and not list(m.children())]
    with torch.device("meta"):
        ref.to("meta").eval()(torch.empty(1, *net.input_shape, device="meta"))
    for h in hooks:
        h.remove()
    ours = {d.scope: d.shape for _, d in net.nodes()}
    common = [s for s in shapes if s in ours]
    assert len(common) > 20
    assert all(ours[s] == shapes[s] for s in common), [(s, ours[s], shapes[s]) for s in common if ours[s] != shapes[s]]


def test_check_imports_no_torch():
    assert "25,557,032" in run_without_torch("check", "-q", "specs/resnet50.yaml")
