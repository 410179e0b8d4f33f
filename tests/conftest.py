import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# `netc build` also writes generated/<name>.py; in tests (often with --set) that would rewrite the
# committed files, so builds write into a scratch directory instead
os.environ.setdefault("NETC_CODEGEN_DIR", tempfile.mkdtemp(prefix="netc-generated-"))


@pytest.fixture
def netc_cli():
    """Run the CLI in-process via click's runner: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from netc.cli import main

    def run(*args):
        runner = CliRunner()
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def run_without_torch(*argv: str) -> str:
    """Run `netc ARGV` in a fresh interpreter, assert it succeeded without importing torch; its stdout."""
    code = ("import sys\n"
            "from netc.cli import main\n"
            f"try:\n    main({list(argv)!r})\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            f"assert 'torch' not in sys.modules, 'netc {argv[0]} imported torch'\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
    return out.stdout
