"""Structure-aware fuzz of what netc reads besides specs (issue 31): weight files (random nesting, key
and value types, zip members added, dropped, compressed, cut or flipped) and every command's option
values (random strings and numbers for each option of each subcommand).

The reader returns exactly the state_dict that was saved, or refuses with error[weights] (error[limit]
where it would not fit); a command exits 0, 1 or 2 within a bounded time, never 70, never a
traceback. Runs with test_fuzz's profile: `HYPOTHESIS_PROFILE=long` for a long run.
"""
from __future__ import annotations

import importlib
import io
import time
import zipfile

import click
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netc.backends.torch.weights import read_state_dict
from netc.errors import NetcError
from tests.test_fuzz import PROFILE

# --- weight files -----------------------------------------------------------------------------

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool, torch.complex64]
TENSORS = st.builds(lambda dtype, shape: torch.zeros(shape).to(dtype),
                    st.sampled_from(DTYPES), st.lists(st.integers(0, 3), max_size=3))
KEYS = st.one_of(st.text(max_size=6), st.integers(), st.tuples(st.integers(), st.text(max_size=2)), st.none(),
                 st.booleans(), st.floats(allow_nan=False))
LEAVES = st.one_of(TENSORS, st.integers(), st.floats(), st.text(max_size=4), st.none(), st.binary(max_size=4))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(KEYS, inner, max_size=3),
                                                      st.tuples(inner, inner)), max_leaves=8)
STATE_DICTS = st.dictionaries(st.text(max_size=8), TENSORS, max_size=4)
OBJECTS = st.one_of(
    STATE_DICTS,  # the well-formed case, often
    st.dictionaries(KEYS, VALUES, max_size=4),
    st.builds(lambda s, extra: {"state_dict": s, **extra}, st.one_of(STATE_DICTS, VALUES),
              st.dictionaries(st.text(max_size=4), VALUES, max_size=2)),
    st.builds(lambda s: {"model": s}, STATE_DICTS),
    VALUES)
MUTATIONS = st.one_of(
    st.just(("none",)),
    st.tuples(st.just("drop"), st.integers(0, 20)),
    st.tuples(st.just("add"), st.text(min_size=1, max_size=12), st.binary(max_size=64), st.booleans()),
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("pickle"), st.binary(max_size=200)))


def _expected(obj):
    """The state_dict the reader must return for `obj` unchanged, or None where it must refuse."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return obj
    return None


def _loads(data: bytes) -> bool:
    """Whether torch's own weights_only load takes the file (bytes, sets, … in a wrapper it does not)."""
    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # noqa: BLE001 - whatever torch refuses with
        return False
    return True


def _mutated(data: bytes, mutation) -> bytes:
    kind = mutation[0]
    if kind in ("cut", "flip"):
        at = int(mutation[1] * (len(data) - 1))
        return data[:at] if kind == "cut" else data[:at] + bytes([data[at] ^ mutation[2]]) + data[at + 1:]
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    members = src.infolist()
    with zipfile.ZipFile(out, "w") as z:
        for i, m in enumerate(members):
            if kind == "drop" and i == mutation[1] % len(members):
                continue
            payload = mutation[1] if kind == "pickle" and m.filename.endswith("/data.pkl") else src.read(m)
            z.writestr(m.filename, payload)
        if kind == "add":
            z.writestr(f"archive/{mutation[1]}", mutation[2],
                       zipfile.ZIP_DEFLATED if mutation[3] else zipfile.ZIP_STORED)
    return out.getvalue()


@PROFILE
@given(obj=OBJECTS, mutation=MUTATIONS)
def test_weight_files(obj, mutation, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "w.pt"
    buf = io.BytesIO()
    torch.save(obj, buf)
    path.write_bytes(_mutated(buf.getvalue(), mutation))
    want = _expected(obj) if mutation == ("none",) and _loads(buf.getvalue()) else None
    try:
        got = read_state_dict(path)
    except NetcError as exc:
        assert want is None, exc
        assert exc.diagnostics[0].code in ("weights", "limit") and str(path) in exc.diagnostics[0].format()
        return
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in got.items())
    if want is not None:
        assert list(got) == list(want)
        assert all(v.dtype == want[k].dtype and torch.equal(v, want[k]) for k, v in got.items())


# --- every command's option values ---------------------------------------------------------------

TINY = "netc: 1\nname: tiny\ninput: [3, 8, 8]\nlayers:\n  - {name: c, conv: {out: 4, k: 3}}\n  - gap\n  - flatten\n"
MODEL = ("import torch\nclass Net(torch.nn.Sequential):\n    def __init__(self, c=4):\n"
         "        super().__init__(torch.nn.Conv2d(3, c, 3))\n")
HUGE = "9" * 400
OPTION_VALUES = st.one_of(
    st.sampled_from(["", " ", "0", "-1", "1", "2", "1e20", "1e400", "nan", "inf", "-inf", "0x10", "1_000", HUGE,
                     "-" + HUGE, str(2**63), str(2**31), "3x8x8", "0x0", "3x8", "24GiB", "1.5", "-3GiB", "cuda",
                     "cuda:99", "cpu", "meta", "auto", "a=b", "=", "c=1e400", "\x1b[2J", "a\rb", "\u202e", "é",
                     "/", "/dev/full", "/dev/zero", "-", "..", "x" * 300, "w.pt", "tiny.yaml"]),
    st.integers(-3, 64).map(str),
    st.text(max_size=8))
SETTINGS = settings(PROFILE, max_examples=max(12, PROFILE.max_examples // 12))  # ci: 12 per command


def _command(name: str) -> click.Command:
    from netc.cli import COMMANDS

    module, attr, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), attr)


def _positional(name: str) -> list[str]:
    return {"diff": ["tiny.yaml", "tiny.yaml"], "convert-weights": ["tiny.yaml", "tiny.yaml"],
            "import": ["model.py:Net"], "verify": ["tiny.yaml", "w.pt"], "schema": [], "list": []}.get(name, ["tiny.yaml"])


def _options(name: str) -> list[click.Option]:
    return [p for p in _command(name).params if isinstance(p, click.Option) and "--help" not in p.opts]


def _command_names() -> list[str]:
    """Every subcommand with options to draw (`cache list|clear` take none: nothing to fuzz)."""
    from netc.cli import COMMANDS

    return sorted(name for name in COMMANDS if _options(name))


@pytest.mark.parametrize("name", _command_names())
def test_every_option_of_every_command(name, tmp_path_factory, monkeypatch):
    """Random values for random options of `name` (required ones given a plausible value when not drawn)."""
    from click.testing import CliRunner

    from netc.cli import main

    options = _options(name)
    root = tmp_path_factory.mktemp(name.replace("-", "_"))
    (root / "tiny.yaml").write_text(TINY)
    (root / "model.py").write_text(MODEL)
    monkeypatch.chdir(root)
    import netc

    torch.save(netc.load(root / "tiny.yaml").build().state_dict(), root / "w.pt")
    threads = torch.get_num_threads()

    @SETTINGS
    @given(st.lists(st.tuples(st.sampled_from(options), OPTION_VALUES), min_size=1, max_size=3))
    def run(drawn):
        args = [*_positional(name)]
        for option, value in drawn:
            args += [option.opts[-1]] if option.is_flag else [option.opts[-1], value]
        for option in options:
            if option.required and option not in {o for o, _ in drawn}:
                args += [option.opts[-1], "w.pt" if "weights" in option.name else "out.pt"]
        start = time.monotonic()
        result = CliRunner().invoke(main, [name, *args])
        torch.set_num_threads(threads)
        assert time.monotonic() - start < 120, args
        assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output[-2000:], result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert "Traceback" not in result.output and "internal error" not in result.output, (args, result.output[-2000:])

    run()
