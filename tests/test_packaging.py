"""The install: requirements.lock agrees with pyproject.toml, and `python -m netc` is `netc`."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tools import lockfile


def test_the_lock_matches_pyproject():
    assert lockfile.problems() == [], "refresh requirements.lock with `make lock`"


def test_the_lock_pins_the_local_torch_wheels_and_the_onnx_stack():
    versions = lockfile.locked()
    assert versions["torch"][0] == "2.14.1" and versions["torchvision"][0] == "0.29.1"
    assert {"onnx", "onnxruntime", "onnxscript", "pyyaml", "pydantic"} <= set(versions)


@pytest.fixture
def project(tmp_path):
    """A copy of pyproject.toml, constraints.txt and the lock to break."""
    for name in ("pyproject.toml", "constraints.txt", "requirements.lock"):
        (tmp_path / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


def check(project):
    return lockfile.problems(project / "pyproject.toml", project / "constraints.txt", project / "requirements.lock")


def edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_requirement_changed_without_relocking_is_caught(project):
    assert check(project) == []
    edit(project / "pyproject.toml", '"pyyaml>=6.0"', '"pyyaml>=7"')
    found = check(project)
    assert any("compiled from other requirements" in p for p in found)
    assert any("'pyyaml>=7' is declared but requirements.lock pins pyyaml==" in p for p in found)


def test_a_new_requirement_missing_from_the_lock_is_caught(project):
    edit(project / "pyproject.toml", '"click>=8.1",', '"click>=8.1",\n  "Some_Package>=1",')
    assert "'Some_Package>=1' is declared but some-package is not in requirements.lock" in check(project)


def test_a_changed_pin_and_a_missing_hash_are_caught(project):
    edit(project / "constraints.txt", "torch==2.14.1", "torch==2.13.0")
    found = check(project)
    assert any("'torch==2.13.0' is declared but requirements.lock pins torch==2.14.1" in p for p in found)
    lock = project / "requirements.lock"
    lines = lock.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, l in enumerate(lines) if l.startswith("mdurl=="))
    lines[at] = "mdurl==0.1.2\n"
    lines[at + 1:] = [l for l in lines[at + 1:at + 3] if not l.lstrip().startswith("--hash")] + lines[at + 3:]
    lock.write_text("".join(lines), encoding="utf-8")
    assert "mdurl==0.1.2 has no hash in requirements.lock" in check(project)


def test_requirements_are_ranges_not_pins():
    """pyproject.toml is the library's declaration: next to a user's own torch 2.x it must not
    demand another; the exact versions are the lock's business."""
    from packaging.requirements import Requirement

    torch = next(Requirement(r) for r in lockfile.declared() if Requirement(r).name == "torch")
    assert torch.specifier.contains("2.4.0") and torch.specifier.contains("2.14.1")
    assert not any(s.operator == "==" for r in lockfile.declared() for s in Requirement(r).specifier)


def run(*argv):
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_python_dash_m_netc_is_the_netc_command():
    direct = run("-c", "from netc.cli import run; run()", "check", "-q", "lenet5")
    module = run("-m", "netc", "check", "-q", "lenet5")
    assert module.returncode == direct.returncode == 0, module.stderr
    lenet5 = 6 * 26 + 16 * 151 + 120 * 401 + 84 * 121 + 10 * 85  # 5x5 convs 1->6->16, 400->120->84->10
    assert module.stdout == direct.stdout and f"params: {lenet5:,}" in module.stdout
    bad = run("-m", "netc", "check", "no_such_spec")
    assert bad.returncode == 2 and "error[io]" in bad.stderr and "Traceback" not in bad.stderr


def test_the_wheel_ships_the_template_library(tmp_path):
    """`imports: [{lib: netc/NAME}]` reads netc/stdlib: every file of specs/lib must be in the wheel."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("netc-*.whl"))).namelist())
    library = {f"netc/stdlib/{p.name}" for p in (ROOT / "specs" / "lib").glob("*.yaml")}
    assert library and library <= names
