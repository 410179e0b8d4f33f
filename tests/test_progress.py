"""Progress on slow commands: shown on a terminal (a pseudo-terminal drives the real CLI), never
in a pipe and never with -q; stdout is the command's output either way."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.heavy  # fifteen CLI runs, each importing torch

NETC = [sys.executable, "-m", "netc"]
ELAPSED = re.compile(rb"\d:\d\d:\d\d")  # rich's elapsed-time column, h:mm:ss

SMALL_MODEL = """
import torch.nn as nn

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))
"""


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_INTERACTIVE")}
    env.update(TERM="xterm-256color", COLUMNS="120")
    return env


def on_terminal(args, cwd) -> tuple[int, bytes, bytes]:
    """`netc ARGS` with stderr on a pseudo-terminal: (status, stdout, everything the terminal got)."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(NETC + args, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    out = proc.stdout.read()
    return proc.wait(timeout=600), out, bytes(seen)


def in_pipe(args, cwd) -> tuple[int, bytes, bytes]:
    done = subprocess.run(NETC + args, check=False, cwd=cwd, env=_env(), capture_output=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def model_file(tmp_path):
    (tmp_path / "small.py").write_text(SMALL_MODEL)
    return tmp_path


CASES = {
    "import": (["import", "small.py:Small", "--input", "3x16x16", "-o", "small.yaml"], [b"trace small.py", b"verify"]),
    "export": (["export", "lenet5", "--onnx", "lenet5.onnx"], [b"build lenet5", b"export to ONNX"]),
    "build": (["build", "lenet5", "--device", "cpu", "--codegen-dir", ""], [b"build lenet5"]),
    "codegen": (["codegen", "lenet5", "-o", "out"], [b"generate and format out/lenet5.py"]),
    # warm-up and timed forwards are counted: their bars' amounts are the options'
    "bench": (["bench", "lenet5", "--device", "cpu", "--iters", "3", "--warmup", "1", "--batch", "1"],
              [b"time lenet5", b"3/3", b"1/1"]),
}


@pytest.mark.parametrize("command", CASES)
def test_progress_on_a_terminal_only(command, model_file):
    args, stages = CASES[command]
    status, out, terminal = on_terminal(args, model_file)
    assert status == 0, terminal.decode(errors="replace")
    assert all(s in terminal for s in stages) and ELAPSED.search(terminal), terminal  # stages, elapsed times
    assert not any(s in out for s in stages[:1])  # the display is on stderr, never in the output

    status, piped_out, piped_err = in_pipe(args, model_file)
    assert status == 0, piped_err
    assert stages[0] not in piped_err and not ELAPSED.search(piped_err)
    if command in ("import", "codegen"):  # the others print measurements (times, largest differences, memory)
        assert piped_out == out

    status, _, quiet_terminal = on_terminal(args + ["-q"], model_file)
    assert status == 0
    assert stages[0] not in quiet_terminal and not ELAPSED.search(quiet_terminal)
