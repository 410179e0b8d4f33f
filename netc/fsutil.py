"""Atomic file writes: a temp file in the target directory, then os.replace.

Temp files carry the writer's pid, so the next write to the same place removes those of
processes that died before cleaning up (SIGKILL). A path netc cannot write (a directory, a
read-only place, a full disk such as /dev/full, a path under a regular file) is the user's
error, not netc's: `error[io]` naming the path and the reason; an existing file is left as it was.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from netc.errors import clip, error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    path = Path(path)
    try:
        return _write(path, data)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise io_error(path, exc) from None


def io_error(path, exc: OSError | ValueError):
    """error[io] for an OSError (or a path's ValueError) met while writing `path`."""
    reason = getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, FileExistsError) or isinstance(exc, NotADirectoryError):
        reason = "a part of the path is a file, not a directory"
    return error("io", f"cannot write '{clip(str(path), 200)}': {reason}", None,
                 "choose another output path" if not isinstance(exc, IsADirectoryError) else
                 "give a file name, not a directory")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def remove_stale_temps(path: Path) -> None:
    """Remove the temp files a killed netc (SIGKILL, power loss) left beside `path`: they are
    named `.<name>.<pid>.<random>.tmp`, and a dead pid's file is nobody's."""
    prefix = f".{path.name}."
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _write(path: Path, data: str | bytes) -> Path:
    mode = "wb" if isinstance(data, bytes) else "w"
    if path.is_dir():
        raise IsADirectoryError(21, "it is a directory", str(path))
    if path.exists() and not path.is_file():
        # a device or pipe (-o /dev/null, /dev/stdout): os.replace would put a regular file in its place
        with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file should get the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
