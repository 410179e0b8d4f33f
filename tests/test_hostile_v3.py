"""Hostile input beyond the spec (issue 31): weight files, references a spec's `meta:` names, option
values, stdout that cannot be written, sources that exit, an environment that cannot load torch.
Each ends in exit 0, 1 or 2 within a bounded time, with nothing executed and nothing written but
what was asked."""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from netc.backends.torch import weights as weights_module
from netc.backends.torch.weights import read_state_dict
from netc.errors import NetcError
from tests.conftest import ROOT
from tests.test_hostile import DIAG

TINY = "netc: 1\nname: tiny\ninput: [3, 8, 8]\nlayers:\n  - {name: c, conv: {out: 4, k: 3}}\n"
TIMEOUT = 120  # seconds for a subprocess that loads torch; a hang (a FIFO opened) would run past it


def run_netc(*args, cwd=None, env=None, stdout=subprocess.PIPE, limit_as=None, timeout=TIMEOUT):
    """`netc ARGS` in a fresh process: (status, stdout, stderr)."""
    def preexec():
        if limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    proc = subprocess.run([sys.executable, "-c", "from netc.cli import run; run()", *map(str, args)],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout, cwd=cwd or ROOT,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec)
    return proc.returncode, proc.stdout or "", proc.stderr


def clean(status, err, code):
    assert status == 2, err[-2000:]
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    assert f"error[{code}]" in err, err[-2000:]


# --- weight files: one reader, bounded before anything is unpickled ------------------------------

def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _saved(path: Path, obj, **kwargs) -> Path:
    torch.save(obj, path, **kwargs)
    return path


class _Planted:
    """Pickled, it would create the file `target` (os.system) when unpickled by a plain unpickler."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo.pt")
    return tmp_path / "fifo.pt"


def _link_to_fifo(tmp_path: Path) -> Path:
    (tmp_path / "fifo_link.pt").symlink_to(_fifo(tmp_path))
    return tmp_path / "fifo_link.pt"


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "dir.pt").mkdir()
    return tmp_path / "dir.pt"


HOSTILE = {
    "fifo": _fifo,
    "symlink_to_fifo": _link_to_fifo,
    "directory": _directory,
    "character_device": lambda t: Path("/dev/zero"),
    "missing": lambda t: t / "missing.pt",
    "not_a_zip": lambda t: _raw(t / "junk.pt", b"\0" * 100),
    "legacy_format": lambda t: _saved(t / "legacy.pt", {"a": torch.zeros(2)}, _use_new_zipfile_serialization=False),
    # 100 MB of zeros deflate to ~100 KB: a compressed member is refused from the directory
    "zip_bomb": lambda t: _zip(t / "bomb.pt", {"a/data.pkl": b"\x80\x02}q\x00.", "a/data/0": bytes(100_000_000)},
                               zipfile.ZIP_DEFLATED),
    "pickle_over_the_limit": lambda t: _zip(t / "bigpkl.pt", {"a/data.pkl": b"N" * (weights_module.MAX_PICKLE_BYTES + 1)}),
    "too_many_members": lambda t: _zip(t / "many.pt", {f"a/data/{i}": b"" for i in range(weights_module.MAX_MEMBERS + 1)}),
    "truncated": lambda t: _raw(t / "cut.pt", _saved(t / "whole.pt", {"a": torch.zeros(64)}).read_bytes()[:300]),
    "integer_keys": lambda t: _saved(t / "ints.pt", {0: torch.zeros(1), 1: torch.zeros(1)}),
    "tuple_key": lambda t: _saved(t / "tuple.pt", {"a": torch.zeros(1), (1, 2): torch.zeros(1)}),
    "string_value": lambda t: _saved(t / "str.pt", {"a": "weights"}),
    "integer_value": lambda t: _saved(t / "int.pt", {"a": 3}),
    "nested_value": lambda t: _saved(t / "nested.pt", {"a": {"b": torch.zeros(1)}}),
    "a_list": lambda t: _saved(t / "list.pt", [torch.zeros(1)]),
    "a_tensor": lambda t: _saved(t / "tensor.pt", torch.zeros(3)),
    "wrapped_non_tensor": lambda t: _saved(t / "wrapped.pt", {"state_dict": {"a": [1, 2]}}),
    "code_in_the_pickle": lambda t: _saved(t / "code.pt", {"a": _Planted(t / "ran")}),
}
# refused from the file's kind or the zip directory, before torch unpickles a byte
UNOPENED = {"fifo", "symlink_to_fifo", "directory", "character_device", "missing", "not_a_zip", "legacy_format",
            "zip_bomb", "pickle_over_the_limit", "too_many_members"}


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_weight_files_are_refused_by_the_reader(case, tmp_path, monkeypatch):
    path = HOSTILE[case](tmp_path)
    if case in UNOPENED:
        monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled a file the bounds refuse"))
    with pytest.raises(NetcError) as info:
        read_state_dict(path)
    d = info.value.diagnostics[0]
    assert d.code == "weights" and str(path) in d.format(), d.format()
    assert not (tmp_path / "ran").exists()  # nothing in the file was executed


def test_the_total_size_is_bounded_before_unpickling(tmp_path, monkeypatch):
    path = _saved(tmp_path / "w.pt", {"a": torch.zeros(1000)})
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled a file over the limit"))
    with pytest.raises(NetcError, match="over the limit of 100"):
        read_state_dict(path, max_bytes=100)  # the file itself
    # a directory that declares a 4 GB member in a 5 KB file: refused from the declaration
    data = bytearray(path.read_bytes())
    entry = next(i for i in range(len(data)) if data[i:i + 4] == b"PK\x01\x02"  # a central directory entry
                 and data[i + 46:i + 54] == b"w/data/0")
    data[entry + 24:entry + 28] = (0xFFFF0000).to_bytes(4, "little")  # its uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(NetcError, match="members hold 4,294,9"):
        read_state_dict(path, max_bytes=2**31)


def test_members_that_do_not_fit_in_memory_are_refused(tmp_path, monkeypatch):
    path = _saved(tmp_path / "w.pt", {"a": torch.zeros(1000)})
    monkeypatch.setattr("netc.backends.torch.memory.available_bytes", lambda device: 3999)
    with pytest.raises(NetcError) as info:
        read_state_dict(path)
    assert info.value.diagnostics[0].code == "limit" and str(path) in info.value.diagnostics[0].format()


def test_a_state_dict_and_a_wrapped_one_are_read(tmp_path):
    state = {"conv.weight": torch.randn(4, 3, 3, 3), "bn.num_batches_tracked": torch.tensor(7)}
    for obj in (state, {"state_dict": state, "epoch": 3}):
        got = read_state_dict(_saved(tmp_path / "w.pt", obj))
        assert list(got) == list(state) and all(torch.equal(got[k], state[k]) for k in state)


def _tiny_specs(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path / "tiny.yaml"


@pytest.mark.parametrize("case", ["fifo", "zip_bomb", "integer_keys", "string_value", "code_in_the_pickle"])
@pytest.mark.parametrize("command", ["convert-weights", "export", "verify"])
def test_every_command_reads_weights_through_the_reader(case, command, tmp_path):
    """convert-weights, export --weights and verify's state_dict source: error[weights] naming the
    file, exit 2, nothing written, within the timeout (a FIFO opened would block until it)."""
    spec = _tiny_specs(tmp_path)
    path = HOSTILE[case](tmp_path)
    if command == "verify" and path.suffix != ".pt":
        path = path.rename(path.with_suffix(".pt"))
    out = tmp_path / "out.bin"
    args = {"convert-weights": ["convert-weights", spec, spec, "--weights", path, "-o", out],
            "export": ["export", spec, "--onnx", out, "--weights", path],
            "verify": ["verify", spec, path]}[command]
    status, _, err = run_netc(*args)
    clean(status, err, "weights")
    assert str(path) in err
    assert not out.exists() and not (tmp_path / "ran").exists()


# --- references a spec names: registry names only ----------------------------------------------

@pytest.mark.parametrize("value", ["torchvision: list_models", "torchvision: __class__", "torchvision: get_model",
                                   "torchvision: '../../etc/passwd'", "torchvision: [resnet18]",
                                   "torchvision: 18", "timm: 'hf-hub:someone/model'", "timm: 'local-dir:/etc'",
                                   "timm: create_model", "timm: 'resnet18; rm -rf /'"])
def test_a_meta_reference_is_a_registry_name(value, tmp_path, netc_cli, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("netc went to the network for a spec's meta")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    text = TINY.replace("layers:", f"meta: {{{value}}}\nlayers:")
    (tmp_path / "m.yaml").write_text(text)
    status, out, err = netc_cli("bench", tmp_path / "m.yaml", "--vs", "torchvision", "--iters", "1", "--warmup", "0")
    assert status == 2, (out, err)
    m = DIAG.search(err)
    line = text.splitlines().index(next(l for l in text.splitlines() if l.startswith("meta:"))) + 1
    col = text.splitlines()[line - 1].index(value.split(": ", 1)[1]) + 1
    assert m and (m["code"], int(m["line"]), int(m["col"])) == ("meta", line, col), err


def _spy_on_devices(monkeypatch):
    """The default device each torchvision constructor call ran under."""
    import torchvision

    devices, real = [], torchvision.models.get_model

    def spy(*args, **kwargs):
        devices.append(torch.get_default_device().type)
        return real(*args, **kwargs)

    monkeypatch.setattr(torchvision.models, "get_model", spy)
    return devices


def test_a_reference_that_is_not_the_spec_is_refused_before_it_is_allocated(tmp_path, netc_cli, monkeypatch):
    """vit_h_14 (632 M parameters, 2.5 GB) named by a 112-parameter spec: compared on the meta device."""
    devices = _spy_on_devices(monkeypatch)
    text = TINY.replace("layers:", "meta: {torchvision: vit_h_14}\nlayers:")
    (tmp_path / "m.yaml").write_text(text)
    status, _, err = netc_cli("bench", tmp_path / "m.yaml", "--vs", "torchvision", "--iters", "1")
    assert status == 2 and "error[meta]" in err and "vit_h_14 is not this spec" in err, err
    assert devices == ["meta"]


def test_a_reference_is_memory_checked_before_it_is_allocated(monkeypatch):
    import torchvision

    import netc
    from netc.backends.torch.reference import build_reference

    network = netc.load(ROOT / "specs" / "resnet18.yaml")
    weights = network.build().eval()
    with torch.device("meta"):
        shell = torchvision.models.resnet18(weights=None)  # the oracle: torchvision's own count
    need = sum(t.numel() * t.element_size() for t in shell.state_dict().values())
    devices = _spy_on_devices(monkeypatch)
    monkeypatch.setattr("netc.backends.torch.memory.available_bytes", lambda device: need - 1)
    with pytest.raises(NetcError) as info:
        build_reference(network, weights)
    d = info.value.diagnostics[0]
    assert d.code == "limit" and "torchvision resnet18" in d.message and d.loc.line == 6, d.format()
    assert devices == ["meta"]
    monkeypatch.setattr("netc.backends.torch.memory.available_bytes", lambda device: need)
    model, what = build_reference(network, weights)
    assert what == "torchvision resnet18" and devices == ["meta", "meta", "cpu"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), weights(x), atol=1e-5)


# --- option values ---------------------------------------------------------------------------

HUGE = "9" * 400


@pytest.mark.parametrize("args", [
    ["table", "{spec}", "--train", "--budget", HUGE], ["table", "{spec}", "--budget", "1e400GiB"],
    ["table", "{spec}", "--budget", "-3GiB"], ["table", "{spec}", "--budget", "\x1b[2J"],
    ["table", "{spec}", "--train", "--batch", HUGE], ["bench", "{spec}", "--threads", "100000"],
    ["bench", "{spec}", "--threads", "1e20"], ["bench", "{spec}", "--threads", "0"], ["bench", "{spec}", "--batch", "-1"],
    ["bench", "{spec}", "--iters", HUGE], ["bench", "{spec}", "--warmup", "nan"],
    ["check", "{spec}", "--max-nodes", HUGE], ["check", "{spec}", "--max-work", "-1"],
    ["check", "{spec}", "--max-param-bytes", "1e20"], ["check", "{spec}", "--max-depth", "0"],
    ["check", "{spec}", "--input", f"3x{HUGE}x8"], ["bench", "{spec}", "--input", f"{2**63}"],
    ["export", "{spec}", "--onnx", "{out}", "--opset", "99999"], ["export", "{spec}", "--onnx", "{out}", "--opset", "17"],
    ["export", "{spec}", "--onnx", "{out}", "--opset", "x"], ["export", "{spec}", "--onnx", "{out}", "--opset", HUGE],
    ["diff", "{spec}", "{spec}", "--depth", "0"], ["render", "{spec}", "--dot", "--depth", "-1"],
])
def test_option_values_are_validated_at_the_command_line(args, tmp_path, netc_cli):
    spec, out = _tiny_specs(tmp_path), tmp_path / "out.onnx"
    status, stdout, err = netc_cli(*[spec if a == "{spec}" else out if a == "{out}" else a for a in args])
    assert status == 2, (stdout, err)
    assert "Invalid value" in err and not out.exists()


@pytest.mark.parametrize("args", [
    ["build", "{spec}", "-q", "--codegen-dir", "", "--save", "a\0b"], ["schema", "-o", "\0"],
    ["render", "{spec}", "--dot", "-o", "a\0b"], ["table", "{spec}", "-o", "\0"], ["codegen", "{spec}", "-o", "\0"],
    ["export", "{spec}", "--onnx", "\0"], ["convert-weights", "{spec}", "{spec}", "--weights", "w\0", "-o", "y"],
    ["list", "--update", "\0"], ["lint", "{spec}", "-o", "\0"], ["diff", "{spec}", "{spec}", "-o", "\0"],
    ["verify", "{spec}", "a\0.pt"], ["import", "a\0.py:Net", "--check-only"], ["check", "a\0b"]],
    ids=lambda a: a[0])
def test_a_nul_byte_in_a_path_option_is_an_io_error(args, tmp_path, netc_cli, monkeypatch):
    """Found by the option fuzz: click's Path type and os.stat raise ValueError for a NUL byte."""
    monkeypatch.chdir(tmp_path)
    spec = _tiny_specs(tmp_path)
    status, out, err = netc_cli(*[spec if a == "{spec}" else a for a in args])
    assert status == 2 and "Traceback" not in err and "internal error" not in err, (out, err)
    assert re.search(r"error\[(io|weights)\]: ", err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_every_opset_the_exporter_offers_is_the_one_written(tmp_path, netc_cli):
    import onnx
    from onnxscript.version_converter import _version_converter as converter

    spec = _tiny_specs(tmp_path)
    for opset in sorted({18, converter.SUPPORTED_MAX_ONNX_OPSET}):
        out = tmp_path / f"{opset}.onnx"
        status, _, err = netc_cli("export", spec, "--onnx", out, "--opset", opset)
        assert status == 0, err
        assert {o.domain: o.version for o in onnx.load(out).opset_import}[""] == opset
    status, _, err = netc_cli("export", spec, "--onnx", tmp_path / "x.onnx", "--opset", converter.SUPPORTED_MAX_ONNX_OPSET + 1)
    assert status == 2 and not (tmp_path / "x.onnx").exists()


PRINTING = [["check", "{spec}"], ["schema"], ["table", "{spec}"], ["table", "{spec}", "--format", "json"],
            ["list"], ["paths", "{spec}"], ["diff", "{spec}", "{spec}"], ["render", "{spec}", "--dot"],
            ["lint", "{spec}", "--format", "json"], ["codegen", "{spec}"], ["build", "{spec}", "-q"],
            ["table", "{spec}", "--train"], ["export", "{spec}", "--onnx", "-"]]


@pytest.mark.parametrize("args", PRINTING, ids=lambda a: "_".join(a).replace("{spec}", "spec"))
def test_stdout_on_a_full_disk_is_an_io_error(args, tmp_path):
    spec = _tiny_specs(tmp_path)
    with open("/dev/full", "w") as full:
        status, _, err = run_netc(*[spec if a == "{spec}" else a for a in args], stdout=full, cwd=tmp_path,
                                  env={"NETC_CODEGEN_DIR": ""})
    clean(status, err, "io")
    assert "cannot write to stdout: No space left on device" in err and "Exception ignored" not in err


# --- netc import runs the file; environment options and failures -------------------------------

@pytest.mark.parametrize("command", ["import", "verify"])
@pytest.mark.parametrize("where", ["top", "factory", "forward"])
def test_an_imported_file_that_exits_is_an_error(where, command, tmp_path):
    body = {"top": "sys.exit(0)\n", "factory": "", "forward": ""}[where]
    init = "        sys.exit(0)\n" if where == "factory" else ""
    forward = "        sys.exit(0)\n" if where == "forward" else ""
    (tmp_path / "m.py").write_text(
        "import sys\nimport torch\n" + body +
        "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n" + init +
        "        self.c = torch.nn.Conv2d(3, 4, 3)\n    def forward(self, x):\n" + forward + "        return self.c(x)\n")
    source = f"{tmp_path / 'm.py'}:Net"
    args = ["import", source, "-o", tmp_path / "s.yaml"] if command == "import" else \
        ["verify", _tiny_specs(tmp_path), source]
    status, out, err = run_netc(*args, "--input", "3x8x8")
    clean(status, err, "import")
    assert "exited (sys.exit(0)) while netc ran it" in err and not (tmp_path / "s.yaml").exists()


def test_what_an_imported_file_prints_stays_off_the_spec(tmp_path):
    import yaml

    (tmp_path / "m.py").write_text("import torch\nprint('name: hijacked')\n"
                                   "class Net(torch.nn.Sequential):\n    def __init__(self):\n"
                                   "        print('layers: []')\n        super().__init__(torch.nn.Conv2d(3, 4, 3))\n")
    status, out, err = run_netc("import", tmp_path / "m.py:Net", "--input", "3x8x8")
    assert status == 0, err
    assert yaml.safe_load(out)["name"] == "Net" and "name: hijacked" in err


def test_import_help_says_the_file_is_run(netc_cli):
    status, out, _ = netc_cli("import", "--help")
    assert status == 0 and "A .py SOURCE is run" in " ".join(out.split())


def test_an_empty_codegen_dir_in_the_environment_skips_codegen(tmp_path):
    spec = _tiny_specs(tmp_path)
    for env, written in (({"NETC_CODEGEN_DIR": ""}, []), ({"NETC_CODEGEN_DIR": "gen"}, ["gen"])):
        status, _, err = run_netc("build", spec, "-q", "--device", "cpu", cwd=tmp_path, env=env)
        assert status == 0, err
        assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == written
    assert (tmp_path / "gen" / "tiny.py").is_file()


def test_torch_that_cannot_load_is_an_environment_error(tmp_path):
    """Under an address-space limit that netc's own modules fit in and torch's libraries do not
    (measured here: 600 MiB), `netc build` is an environment failure, not a bug in netc."""
    spec = _tiny_specs(tmp_path)
    status, out, err = run_netc("check", spec, limit_as=600 * 2**20)
    assert status == 0, err  # netc itself runs in this much
    status, out, err = run_netc("build", spec, "-q", "--codegen-dir", "", limit_as=600 * 2**20)
    clean(status, err, "environment")
    assert "this is the environment, not netc" in err and "bug" not in err


def test_a_broken_torch_install_is_an_environment_error(tmp_path):
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise OSError('libtorch_cpu.so: cannot open shared object file')\n")
    spec = _tiny_specs(tmp_path)
    status, _, err = run_netc("build", spec, "-q", "--codegen-dir", "",
                              env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}"})
    clean(status, err, "environment")
    assert "OSError: libtorch_cpu.so" in err


# --- the name rule GUARANTEES.md states is the one netc/names.py applies ----------------------

def test_guarantees_state_the_name_rule_that_is_applied(tmp_path):
    from netc.names import IDENTIFIER, MODULE_NAME

    text = (ROOT / "docs" / "GUARANTEES.md").read_text(encoding="utf-8")
    assert f"`{MODULE_NAME.pattern}`" in text and f"`{IDENTIFIER.pattern}`" in text
    assert "[A-Za-z0-9_]{1,64}" not in text
    for name, ok in (("block1-0", True), ("a_b9", True), ("-a", False), ("a.b", False), ("x" * 65, False)):
        (tmp_path / "n.yaml").write_text(TINY.replace("name: c,", f"name: '{name}',"))
        status, _, err = run_netc("check", tmp_path / "n.yaml", "-q")
        assert status == (0 if ok else 2), (name, err)
