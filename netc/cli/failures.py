"""Failures that are neither bad input nor a bug in netc, told apart from both: stdout that cannot
be written (a full disk, `> /dev/full`), a library that cannot be loaded here (torch under an
address-space limit, a broken install), and a model's own .py file that exits while netc runs it."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys

from netc.errors import NetcError, clip, error

# a write to stdout that failed for lack of room or a dead device; EPIPE (`netc … | head`) is
# click's to handle: the reader left, nobody is waiting for an error
_NO_ROOM = {errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT}


def flush_stdout() -> None:
    """Flush stdout now, while a failure can still be reported (at exit it could only be ignored)."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        if exc.errno not in _NO_ROOM:
            raise
        raise _stdout_error(exc) from None


def stdout_failure(exc: OSError) -> NetcError | None:
    """error[io] if `exc` is stdout failing for lack of room (writing it again fails too), else None."""
    if exc.filename is not None or exc.errno not in _NO_ROOM:
        return None
    try:
        sys.stdout.flush()
    except OSError:
        return _stdout_error(exc)
    return _stdout_error(exc) if _stdout_is_full() else None


def _stdout_is_full() -> bool:
    """Whether stdout is /dev/full or a file on a filesystem with no room left (a failed write
    may leave nothing buffered to fail again)."""
    try:
        fd = sys.stdout.fileno()
        info = os.fstat(fd)
        if stat.S_ISCHR(info.st_mode):
            return info.st_rdev == os.makedev(1, 7)  # /dev/full
        return stat.S_ISREG(info.st_mode) and os.fstatvfs(fd).f_bavail == 0
    except (OSError, ValueError, AttributeError):
        return False


def _stdout_error(exc: OSError) -> NetcError:
    # what is still buffered would fail again at exit, with Python's "Exception ignored" report
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout with no file descriptor (a test's capture)
        pass
    return error("io", f"cannot write to stdout: {exc.strerror or exc}", None,
                 "free some space, or write to a file with -o where the command has it")


def environment_failure(exc: BaseException) -> NetcError | None:
    """error[environment] if `exc` is a library failing to load (an ImportError, or an OSError or
    MemoryError raised while a module was being imported), else None."""
    if not isinstance(exc, ImportError) and not (isinstance(exc, (OSError, MemoryError)) and _while_importing(exc)):
        return None
    return error("environment", f"a library netc needs cannot be loaded here: {type(exc).__name__}: "
                                f"{clip(str(exc), 300)}", None,
                 "this is the environment, not netc: check the install (make setup) and the memory "
                 "limits of the process (ulimit -v)")


def nul_in_path(exc: BaseException) -> NetcError | None:
    """error[io] if `exc` is Python refusing a path with a NUL byte (click's Path type and os.stat
    raise ValueError, not OSError, for one), else None."""
    if isinstance(exc, ValueError) and str(exc) in ("embedded null byte", "embedded null character"):
        return error("io", "a path given on the command line holds a NUL byte", None, "check the paths given")
    return None


def _while_importing(exc: BaseException) -> bool:
    """Whether `exc` came from a module's top-level code (Python removes the import machinery's
    own frames from the traceback; the module's frame stays)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "<module>":
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def running_source(source: str):
    """Around running SOURCE's code (`netc import`/`verify` of a .py file: the file, its factory,
    its forward): what it prints goes to stderr, so it cannot mix into what netc writes to stdout,
    and a sys.exit in it is error[import], not netc exiting quietly with its status."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except SystemExit as exc:
        raise error("import", f"{clip(source, 200)} exited (sys.exit({clip(repr(exc.code))})) while netc ran it", None,
                    "put the file's script part under `if __name__ == '__main__':`") from None
