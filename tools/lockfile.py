"""requirements.lock: the exact, hashed environment that `make build`, `make test` and CI install.

pyproject.toml declares ranges (a library's promise); the lock pins what this repository is tested
with. The lock's header records a digest of the lists it was compiled from, so a change to
pyproject.toml's requirements, or to constraints.txt, that was not followed by `make lock` is caught
without any network:

    python tools/lockfile.py compile   # re-resolve (pip-compile --generate-hashes), write the lock
    python tools/lockfile.py check     # the lock matches pyproject.toml: digest, names, versions, hashes
    python tools/lockfile.py sync      # uninstall what the running venv holds beyond the lock

Only the standard library and `packaging` (pip's own copy if it is not installed) are needed.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a bare venv: pip vendors the same library
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints.txt"
LOCK = ROOT / "requirements.lock"
EXTRAS = ("test", "onnx")  # the optional dependency groups the lock includes
DIGEST_LINE = "# pyproject-digest: "
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
NOT_LOCKED = {"pip", "netc"}  # the installer itself and the project (installed editable, no deps)


def declared(pyproject: Path = PYPROJECT) -> list[str]:
    """Every requirement the lock is compiled from: build-system, dependencies and EXTRAS."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    extras = data["project"].get("optional-dependencies", {})
    return [*data["build-system"]["requires"], *data["project"]["dependencies"],
            *(r for name in EXTRAS for r in extras.get(name, []))]


def pins(constraints: Path = CONSTRAINTS) -> list[str]:
    lines = constraints.read_text(encoding="utf-8").splitlines() if constraints.exists() else []
    return [l.split("#")[0].strip() for l in lines if l.split("#")[0].strip()]


def digest(pyproject: Path = PYPROJECT, constraints: Path = CONSTRAINTS) -> str:
    text = json.dumps({"declared": declared(pyproject), "pins": pins(constraints), "extras": EXTRAS})
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def locked(lock: Path = LOCK) -> dict[str, tuple[str, int]]:
    """{canonical name: (version, number of hashes)} of the lock."""
    out: dict[str, tuple[str, int]] = {}
    name = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        m = PINNED.match(line)
        if m:
            name = canonicalize_name(m[1])
            out[name] = (m[2], 0)
        if name and "--hash=sha256:" in line:
            out[name] = (out[name][0], out[name][1] + 1)
    return out


def recorded_digest(lock: Path = LOCK) -> str | None:
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(DIGEST_LINE):
            return line[len(DIGEST_LINE):].split()[0]
    return None


def problems(pyproject: Path = PYPROJECT, constraints: Path = CONSTRAINTS, lock: Path = LOCK) -> list[str]:
    """Why the lock does not match pyproject.toml and constraints.txt (empty when it does)."""
    if not lock.exists():
        return [f"{lock.name} is missing"]
    found, want = recorded_digest(lock), digest(pyproject, constraints)
    out = [] if found == want else [
        f"{lock.name} was compiled from other requirements (digest {found}, pyproject.toml and "
        f"{constraints.name} now give {want})"]
    versions = locked(lock)
    for text in [*declared(pyproject), *pins(constraints)]:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name not in versions:
            out.append(f"'{text}' is declared but {name} is not in {lock.name}")
        elif not req.specifier.contains(versions[name][0], prereleases=True):
            out.append(f"'{text}' is declared but {lock.name} pins {name}=={versions[name][0]}")
    out += [f"{name}=={v} has no hash in {lock.name}" for name, (v, n) in versions.items() if n == 0]
    return out


def compile_lock() -> None:
    """Re-resolve with pip-compile (pip's own finder: it sees the local wheel store that pip's
    configuration names) and stamp the digest of what was compiled into the header."""
    args = ["pip-compile", "--quiet", "--generate-hashes", "--allow-unsafe", "--all-build-deps",
            "--strip-extras", "--no-emit-index-url", "--no-emit-find-links", "--rebuild",
            *(f"--extra={e}" for e in EXTRAS), f"--constraint={CONSTRAINTS.name}",
            f"--output-file={LOCK.name}", PYPROJECT.name]
    LOCK.unlink(missing_ok=True)  # resolve afresh; pip-compile otherwise prefers the old pins
    subprocess.run(args, cwd=ROOT, check=True)
    lines = LOCK.read_text(encoding="utf-8").splitlines(keepends=True)
    stamp = f"{DIGEST_LINE}{digest()} (of pyproject.toml's requirements and constraints.txt)\n"
    header = 0
    while header < len(lines) and lines[header].startswith("#"):
        header += 1
    LOCK.write_text("".join(lines[:header]) + stamp + "".join(lines[header:]), encoding="utf-8")


def extraneous() -> list[str]:
    """Distributions in the running environment that the lock does not hold."""
    from importlib.metadata import distributions

    keep = set(locked()) | NOT_LOCKED
    return sorted({canonicalize_name(d.metadata["Name"]) for d in distributions()} - keep)


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "compile":
        compile_lock()
        cmd = "check"
    if cmd == "check":
        found = problems()
        for p in found:
            print(f"{LOCK.name}: {p}", file=sys.stderr)
        if found:
            print("refresh it with `make lock`", file=sys.stderr)
        return 1 if found else 0
    if cmd == "sync":
        extra = extraneous()
        if extra:
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", *extra], check=True)
        return 0
    print(f"usage: {sys.argv[0]} compile|check|sync", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
