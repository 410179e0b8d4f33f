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
    assert (entry.read_bytes() == package.read_bytes())
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
