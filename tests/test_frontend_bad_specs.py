"""The bad-spec corpus: one file per mistake a user makes, each with its expected diagnostic.

Every text file in tests/bad/ starts with `# expect: CODE LINE:COL [CLI ARGS...]`, written by
reading the YAML (not by running netc). Files that cannot hold a comment (empty, binary) have
their expectation in NO_HEADER below. The test runs `netc check` and asserts exit status 2, no
traceback, and that the first diagnostic is `file:line:col: error[code]: message` at that place.
"""
import re
import shlex
from pathlib import Path

import pytest

BAD = Path(__file__).resolve().parent / "bad"
NO_HEADER = {
    "empty.yaml": ("schema", 1, 1, []),
    "comment_only.yaml": ("schema", 1, 1, []),
    "binary_garbage.yaml": ("encoding", 1, 1, []),  # 0x89, the PNG magic, is not UTF-8
}
DIAG = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>[a-z-]+)\]: \S")
HEADER = re.compile(r"^# expect: (?P<code>[a-z-]+) (?P<line>\d+):(?P<col>\d+)(?P<args>.*)$")


def expectation(path: Path):
    if path.name in NO_HEADER:
        return NO_HEADER[path.name]
    first = path.read_text().splitlines()[0]
    m = HEADER.match(first)
    assert m, f"{path.name}: first line must be '# expect: CODE LINE:COL [ARGS]'"
    return m["code"], int(m["line"]), int(m["col"]), shlex.split(m["args"])


CASES = sorted(p.name for p in BAD.glob("*.yaml"))


def test_corpus_is_large_enough():
    assert len(CASES) >= 35


@pytest.mark.parametrize("name", CASES)
def test_bad_spec(name, netc_cli):
    path = BAD / name
    code, line, col, args = expectation(path)
    status, out, err = netc_cli("check", path, *args)
    assert status == 2, (out, err)
    assert "Traceback" not in err
    first = err.splitlines()[0]
    m = DIAG.match(first)
    assert m, f"not a compiler-style diagnostic: {first!r}"
    assert (m["code"], int(m["line"]), int(m["col"])) == (code, line, col), err
    assert m["file"] == str(path)
