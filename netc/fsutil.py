"""Atomic file writes: a temp file in the target directory, then os.replace.

A path netc cannot write (a directory, a read-only place, a full disk such as /dev/full, a path
under a regular file) is the user's error, not netc's: `error[io]` naming the path and the
reason, and any existing file is left as it was.
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
    except OSError as exc:
        raise io_error(path, exc) from None


def io_error(path, exc: OSError):
    """error[io] for an OSError met while writing `path`."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError) or isinstance(exc, NotADirectoryError):
        reason = "a part of the path is a file, not a directory"
    return error("io", f"cannot write '{clip(str(path), 200)}': {reason}", None,
                 "choose another output path" if not isinstance(exc, IsADirectoryError) else
                 "give a file name, not a directory")


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
