"""The compiled inference path (netc.backends.torch.compile): onnxruntime, or inductor with
freezing packaged ahead of time, cached on disk. One compile of lenet5 per backend for the whole
module (inductor's is C++ built by the system compiler: tens of seconds on an idle core)."""
import pytest
import torch

import netc
from netc.backends.torch.compile import CompiledModule, cache_key, compile_inference
from netc.backends.torch.optimize import optimize_for_inference
from netc.errors import NetcError
from tests.conftest import SPECS

COMPILE_BOUND_S = 600  # a loaded 2-core machine; about 20 s when idle


@pytest.fixture(scope="module", params=["onnxruntime", "inductor"])
def compiled(request, tmp_path_factory):
    if request.param == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="onnxruntime is an optional backend")
    torch.manual_seed(0)
    network = netc.load(SPECS / "lenet5.yaml")
    eager = network.build().eval()
    cache = tmp_path_factory.mktemp("compiled")
    return network, eager, cache, compile_inference(eager, network.input_shape, cache, "lenet5", request.param)


def test_compiled_outputs_equal_eager(compiled):
    network, eager, _, module = compiled
    assert isinstance(module, CompiledModule) and not module.from_cache
    assert module.compile_seconds < COMPILE_BOUND_S
    for batch in (1, 5):  # the batch dimension is dynamic
        x = torch.randn(batch, *network.input_shape)
        with torch.inference_mode():
            assert (module(x) - eager(x)).abs().max().item() <= 1e-4


def test_second_compile_loads_the_cached_package(compiled):
    network, eager, cache, first = compiled
    again = compile_inference(eager, network.input_shape, cache, "lenet5", first.backend)
    assert again.from_cache and again.package == first.package and again.compile_seconds < 30
    x = torch.randn(3, *network.input_shape)
    with torch.inference_mode():
        assert torch.equal(again(x), first(x))


def test_cache_key_follows_weights_shape_and_backend():
    network = netc.load(SPECS / "lenet5.yaml")
    a = optimize_for_inference(network.build())
    b = optimize_for_inference(network.build())  # other random weights
    assert cache_key(a, (1, 32, 32)) == cache_key(a, (1, 32, 32))
    assert cache_key(a, (1, 32, 32)) != cache_key(b, (1, 32, 32))
    assert cache_key(a, (1, 32, 32)) != cache_key(a, (1, 36, 36))
    assert cache_key(a, (1, 32, 32), "inductor") != cache_key(a, (1, 32, 32), "onnxruntime")


def test_build_compile_through_the_api(compiled, monkeypatch):
    network, eager, cache, first = compiled
    monkeypatch.setenv("NETC_CACHE_DIR", str(cache))
    model = netc.optimize(eager, "inference", compile=first.backend, input_shape=network.input_shape, name="lenet5")
    assert model.from_cache and model.package == first.package


def test_cli_build_compile_reports_the_package(compiled, netc_cli, monkeypatch):
    network, eager, cache, first = compiled
    monkeypatch.setenv("NETC_CACHE_DIR", str(cache))
    torch.manual_seed(0)  # other weights than the fixture's: may compile, so only check the report
    code, out, err = netc_cli("build", "lenet5", "--optimize", "inference", "--compile", first.backend,
                              "-q")
    assert code == 0, err
    assert f"cache miss: compiled and wrote ({first.backend}," in out or f"cache hit: loaded ({first.backend}," in out
    assert (".pt2" if first.backend == "inductor" else ".onnx") in out


@pytest.mark.parametrize("call,message", [
    (lambda n, m: netc.optimize(m, "inference", compile=True), "needs the input shape"),
    (lambda n, m: netc.optimize(m, None, compile=True, input_shape=n.input_shape), "needs the inference optimisation"),
    (lambda n, m: n.build(compile=True), "needs the inference optimisation"),
    (lambda n, m: netc.optimize(m, compile="tvm", input_shape=n.input_shape), "unknown compile backend 'tvm'"),
])
def test_compile_usage_errors(call, message):
    network = netc.load(SPECS / "lenet5.yaml")
    with pytest.raises(NetcError, match=message):
        call(network, network.build())


SEVERAL_OUTPUTS = """netc: 1
name: several
input: [3, 16, 16]
layers:
  - {name: stem, conv: {out: 8, k: 3, p: 1}}
  - {name: left, slice: {end: 3}, output: left}
  - {name: pooled, from: stem, gap: {}, output: pooled}
  - flatten
  - {linear: {out: 4}}
"""


def test_several_outputs_come_back_as_the_eager_namedtuple(tmp_path):
    """A spec with named outputs: the compiled module returns the eager module's namedtuple, each
    output equal (onnxruntime: the fast backend to compile; inductor shares the output handling)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional backend")
    torch.manual_seed(0)
    network = netc.loads(SEVERAL_OUTPUTS, "several.yaml")
    eager = network.build().eval()
    module = compile_inference(eager, network.input_shape, tmp_path, "several", "onnxruntime")
    x = torch.randn(3, *network.input_shape)
    with torch.inference_mode():
        want, got = eager(x), module(x)
    assert type(got) is type(want) and got._fields == want._fields == ("out", "left", "pooled")
    for a, b in zip(got, want):
        assert a.shape == b.shape and (a - b).abs().max().item() <= 1e-4


def test_a_planted_package_is_never_handed_to_the_loader(compiled, tmp_path, monkeypatch):
    """Both backends look an entry up in the store (digest checked) before the runtime opens it: a
    file put under the package's name is removed with a warning and rebuilt, never loaded (an
    AOTInductor package is a shared library whose constructors would run on loading)."""
    import shutil
    import warnings
    from pathlib import Path

    import netc.backends.torch.compile as compile_module
    from netc.backends.torch import packages
    from netc.backends.torch.cache import CacheWarning

    network, eager, cache, first = compiled
    folder = tmp_path / "cache"
    shutil.copytree(cache, folder)
    folder.chmod(0o700)
    entry = folder / first.package.name
    good = entry.read_bytes()
    entry.write_bytes(b"planted" + good[7:])  # same size, other bytes, under the recorded name
    loaded, rebuilt = [], []
    monkeypatch.setattr(compile_module, "_write_package", lambda gm, shape, backend, path: (
        rebuilt.append(path), path.write_bytes(good)))  # the package as netc compiled it, without compiling again

    def load(path):
        loaded.append(Path(path).read_bytes())

    monkeypatch.setattr(torch._inductor, "aoti_load_package", load)
    monkeypatch.setattr(packages, "ort_session", lambda path, threads=None: load(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        again = compile_inference(eager, network.input_shape, folder, "lenet5", first.backend)
    assert [str(w.message) for w in caught if w.category is CacheWarning] == [
        f"cache entry {entry} does not match the digest netc recorded; rebuilding it"]
    assert len(rebuilt) == 1 and loaded == [good] and not again.from_cache
