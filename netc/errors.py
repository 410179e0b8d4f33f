"""Diagnostics: every problem netc reports carries a stable code, a source location and a hint.

A `Loc` points at a YAML node (1-based line and column). Compilation collects independent
problems into a list of `Diagnostic`s and raises `NetcError` once, so the user sees all of
them together; the CLI prints them compiler-style and exits with status 2.
"""
from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Loc:
    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Diagnostic:
    code: str
    message: str
    loc: Loc | None = None
    hint: str | None = None
    # where a template or repeat was instantiated, innermost first
    via: tuple[Loc, ...] = field(default_factory=tuple)
    severity: str = "error"  # or "warning": reported, and the work goes on

    def format(self) -> str:
        """The diagnostic as text for a terminal: user text inside it is shown with its control
        characters escaped (see `printable`)."""
        where = f"{printable(str(self.loc))}: " if self.loc else ""
        lines = [f"{where}{self.severity}[{self.code}]: {printable(clip(self.message, MAX_MESSAGE))}"]
        for loc in self.via:
            lines.append(f"  note: instantiated from {printable(str(loc))}")
        if self.hint:
            lines.append(f"  hint: {printable(clip(self.hint, MAX_MESSAGE))}")
        return "\n".join(lines)


# C0 and C1 controls (ESC, CR, BEL, …), the invisible format characters that reorder or hide
# text (bidi overrides and isolates, zero-width characters, line and paragraph separators), and
# lone surrogates: the bytes of a file name that is not UTF-8 (os.fsdecode's surrogateescape),
# which no UTF-8 stream can write
_UNSAFE = "\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff"
_CONTROL = re.compile(f"[\x00-\x1f{_UNSAFE}]")
_CONTROL_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_UNSAFE}]")


def _escape(m: re.Match) -> str:
    c = m.group()
    if "\udc80" <= c <= "\udcff":  # a byte that was not UTF-8, shown as that byte
        return f"\\x{ord(c) - 0xdc00:02x}"
    return c.encode("unicode_escape", "backslashreplace").decode("ascii")


def printable(text: str) -> str:
    """`text` with control characters written as escapes (`\\x1b`, `\\r`, `\\u202e`): text from a
    spec echoed in a message must not retitle or clear a terminal, or overwrite the message.
    A file name's bytes that are not UTF-8 are written `\\xff`."""
    return _CONTROL.sub(_escape, text)


def printable_lines(text: str) -> str:
    """`printable` for text of several lines: everything but the newlines escaped."""
    return _CONTROL_BUT_NEWLINE.sub(_escape, text)


def inert(text: str) -> str:
    """Output data (a report, JSON, SARIF, DOT, source) with every unsafe character but the newline
    written `\\uXXXX`: the same value inside a JSON, YAML or Python string, inert text
    elsewhere, and nothing a terminal or a UTF-8 encoder acts on."""
    return _CONTROL_BUT_NEWLINE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class NetcError(Exception):
    """One or more diagnostics; the only exception netc lets escape for bad input."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]


def error(code: str, message: str, loc: Loc | None = None, hint: str | None = None,
          via: Iterable[Loc] = ()) -> NetcError:
    return NetcError(Diagnostic(code, message, loc, hint, tuple(via)))


MAX_MESSAGE = 2000  # a diagnostic echoes user input; keep what a hostile spec can make us print bounded


def clip(value, n: int = 60) -> str:
    """`value` for a message (repr unless it is a string), cut to n characters."""
    text = value if isinstance(value, str) else int_text(value) if type(value) is int else repr(value)
    return text if len(text) <= n else text[:n] + "…"


# Python refuses to write an int of more than 4,300 digits in decimal (ValueError), and takes
# quadratic time to; 13,000 bits is at most 3,914 digits
MAX_DECIMAL_BITS = 13_000


def int_text(n: int) -> str:
    """An integer that may be huge for a message: decimal up to MAX_DECIMAL_BITS, else its
    magnitude, `~1.23e4012 (2^13329.51)`."""
    if n.bit_length() <= MAX_DECIMAL_BITS:
        return str(n)
    return f"{magnitude(n)} (2^{math.log2(abs(n)):.2f})"


def magnitude(n: int) -> str:
    """`~1.23e4012`: an integer's size in constant time, whatever its number of digits."""
    if n == 0:
        return "0"
    log10 = math.log2(abs(n)) * math.log10(2)
    exp = math.floor(log10)
    mantissa = round(10 ** (log10 - exp), 2)
    if mantissa >= 10:
        mantissa, exp = mantissa / 10, exp + 1
    return f"{'-' if n < 0 else ''}~{mantissa:.2f}e{exp}"


def int_exact(n: int) -> str:
    """`n` exactly as a string for machine-readable output: decimal, or beyond MAX_DECIMAL_BITS
    hexadecimal (`0x…`, linear to write; Python's `int(s, 0)` reads both)."""
    return str(n) if n.bit_length() <= MAX_DECIMAL_BITS else hex(n)


MAX_HINT_CHOICES = 1000  # beyond this many known words a hint is not worth its cost (~1.5 ms per 1000)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest known word, or None when nothing is close.

    Bounded: a spec with 100,000 variables and thousands of errors must not compare each error
    with every variable, so with more than MAX_HINT_CHOICES choices there is no hint."""
    if len(str(word)) > 200:
        return None
    known = set(itertools.islice(choices, MAX_HINT_CHOICES + 1))
    if len(known) > MAX_HINT_CHOICES:
        return None
    close = difflib.get_close_matches(str(word), sorted(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def listing(words: Iterable[str], shown: int = 20) -> str:
    """Some known words for a hint: 'a, b, c' or 'a, b, … (1,234 in all)'; 'none' when empty.
    Bounded like did_you_mean: a hint must not cost a sort of 100,000 names per error."""
    known = list(itertools.islice(words, MAX_HINT_CHOICES + 1))
    if len(known) > MAX_HINT_CHOICES:
        return f"{', '.join(map(str, known[:shown]))}, … (more than {MAX_HINT_CHOICES:,})"
    known = sorted(map(str, known))
    if len(known) > shown:
        return f"{', '.join(known[:shown])}, … ({len(known):,} in all)"
    return ", ".join(known) or "none"


class Collector:
    """Gathers independent diagnostics; `raise_if_any` raises them all at once."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self._seen: set = set()

    def add(self, err: NetcError | Diagnostic) -> None:
        for d in err.diagnostics if isinstance(err, NetcError) else [err]:
            # the same mistake met again (every iteration of a repeat, every use of a template) is one problem
            key = (d.code, d.message, d.loc, d.hint)
            if key not in self._seen:
                self._seen.add(key)
                self.diagnostics.append(d)

    def __bool__(self) -> bool:
        return bool(self.diagnostics)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise NetcError(self.diagnostics)
