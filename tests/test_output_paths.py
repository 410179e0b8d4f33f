"""Output paths netc cannot write are the user's error: error[io] naming the path and the
reason, exit 2, no traceback, any existing file intact (issue 17, class 3)."""
from __future__ import annotations

import os

import pytest

TINY = "netc: 1\nname: tiny\ninput: [3, 8, 8]\nlayers: [{conv: {out: 4, k: 3}}, relu]\n"


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY)
    return p


def places(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    return {
        "a directory": (tmp_path, "directory"),
        "a full device": ("/dev/full", "No space left on device"),
        "a path under a regular file": (afile / "x.out", "is a file, not a directory"),
        "a place no one may create files": ("/proc/netc-test.out", "No such file or directory"),
    }


@pytest.mark.parametrize("place", ["a directory", "a full device", "a path under a regular file",
                                   "a place no one may create files"])
@pytest.mark.parametrize("command", ["render", "schema", "build --save"])
def test_unwritable_output_is_an_io_error(command, place, tiny, tmp_path, netc_cli):
    path, reason = places(tmp_path)[place]
    args = {"render": ["render", tiny, "--dot", "-o", path], "schema": ["schema", "-o", path],
            "build --save": ["build", tiny, "--device", "cpu", "--codegen-dir", "", "-q", "--save", path]}[command]
    status, out, err = netc_cli(*args)
    assert status == 2, (out, err)
    if command != "render" and place == "a directory":  # click's own check of a file option, also exit 2
        assert f"'{path}' is a directory" in err, err
    else:
        assert err.startswith(f"error[io]: cannot write '{path}': ") and reason in err, err
    assert "Traceback" not in err and "internal error" not in err
    assert (tmp_path / "afile").read_text() == "keep me"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_read_only_directory(tiny, tmp_path, netc_cli):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "x.dot").write_text("old")
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: a read-only bind is not available here
            pytest.skip("running as root: a 0500 directory is writable")
        status, _, err = netc_cli("render", tiny, "--dot", "-o", ro / "x.dot")
        assert status == 2 and "error[io]: cannot write" in err and "Permission denied" in err
        assert (ro / "x.dot").read_text() == "old"
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("args", [
    ["table", "{spec}"], ["table", "{spec}", "--layout", "paper"], ["lint", "{spec}"], ["diff", "{spec}", "{spec}"],
    ["schema"], ["render", "{spec}", "--dot"], ["lint", "--rules"]])
def test_dash_output_is_stdout_for_every_verb(args, tiny, tmp_path, netc_cli, monkeypatch):
    """`-o -` means stdout wherever a verb writes its result, never a file named '-'."""
    monkeypatch.chdir(tmp_path)
    argv = [str(a).format(spec=tiny) for a in args]
    plain, to_stdout, _ = netc_cli(*argv)
    status, out, err = netc_cli(*argv, "-o", "-")
    assert status == plain in (0, 1), err  # lint exits 1 on findings
    assert out == to_stdout and out.strip()
    assert not (tmp_path / "-").exists()


def test_codegen_dash_output_is_the_source_on_stdout(tiny, tmp_path, netc_cli, monkeypatch):
    """`codegen -o -` prints the file `codegen -o DIR` writes, and creates no folder named '-'."""
    monkeypatch.chdir(tmp_path)
    status, out, err = netc_cli("codegen", tiny, "-o", "-")
    assert status == 0, err
    assert not (tmp_path / "-").exists()
    status, _, err = netc_cli("codegen", tiny, "-o", tmp_path / "src")
    assert status == 0, err
    assert out == (tmp_path / "src" / "tiny.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", [["lint", "{spec}"], ["diff", "{spec}", "{spec}"],
                                     ["convert-weights", "{spec}", "{spec}", "--weights", "{spec}", "-o", "{out}"],
                                     ["check", "{spec}"], ["table", "{spec}"]])
def test_every_verb_that_compiles_a_spec_takes_the_limits(command, tiny, tmp_path, netc_cli):
    argv = [str(a).format(spec=tiny, out=tmp_path / "w.pt") for a in command]
    status, out, err = netc_cli(*argv, "--max-nodes", "1")
    assert status == 2 and "error[limit]" in err and "--max-nodes" in err, err
