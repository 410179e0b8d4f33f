"""Reading a weights file: the one reader of every `.pt` netc loads (convert-weights, export
--weights, verify's state_dict source).

A weights file is as untrusted as a spec, and unpickling is where its cost lies, so the archive is
sized from its zip directory before anything is unpickled: a regular file (a FIFO, directory or
device is refused before it is opened), torch.save's zip format with its members stored as
torch.save writes them (so nothing inflates beyond the file), a bounded number of members, a
bounded pickle and a total that fits in memory. Then `weights_only` unpickling (no code runs)
and a check that what came out is a mapping of names to tensors.
"""
from __future__ import annotations

import os
import stat
import struct
import warnings
import zipfile

from netc.errors import Loc, clip, error

MAX_WEIGHTS_BYTES = 16 * 2**30  # a file and its members in all; as Limits.max_param_bytes
MAX_MEMBERS = 100_000  # one per tensor's storage (resnet1202: ~7,000) and a few records
# the pickle that names the tensors: 124-170 bytes a tensor (torchvision's resnet152, densenet201,
# efficientnet_b7), so 2 MiB holds ~13,000; a hostile one costs the pure-Python weights_only
# unpickler seconds and ~80 bytes of objects a byte (benchmarks/bench_weights.py, RESULTS.md)
MAX_PICKLE_BYTES = 2 * 2**20

_HINT = "give a state_dict saved with torch.save(model.state_dict(), path) (netc build --save)"


def read_state_dict(path, max_bytes: int = MAX_WEIGHTS_BYTES) -> dict:
    """The state_dict in `path`, checked as the module docstring says; one under a 'state_dict'
    key (as training checkpoints keep it) is accepted. Every refusal is `error[weights]` at the file."""
    shown = str(path)
    with _open_regular(path, shown, max_bytes) as f:
        _check_archive(f, shown, max_bytes)
        f.seek(0)
        state = _unpickle(f, shown)
    return _names_to_tensors(state, shown)


def file_digest(path, max_bytes: int = MAX_WEIGHTS_BYTES) -> str:
    """SHA-256 of the weights file's bytes (the compile cache's key of a `--weights` build), the
    file opened with the reader's checks; nothing is unpickled."""
    import hashlib

    shown = str(path)
    with _open_regular(path, shown, max_bytes) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _refuse(shown: str, message: str, hint: str | None = _HINT):
    return error("weights", message, Loc(clip(shown, 200)), hint)


def _open_regular(path, shown: str, max_bytes: int):
    """`path` opened for reading after stat says it is a regular file of at most `max_bytes`:
    opening a FIFO blocks, a device may never end (O_NONBLOCK and fstat close the race of a
    swap between the two)."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise _refuse(shown, f"'{clip(shown, 200)}' is {kind}")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _refuse(shown, f"no such weights file: '{clip(shown, 200)}'", None) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise _refuse(shown, f"cannot read '{clip(shown, 200)}': {getattr(exc, 'strerror', None) or exc}",
                      None) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(shown, f"'{clip(shown, 200)}' is not a regular file")
        raise _refuse(shown, f"'{clip(shown, 200)}' is {info.st_size:,} bytes, over the limit of {max_bytes:,}")
    return os.fdopen(fd, "rb")


def _check_archive(f, shown: str, max_bytes: int) -> None:
    """The zip directory's figures against the bounds, before a byte of the pickle is read."""
    not_zip = _refuse(shown, "not a torch.save zip archive (netc reads no other format: the legacy one "
                             "declares its tensors' sizes in the pickle)")
    try:
        # the count the directory's end record declares, before the directory itself is parsed
        end = zipfile._EndRecData(f)  # noqa: SLF001 - the one reader of that record
        count = end[zipfile._ECD_ENTRIES_TOTAL] if end else 0  # noqa: SLF001
        if count > MAX_MEMBERS:
            raise _refuse(shown, f"the archive has {count:,} members, over the limit of {MAX_MEMBERS:,}")
        f.seek(0)
        members = zipfile.ZipFile(f).infolist()
    # a damaged directory: zipfile raises NotImplementedError for an unknown version byte, struct.error
    # for a short record
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, TypeError, NotImplementedError, struct.error):
        raise not_zip from None
    if len(members) > MAX_MEMBERS:  # a directory holding more than its end record says
        raise _refuse(shown, f"the archive has more than {MAX_MEMBERS:,} members")
    total = 0
    for m in members:
        if m.compress_type != zipfile.ZIP_STORED:
            raise _refuse(shown, f"member '{clip(m.filename)}' is compressed; torch.save stores its members as they are")
        total += m.file_size
        if m.filename.endswith("/data.pkl") and m.file_size > MAX_PICKLE_BYTES:
            raise _refuse(shown, f"its pickle is {m.file_size:,} bytes, over the limit of {MAX_PICKLE_BYTES:,}")
    if total > max_bytes:
        raise _refuse(shown, f"its members hold {total:,} bytes, over the limit of {max_bytes:,}")
    _check_fits(total, shown)


def _check_fits(total: int, shown: str) -> None:
    import torch

    from netc.backends.torch.memory import check_bytes

    check_bytes(total, torch.device("cpu"), f"the tensors of '{clip(shown, 200)}'", Loc(clip(shown, 200)),
                "load it on a machine with more memory")


def _unpickle(f, shown: str):
    import torch

    try:
        with warnings.catch_warnings():  # torch's warnings about a hostile pickle's protocol byte: its error says enough
            warnings.simplefilter("ignore")
            return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - not a torch file, or one holding more than tensors
        raise _refuse(shown, f"cannot read weights '{clip(shown, 200)}': {type(exc).__name__}: "
                             f"{clip(str(exc), 300)}") from None


def _names_to_tensors(state, shown: str) -> dict:
    import torch

    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise _refuse(shown, f"it holds a {type(state).__name__}, not a state_dict")
    for key, value in state.items():
        if not isinstance(key, str):
            raise _refuse(shown, f"it is not a state_dict: key {clip(key)} ({type(key).__name__}) is not a name")
        if not isinstance(value, torch.Tensor):
            raise _refuse(shown, f"it is not a state_dict: '{clip(key)}' holds a {type(value).__name__}, "
                                 "not a tensor")
    return state
