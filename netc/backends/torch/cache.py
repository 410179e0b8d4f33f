"""The on-disk store behind `--compile`: compiled packages under a key, checked before loading.

The folder (`$NETC_CACHE_DIR`, else `$XDG_CACHE_HOME/netc/compiled`, else `~/.cache/netc/compiled`)
is created private (0700); one owned by another user or writable by others is refused, since
loading an AOTInductor package runs its native code. Each entry `<name>-<key>.<ext>` has a sidecar
`<entry>.json` holding the size and SHA-256 netc recorded when it wrote the entry (and the
writer's note: how many shapes were confirmed before it was compiled); an entry is
loaded only when it is a regular file (checked with lstat, opened with O_NOFOLLOW|O_NONBLOCK, so a
symlink or a FIFO is neither followed nor waited on) of that size and digest. Anything else is
removed with a one-line `CacheWarning` and rebuilt. Writes go to `.tmp.<pid>.<random>.<entry>`
first; the temp files of dead processes (a SIGKILL mid-compile) are removed on the next open.
The folder is bounded (`NETC_CACHE_SIZE`, default 2 GiB): after a write, the least recently used
entries (a hit touches the sidecar: atime is unreliable under relatime/noatime) are evicted.

No torch here: `netc cache list|clear` stays fast.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from netc.errors import clip, error, printable

DEFAULT_MAX_BYTES = 2 * 2**30
SIZE_ENV = "NETC_CACHE_SIZE"
ENTRY = re.compile(r"[A-Za-z0-9_.-]{1,64}-[0-9a-f]{32}\.(pt2|onnx)")
TEMP_PREFIX = ".tmp."
MAX_RECORD_BYTES = 4096
LEGACY_TEMP_AGE_S = 3600  # unnamed `tmp*.pt2` of older netc versions: no pid to ask, so age decides
CHUNK = 1 << 20


class CacheWarning(UserWarning):
    """An entry of the compile cache that was not loaded (and is rebuilt)."""


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int
    used: float  # last written or loaded, seconds since the epoch
    recorded: bool  # has a digest netc recorded; an unrecorded entry is never loaded


def cache_dir() -> Path:
    if os.environ.get("NETC_CACHE_DIR"):
        return Path(os.environ["NETC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "netc" / "compiled"


def max_bytes() -> int:
    """The size bound: `$NETC_CACHE_SIZE` (a size like 500MiB or 2GiB; 0 keeps nothing) or 2 GiB."""
    text = os.environ.get(SIZE_ENV)
    if not text:
        return DEFAULT_MAX_BYTES
    from netc.analysis.train import parse_bytes

    try:
        return 0 if text.strip() == "0" else parse_bytes(text)
    except ValueError as exc:
        raise error("usage", f"{SIZE_ENV}: {printable(clip(str(exc), 200))}", None, f"e.g. {SIZE_ENV}=2GiB") from None


def private_dir(folder: Path) -> Path:
    """`folder`, created 0700 if missing; refused if it is not a directory of this user that only
    this user can write."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(folder)
    except OSError as exc:
        raise error("cache", f"cannot use the cache folder '{printable(str(folder))}': {exc.strerror or exc}",
                    None, "set NETC_CACHE_DIR to a folder you can write") from None
    hint = f"chmod 700 '{printable(str(folder))}', or set NETC_CACHE_DIR to a private folder"
    if not stat.S_ISDIR(st.st_mode):
        raise error("cache", f"the cache folder '{printable(str(folder))}' is not a directory", None, hint)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise error("cache", f"the cache folder '{printable(str(folder))}' belongs to another user", None, hint)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise error("cache", f"the cache folder '{printable(str(folder))}' is writable by other users: "
                    "a package planted there would run its code", None, hint)
    return folder


def _open_regular(path: Path) -> int:
    """A read descriptor on `path` if it is a regular file; never follows a link, never blocks."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd


def digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of the regular file `path`."""
    fd = _open_regular(path)
    h, size = hashlib.sha256(), 0
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file"


def _record(path: Path) -> dict | None:
    try:
        fd = _open_regular(Path(f"{path}.json"))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        text = f.read(MAX_RECORD_BYTES + 1)
    try:
        record = json.loads(text) if len(text) <= MAX_RECORD_BYTES else None
    except ValueError:
        return None
    ok = isinstance(record, dict) and isinstance(record.get("size"), int) and isinstance(record.get("sha256"), str)
    return record if ok else None


def problem(path: Path) -> str | None:
    """Why the entry at `path` may not be loaded; None when it is the file netc recorded."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return f"is {_kind(st.st_mode)}, not a regular file"
    record = _record(path)
    if record is None:
        return "has no digest recorded by netc"
    if st.st_size != record["size"]:  # before reading it: a planted file may be huge
        return f"has {st.st_size:,} bytes where netc wrote {record['size']:,} (truncated or replaced)"
    try:
        size, sha = digest(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size != record["size"] or sha != record["sha256"]:
        return "does not match the digest netc recorded"
    return None


def _remove(path: Path) -> None:
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def lookup(folder: Path, filename: str) -> Path | None:
    """The verified entry `folder/filename` (its use recorded for eviction), or None: missing, or
    removed with a warning because it was not what netc wrote."""
    path = folder / filename
    try:
        reason = problem(path)
    except FileNotFoundError:
        _remove(Path(f"{path}.json"))
        return None
    if reason is None:
        os.utime(f"{path}.json")
        return path
    warnings.warn(f"cache entry {printable(str(path))} {reason}; rebuilding it", CacheWarning, stacklevel=3)
    _remove(path)
    _remove(Path(f"{path}.json"))
    return None


def _temp(folder: Path, filename: str) -> Path:
    return folder / f"{TEMP_PREFIX}{os.getpid()}.{os.urandom(4).hex()}.{filename}"


def _write_record(path: Path, size: int, sha: str, note: dict) -> None:
    from netc.fsutil import write_atomic

    write_atomic(f"{path}.json", json.dumps({"size": size, "sha256": sha, "written": time.time(), "note": note}))


def note(path: Path) -> dict:
    """What the writer noted with the entry at `path` (`store(note=...)`); {} if nothing."""
    found = (_record(path) or {}).get("note")
    return found if isinstance(found, dict) else {}


def store(folder: Path, filename: str, write, note: dict | None = None) -> Path:
    """`write(tmp)` makes the entry in a temp file; it is moved to `folder/filename` and its size
    and digest recorded, with `note` (a small JSON-able dict). A failure or an interrupt leaves
    no temp file behind."""
    tmp = _temp(folder, filename)
    path = folder / filename
    try:
        write(tmp)
        size, sha = digest(tmp)
        _remove(path)  # a directory planted under the name would make os.replace fail
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    _write_record(path, size, sha, note or {})
    return path


def _dead_temp(name: str) -> bool:
    pid = name[len(TEMP_PREFIX):].split(".", 1)[0]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, another user's
        return False
    return False


def remove_stale_temps(folder: Path) -> int:
    """Remove temp files of processes that died writing (and older netc's unnamed `tmp*.pt2`)."""
    removed = 0
    for item in _scan(folder):
        stale = item.name.startswith(TEMP_PREFIX) and _dead_temp(item.name)
        legacy = (item.name.startswith("tmp") and item.name.endswith(".pt2")
                  and time.time() - item.stat(follow_symlinks=False).st_mtime > LEGACY_TEMP_AGE_S)
        if stale or legacy:
            _remove(Path(item.path))
            removed += 1
    return removed


def _scan(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except FileNotFoundError:
        return []


def entries(folder: Path) -> list[Entry]:
    """The entries in `folder`, most recently used first (regular files named as entries)."""
    found = []
    for item in _scan(folder):
        if not ENTRY.fullmatch(item.name) or not item.is_file(follow_symlinks=False):
            continue
        st = item.stat(follow_symlinks=False)
        try:
            used, recorded = os.lstat(f"{item.path}.json").st_mtime, True
        except FileNotFoundError:
            used, recorded = st.st_mtime, False
        found.append(Entry(Path(item.path), st.st_size, used, recorded))
    return sorted(found, key=lambda e: (-e.used, e.path.name))


def evict(folder: Path, limit: int, keep: Path | None = None) -> list[Entry]:
    """Remove the least recently used entries until the rest fit in `limit` bytes (`keep`, the
    entry just used, stays); returns the removed ones."""
    kept, removed = 0, []
    for entry in entries(folder):
        if entry.path == keep or (not removed and kept + entry.size <= limit):
            kept += entry.size
            continue
        _remove(entry.path)
        _remove(Path(f"{entry.path}.json"))
        removed.append(entry)
    return removed


def clear(folder: Path) -> list[Entry]:
    """Remove every entry, record and stale temp file (nothing else: the folder may be shared)."""
    if not folder.exists():
        return []
    removed = evict(folder, -1)
    for item in _scan(folder):
        orphan = item.name.endswith(".json") and ENTRY.fullmatch(item.name[:-5])
        if orphan:
            _remove(Path(item.path))
    remove_stale_temps(folder)
    return removed
