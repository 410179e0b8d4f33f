"""Generated factories are exact for every value of their parameters (issue 12, section 3).

A property test over every bundled spec and the parameterised specs in tests/fixtures/params/
(groups, widths, repeat counts, booleans): the factory generated at the spec's defaults, called
with random valid parameter values, builds the model the interpreter builds from the same
`--set` overrides: the same state_dict keys in the same order with the same shapes (meta
device), and on small networks the same outputs from the same weights. A value the spec rejects
is filtered out by compiling it first.

The ResNeXt/Wide-ResNet repro of the issue is a fixed case, checked against torchvision.

CI runs a bounded number of examples (225 in all, derandomized). A long run:

    HYPOTHESIS_PROFILE=long .venv/bin/pytest -q tests/test_codegen_params.py -n 0
"""
from __future__ import annotations

import ast
import inspect
import os
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import netc
from netc.backends.codegen.names import FACTORY_NAMES
from netc.backends.codegen import generate
from netc.errors import NetcError
from tests.conftest import ROOT, SPECS, committed_source

try:  # the codegen test helpers are moving to conftest (issue 12, section 5)
    from tests.conftest import randomise
except ImportError:
    from tests.test_codegen import randomise

PARAMS = ROOT / "tests" / "fixtures" / "params"
FIXTURES = sorted(PARAMS.glob("*.yaml"))
BUNDLED = sorted(SPECS.glob("*.yaml"))

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
PROFILE = settings(deadline=None, derandomize=not LONG, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# examples per spec: the bundled specs mostly take num_classes and dropout; the fixtures exist
# to vary groups, widths, depths and switches (3 x 40 + 35 x 3 = 225 in CI, 2,000 each when long)
PER_BUNDLED = settings(PROFILE, max_examples=2000 if LONG else 3)
PER_FIXTURE = settings(PROFILE, max_examples=2000 if LONG else 35)
FORWARD_MAX_MACS = 20_000_000  # a real forward only where it is cheap (the fixtures, LeNet-5)


@lru_cache(maxsize=None)
def factory_of(path: Path):
    """The factory generated from the spec at its defaults, and its keyword defaults."""
    net = netc.load(path)
    source = committed_source(net) if path.parent == SPECS else generate(net)
    namespace: dict = {"__name__": f"gen_{path.stem}"}
    exec(compile(source, f"<generated {path.name}>", "exec"), namespace)
    name = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)][-1]
    make = namespace[name]
    return make, {p: v.default for p, v in inspect.signature(make).parameters.items()
                  if p not in FACTORY_NAMES}  # the spec's params, not the backbone switch


def values(default):
    """Valid-looking values of a parameter's kind around its default (the spec decides)."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        near = sorted({default, default + 1, 2 * default, max(1, default // 2), max(1, default - 1)})
        return st.one_of(st.sampled_from(near), st.integers(1, max(4, 2 * default)))
    if isinstance(default, float):
        return st.floats(0.0, 0.9) if 0 <= default < 1 else st.floats(default / 2, 2 * default)
    return st.just(default)


@st.composite
def overrides(draw, path: Path):
    _, defaults = factory_of(path)
    return {p: draw(values(d)) for p, d in defaults.items()}


def check(path: Path, kw: dict) -> None:
    """The factory called with `kw` builds what `netc build --set` builds."""
    import torch

    from netc.backends.torch.module import build_module

    try:
        net = netc.load(path, overrides=kw)
    except NetcError:
        reject()  # not a valid value of this spec
    make, _ = factory_of(path)
    with torch.device("meta"):
        gen = make(**kw)
    ref = build_module(net, device="meta")
    gen_sd, ref_sd = gen.state_dict(), ref.state_dict()
    assert [(k, tuple(v.shape)) for k, v in gen_sd.items()] == [(k, tuple(v.shape)) for k, v in ref_sd.items()]
    if net.macs > FORWARD_MAX_MACS:
        return
    ref = build_module(net, device="cpu")
    randomise(ref)
    gen = make(**kw)
    gen.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ref.eval()(x), gen.eval()(x)
    a, b = (list(a), list(b)) if isinstance(a, tuple) else ([a], [b])
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape and torch.allclose(u, v, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
@PER_FIXTURE
@given(data=st.data())
def test_fixture_factory_arguments_act_like_set(path, data):
    check(path, data.draw(overrides(path)))


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
@PER_BUNDLED
@given(data=st.data())
def test_bundled_factory_arguments_act_like_set(path, data):
    check(path, data.draw(overrides(path)))


def test_fixtures_exercise_groups_widths_depths_and_switches():
    """The fixtures really expose what they are for, and fix what cannot be an argument."""
    args = {p.stem: set(factory_of(p)[1]) for p in FIXTURES}
    assert {"groups", "width_per_group"} <= args["resnext"]
    assert {"base", "k"} <= args["depths"] and "depth" not in args["depths"]  # a repeat count: fixed
    assert {"bias", "affine", "width", "dropout"} <= args["switches"]
    assert not {"mix", "project_all"} & args["switches"]  # they add or drop modules: fixed
    assert {"c", "keep"} <= args["splits"]  # slice bounds are kept on the module, not written as literals
    doc = inspect.getdoc(factory_of(PARAMS / "depths.yaml")[0])
    assert "Fixed when this file was generated: depth=2, depth2=1." in doc


@pytest.mark.parametrize("groups, width, reference", [(32, 4, "resnext50_32x4d"), (1, 128, "wide_resnet50_2"),
                                                      (1, 64, "resnet50")])
def test_resnext_repro_matches_torchvision(groups, width, reference):
    """Issue 12's repro: `groups: $groups` with default 1 (torch's default too) was dropped from
    the generated conv2, so f(groups=32, width_per_group=4) built 68,883,240 parameters where
    `netc check --set` says 25,028,904. The factory now builds torchvision's model exactly."""
    import torch
    import torchvision

    path = PARAMS / "resnext.yaml"
    make, defaults = factory_of(path)
    assert defaults["groups"] == 1  # the default equals torch's: the case that went wrong
    with torch.device("meta"):
        gen = make(groups=groups, width_per_group=width)
        ref = getattr(torchvision.models, reference)()
    shapes = lambda m: [(k, tuple(v.shape)) for k, v in m.state_dict().items()]  # noqa: E731
    assert shapes(gen) == shapes(ref)
    assert [m.groups for m in gen.modules() if isinstance(m, torch.nn.Conv2d)] == \
        [m.groups for m in ref.modules() if isinstance(m, torch.nn.Conv2d)]
    count = sum(p.numel() for p in gen.parameters())
    assert count == sum(p.numel() for p in ref.parameters())
    assert count == netc.load(path, overrides={"groups": groups, "width_per_group": width}).params
