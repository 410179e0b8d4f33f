import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


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
