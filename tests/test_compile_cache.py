"""The compile cache (netc/backends/torch/cache.py) as `netc build --compile` and the API use it:
a second identical build loads the package instead of compiling (the compile step counted, never
timed), every entry is checked against the digest netc recorded, anything else is rebuilt with one
warning, temp files of killed writers go, the folder stays private and bounded. The onnxruntime
backend throughout: it compiles lenet5 in about a second (the cache is the same for inductor)."""
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import netc
import netc.backends.torch.compile as compile_module
from netc.api import build
from netc.backends.torch import cache as store
from netc.backends.torch.packages import ort_session
from netc.errors import NetcError
from tests.conftest import ROOT, run_without_torch

pytest.importorskip("onnxruntime", reason="onnxruntime is an optional backend")

BUILD = ("build", "lenet5", "--device", "cpu", "--optimize", "inference", "--compile", "onnxruntime", "-q")
BOUND_S = 120  # an entry that made netc wait (a FIFO opened for reading) fails the test instead of hanging it


@pytest.fixture
def compiles(monkeypatch):
    """The number of packages compiled so far (calls of the step that writes a package)."""
    calls = []
    real = compile_module._write_package

    def counted(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(compile_module, "_write_package", counted)
    return calls


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("NETC_CACHE_DIR", str(folder))
    monkeypatch.delenv("NETC_CACHE_SIZE", raising=False)
    return folder


@contextmanager
def bounded(seconds: int = BOUND_S):
    def stop(signum, frame):
        raise TimeoutError(f"took over {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def same_outputs(a: Path, b: Path) -> bool:
    """Whether the ONNX packages `a` and `b` compute the same on a random input."""
    x = torch.randn(2, *netc.load("lenet5").input_shape).numpy()
    first, second = (ort_session(str(p)).run(None, {"x": x})[0] for p in (a, b))
    return bool(abs(first - second).max() <= 1e-5)


def package_of(out: str) -> Path:
    return Path(out.strip().splitlines()[-1].split(") ", 1)[1])


def test_a_second_identical_cli_build_loads_the_package(netc_cli, cache, compiles):
    code, out, err = netc_cli(*BUILD, "--seed", "0")
    assert code == 0, err
    assert "cache miss: compiled and wrote (onnxruntime" in out
    first = package_of(out)
    assert first.parent == cache and first.is_file() and len(compiles) == 1
    code, out, err = netc_cli(*BUILD, "--seed", "0")
    assert code == 0, err
    assert "cache hit: loaded (onnxruntime" in out and package_of(out) == first
    assert len(compiles) == 1 and err == ""
    code, out, _ = netc_cli(*BUILD, "--seed", "1")  # other weights, another package
    assert code == 0 and "cache miss" in out and package_of(out) != first and len(compiles) == 2


def test_a_build_from_a_weights_file_hits_and_computes_with_those_weights(netc_cli, cache, compiles, tmp_path):
    network = netc.load("lenet5")
    torch.manual_seed(123)
    eager = network.build().eval()
    weights = tmp_path / "w.pt"
    torch.save(eager.state_dict(), weights)
    for expected in ("cache miss", "cache hit"):
        code, out, err = netc_cli(*BUILD, "--weights", weights)
        assert code == 0, err
        assert expected in out and len(compiles) == 1
    compiled = build(network, optimize="inference", compile="onnxruntime", weights=weights).module
    assert compiled.from_cache and compiled.package == package_of(out) and len(compiles) == 1
    x = torch.randn(3, *network.input_shape)
    with torch.inference_mode():
        assert (compiled(x) - eager(x)).abs().max().item() <= 1e-4


def test_weights_that_do_not_fit_are_a_located_error(netc_cli, cache, tmp_path):
    other = tmp_path / "other.pt"
    torch.save(netc.load("resnet20").build().state_dict(), other)
    code, _, err = netc_cli(*BUILD, "--weights", other)
    assert code == 2 and "error[weights]" in err and "does not fit lenet5" in err and "Traceback" not in err
    assert not cache.exists() or store.entries(cache) == []


def test_seeded_api_builds_are_reproducible_and_leave_the_global_generator_alone(cache, compiles):
    network = netc.load("lenet5")
    state = torch.get_rng_state()
    a = build(network, seed=7).module.state_dict()
    b = build(network, seed=7).module.state_dict()
    c = build(network, seed=8).module.state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a) and any(not torch.equal(a[k], c[k]) for k in a)
    backbone = network.build(features_only=True, seed=7).state_dict()  # the same seed, the same weights
    assert backbone and all(torch.equal(backbone[k], a[k]) for k in backbone)
    first = build(network, optimize="inference", compile="onnxruntime", seed=7).module
    again = network.build(optimize="inference", compile="onnxruntime", seed=7)  # Network.build: the same pipeline
    assert not first.from_cache and again.from_cache and again.package == first.package and len(compiles) == 1


def test_the_cache_folder_is_created_private(netc_cli, cache):
    code, _, err = netc_cli(*BUILD, "--seed", "0")
    assert code == 0, err
    st = os.stat(cache)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()


@pytest.mark.parametrize("how,message", [("others write", "writable by other users"),
                                         ("another owner", "belongs to another user")])
def test_a_folder_others_can_write_is_refused(how, message, netc_cli, cache, compiles, monkeypatch):
    cache.mkdir(mode=0o700)
    if how == "others write":
        os.chmod(cache, 0o777)
    else:  # the folder is this process's: make the process another user, as far as netc asks
        uid = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: uid + 1)
    code, _, err = netc_cli(*BUILD, "--seed", "0")
    assert code == 2 and "error[cache]" in err and message in err and "Traceback" not in err
    assert compiles == [] and list(cache.iterdir()) == []


@pytest.fixture(scope="module")
def good_cache(tmp_path_factory):
    """A cache holding lenet5's package for --seed 0, as netc wrote it; and another valid ONNX model."""
    folder = tmp_path_factory.mktemp("good")
    os.environ["NETC_CACHE_DIR"] = str(folder)
    try:
        module = build(netc.load("lenet5"), optimize="inference", compile="onnxruntime", seed=0).module
        other = build(netc.load("lenet5"), optimize="inference", compile="onnxruntime", seed=1).module
    finally:
        del os.environ["NETC_CACHE_DIR"]
    return folder, module.package, other.package.read_bytes()


def _planted(path, other):
    path.write_bytes(other)  # a valid model of the same spec, under the key: its digest is not the recorded one


def _planted_unrecorded(path, other):
    path.write_bytes(other)
    os.unlink(f"{path}.json")


def _truncated(path, other):
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _empty(path, other):
    path.write_bytes(b"")


def _directory(path, other):
    path.unlink()
    path.mkdir()
    (path / "model.onnx").write_bytes(other)


def _fifo(path, other):
    path.unlink()
    os.mkfifo(path)


def _symlink(path, other):
    real = path.parent.parent / "elsewhere.onnx"  # the very bytes netc recorded, but not a file of the cache
    shutil.copyfile(path, real)
    path.unlink()
    path.symlink_to(real)


@pytest.mark.parametrize("damage", [_planted, _planted_unrecorded, _truncated, _empty, _directory, _fifo, _symlink],
                         ids=lambda f: f.__name__.strip("_"))
def test_an_entry_netc_did_not_write_is_rebuilt_with_one_warning(damage, good_cache, tmp_path, monkeypatch,
                                                                   netc_cli, compiles):
    folder, package, other = good_cache
    cache = tmp_path / "cache"
    shutil.copytree(folder, cache)
    os.chmod(cache, 0o700)
    monkeypatch.setenv("NETC_CACHE_DIR", str(cache))
    entry = cache / package.name
    damage(entry, other)
    with bounded():
        code, out, err = netc_cli(*BUILD, "--seed", "0")
    assert code == 0, err
    warnings = err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: cache entry {entry} ")
    assert warnings[0].endswith("; rebuilding it")
    assert "cache miss" in out and len(compiles) == 1
    assert store.problem(entry) is None  # a regular file again, matching its record
    assert same_outputs(entry, package)  # the package rebuilt (onnxruntime names its fused nodes in no fixed order)
    code, out, err = netc_cli(*BUILD, "--seed", "0")
    assert code == 0 and "cache hit" in out and err == "" and len(compiles) == 1


WRITER = """
import sys, time
from pathlib import Path
from netc.backends.torch import cache

def write(tmp):
    with open(tmp, "wb") as f:
        f.write(b"half a package")
        f.flush()
        print(tmp, flush=True)
        time.sleep(600)

cache.store(Path(sys.argv[1]), "lenet5-" + "0" * 32 + ".pt2", write)
"""


def test_temp_files_of_a_writer_killed_mid_write_are_removed(cache):
    cache.mkdir(mode=0o700)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(cache)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    temp = Path(writer.stdout.readline().strip())
    writer.kill()  # SIGKILL: no cleanup runs
    writer.wait(timeout=BOUND_S)
    writer.stdout.close()
    legacy = cache / "tmpab12cd34.pt2"  # what netc before the store left behind
    legacy.write_bytes(b"x")
    os.utime(legacy, (time.time() - 2 * store.LEGACY_TEMP_AGE_S,) * 2)
    alive = cache / f"{store.TEMP_PREFIX}{os.getpid()}.00000000.lenet5-{'1' * 32}.pt2"  # a live writer's
    alive.write_bytes(b"y")
    assert temp.exists() and temp.parent == cache
    assert store.remove_stale_temps(cache) == 2
    assert sorted(cache.iterdir()) == [alive]


def _entry(folder: Path, name: str, size: int, used: float) -> Path:
    path = store.store(folder, f"{name}-{'a' * 32}.onnx", lambda tmp: Path(tmp).write_bytes(b"\0" * size))
    os.utime(f"{path}.json", (used, used))
    return path


def test_least_recently_used_entries_are_evicted_past_the_bound(tmp_path):
    folder = store.private_dir(tmp_path / "c")
    now = time.time()
    old, middle, new = (_entry(folder, n, 1000, now - age) for n, age in (("old", 300), ("middle", 200), ("new", 100)))
    assert store.lookup(folder, old.name) == old  # a hit makes it the most recently used
    assert [e.path for e in store.evict(folder, 2500)] == [middle]  # old (just used) and new fit
    assert [e.path for e in store.evict(folder, 1500)] == [new]
    assert [e.path for e in store.entries(folder)] == [old]
    assert [e.path for e in store.evict(folder, 10, keep=old)] == []  # the entry in use stays


def test_the_bound_is_set_by_the_environment(monkeypatch):
    monkeypatch.setenv("NETC_CACHE_SIZE", "3MiB")
    assert store.max_bytes() == 3 * 2**20
    monkeypatch.delenv("NETC_CACHE_SIZE")
    assert store.max_bytes() == store.DEFAULT_MAX_BYTES == 2 * 2**30
    monkeypatch.setenv("NETC_CACHE_SIZE", "lots")
    with pytest.raises(NetcError, match="NETC_CACHE_SIZE"):
        store.max_bytes()


def test_a_build_prunes_the_cache_to_its_bound(netc_cli, cache, monkeypatch):
    code, out, _ = netc_cli(*BUILD, "--seed", "0")
    first = package_of(out)
    monkeypatch.setenv("NETC_CACHE_SIZE", str(first.stat().st_size + 1))
    code, out, err = netc_cli(*BUILD, "--seed", "1")
    assert code == 0, err
    assert [e.path for e in store.entries(cache)] == [package_of(out)] and not first.exists()


def test_cache_list_and_clear(netc_cli, cache):
    code, out, _ = netc_cli(*BUILD, "--seed", "0")
    package = package_of(out)
    unrelated = cache / "notes.txt"
    unrelated.write_text("mine")
    code, out, err = netc_cli("cache", "list")
    assert code == 0, err
    assert package.name in out and f"{package.stat().st_size / 2**20:.1f} MiB" in out and str(cache) in out
    assert "1 package," in out
    code, out, err = netc_cli("cache", "clear")
    assert code == 0 and "removed 1 package" in out
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]


def test_cache_list_imports_no_torch(cache):
    assert "0 packages" in run_without_torch("cache", "list")


def test_build_writes_nothing_unless_asked(netc_cli, tmp_path, monkeypatch):
    """`netc build` in an empty folder, with HOME and the cache pointed at a temp folder, leaves both empty."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    for var in ("NETC_CODEGEN_DIR", "NETC_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    code, out, err = netc_cli("build", ROOT / "specs" / "lenet5.yaml", "--device", "cpu")
    assert code == 0, err
    assert list(work.iterdir()) == [] and list(home.iterdir()) == [] and "wrote" not in out + err
    code, out, err = netc_cli("build", ROOT / "specs" / "lenet5.yaml", "--device", "cpu", "-q", "--codegen-dir", "src")
    assert code == 0, err
    assert [p.relative_to(work) for p in work.rglob("*")] == [Path("src"), Path("src/lenet5.py")]
    assert f"wrote {Path('src') / 'lenet5.py'}" in out


# --- the key computed before building: a hit builds nothing ---------------------------------------

@pytest.fixture
def builds(monkeypatch):
    """The modules built so far: calls of the meta build and of the allocation + initialisation."""
    from netc.api import building
    from netc.backends.torch import module

    calls = []
    for owner, name in ((module, "build_meta"), (module, "build_module"), (building, "_allocate")):
        real = getattr(owner, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_hit_builds_and_initialises_nothing(netc_cli, cache, compiles, builds):
    code, out, err = netc_cli(*BUILD, "--seed", "0")
    assert code == 0, err
    assert "cache miss" in out and "build_meta" in builds and "_allocate" in builds and len(compiles) == 1
    confirmed = out.split("shapes of ", 1)[1].split(" ops", 1)[0]
    builds.clear()
    code, out, err = netc_cli(*BUILD, "--seed", "0")
    assert code == 0 and err == "", err
    assert "cache hit: loaded (onnxruntime" in out and builds == [] and len(compiles) == 1
    # the summary says what happened: nothing built now, the shapes confirmed when it was compiled
    assert "not built" in out and f"shapes of {confirmed} ops confirmed on the meta device when it was compiled" in out
    assert "61,706 parameters" in out


def test_a_cli_hit_of_the_default_backend_never_starts_torch(netc_cli, cache):
    code, out, err = netc_cli(*BUILD, "--seed", "3")
    assert code == 0, err
    out = run_without_torch("build", "lenet5", "--optimize", "inference", "--compile", "--seed", "3", "-q")
    assert "cache hit: loaded (onnxruntime" in out and package_of(out.replace("\nok", "")).parent == cache


def test_an_api_hit_builds_nothing_and_returns_the_eager_outputs(cache, compiles, builds):
    network = netc.loads(SEVERAL_OUTPUTS, "several.yaml")
    eager = build(network, seed=5).module.eval()
    first = build(network, optimize="inference", compile="onnxruntime", seed=5)
    builds.clear()
    again = build(network, optimize="inference", compile="onnxruntime", seed=5)
    assert again.module.from_cache and not first.module.from_cache and builds == [] and len(compiles) == 1
    assert again.confirmed == first.confirmed and first.confirmed > 0
    x = torch.randn(2, *network.input_shape)
    with torch.inference_mode():
        want, got = eager(x), again.module(x)
    assert type(got) is type(want) and got._fields == ("out", "pooled")
    assert all((a - b).abs().max().item() <= 1e-4 for a, b in zip(got, want))


SEVERAL_OUTPUTS = """netc: 1
name: several
input: [3, 16, 16]
layers:
  - {name: stem, conv: {out: 8, k: 3, p: 1}}
  - {name: pooled, gap: {}, output: pooled}
  - flatten
  - {linear: {out: 4}}
"""

LENET = (ROOT / "specs" / "lenet5.yaml").read_text()


def key(text: str = LENET, backend="onnxruntime", dtype="float32", init=True, seed=0, weights=None):
    from netc.backends.torch.packages import options
    from netc.backends.torch.recipe import recipe_key

    return recipe_key(netc.loads(text, "lenet5.yaml"), backend, dtype, init, seed, weights, options(backend))


def test_the_key_follows_what_the_package_is_built_from(tmp_path, monkeypatch):
    from netc.analysis import onednn
    from netc.backends.torch import recipe

    base = key()
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"w": torch.zeros(2)}, a)
    torch.save({"w": torch.ones(2)}, b)
    wider = LENET.replace("out: 120", "out: 121")
    assert wider != LENET
    differ = {"seed": key(seed=1), "weights": key(weights=a), "other weights": key(weights=b),
              "spec": key(wider), "dtype": key(dtype="bfloat16"), "init": key(init=False),
              "init scheme": key(LENET.replace("name: lenet5", "name: lenet5\ninit: resnet")),
              "state_dict": key(weights={"w": torch.zeros(2)})}
    monkeypatch.setattr(recipe, "source_digest", lambda: "netc edited")
    differ["netc's source"] = key()
    monkeypatch.undo()
    monkeypatch.setattr(onednn, "cpu_flags", lambda: ("fpu", "sse2"))
    differ["the CPU"] = key()
    monkeypatch.undo()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    differ["ATEN_CPU_CAPABILITY"] = key()
    monkeypatch.undo()
    assert len(set(differ.values()) | {base}) == len(differ) + 1, differ
    assert key() == base and key(weights=a) == differ["weights"]
    # where the spec writes things is not what it builds: comments and layout keep the key
    moved = "# a comment\n\n" + LENET.replace("\n", "  # note\n", 3)
    assert netc.loads(moved, "lenet5.yaml").graph.node(1).loc != netc.loads(LENET, "lenet5.yaml").graph.node(1).loc
    assert key(moved) == base


KEY_IN_A_PROCESS = """
import sys, netc
from netc.backends.torch.recipe import recipe_key
print(*(recipe_key(netc.load(name), "onnxruntime", "float32", True, 0, None, "o") for name in sys.argv[1:]))
"""


def test_the_key_is_the_same_in_every_process():
    """No set order, address or hash seed gets into the key: a fresh process finds the package."""
    names = ["resnet50", "googlenet", "densenet121", "mobilenet_v3_small"]
    keys = [subprocess.run([sys.executable, "-c", KEY_IN_A_PROCESS, *names], cwd=ROOT, capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout.split()
            for seed in ("1", "2")]
    assert len(keys[0]) == len(names) == len(set(keys[0])) and keys[0] == keys[1]
