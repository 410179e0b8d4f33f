"""No temp files left behind (issue 17, class 6): SIGTERM is handled like Ctrl-C (temp files
removed, exit 143), and the temp files of a process killed outright (SIGKILL) are removed by the
next write to the same place."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from netc.fsutil import write_atomic

ROOT = Path(__file__).resolve().parent.parent
TINY = "netc: 1\nname: tiny\ninput: [3, 8, 8]\nlayers: [{conv: {out: 4, k: 3}}, relu]\n"

# SIGTERM arrives while the temp file exists: just before it would be renamed into place
TERM_DURING_WRITE = """
import os, signal, sys, time
real_replace = os.replace
def replace(src, dst):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    real_replace(src, dst)
os.replace = replace
from netc.cli import main
main(sys.argv[1:])
"""


def temps(directory: Path) -> list[str]:
    return [p for p in os.listdir(directory) if p.endswith(".tmp")]


def test_sigterm_during_a_write_cleans_up_and_exits_143(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out = tmp_path / "out.dot"
    out.write_text("old")
    proc = subprocess.run([sys.executable, "-c", TERM_DURING_WRITE, "render", str(spec), "--dot", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert "terminated" in proc.stderr and "Traceback" not in proc.stderr
    assert temps(tmp_path) == [] and out.read_text() == "old"


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "model.pt"
    stale = tmp_path / f".model.pt.{dead.pid}.abcd1234.tmp"   # left by a SIGKILLed netc
    live = tmp_path / f".model.pt.{os.getppid()}.efgh5678.tmp"  # a running writer's: kept
    other = tmp_path / f".other.pt.{dead.pid}.abcd1234.tmp"     # another file's: not ours to judge now
    for p in (stale, live, other):
        p.write_bytes(b"x" * 1000)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(temps(tmp_path)) == sorted([live.name, other.name])


def test_sigkill_leftover_is_removed_by_the_next_run(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out = tmp_path / "out.dot"
    killed = """
import os, signal, sys
def replace(src, dst):
    os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
from netc.cli import main
main(sys.argv[1:])
"""
    proc = subprocess.run([sys.executable, "-c", killed, "render", str(spec), "--dot", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and len(temps(tmp_path)) == 1  # what SIGKILL leaves
    rerun = subprocess.run([sys.executable, "-c", "from netc.cli import run; run()", "render", str(spec), "--dot",
                            "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert temps(tmp_path) == [] and out.read_text().startswith("digraph")
