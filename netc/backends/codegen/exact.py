"""Which spec params a generated factory may take: those it honours exactly as `--set` does.

Consumes a compiled `Network`; produces the `Generator` (built) whose factory arguments are
each exact. Fitting explains the values of one compile; a factory argument promises more: any
valid value. So every param the code would expose is checked against other compiles of the
spec: the spec is recompiled with the param changed (a few nearby values, each kept only if
the spec accepts it), code is generated for it, and its *fingerprint* (the source with every
param value hidden) must equal this compile's. Equal fingerprints mean the generated code,
called with the other values, is the code generated for them, which is exact at its own
values (by fitting's construction). A param that fails, or that no other value confirms, is
fixed at its compiled value (a constant in the code, listed in the factory's docstring) and the
check repeats, so a factory argument either changes the model exactly as `--set` does, or is
not an argument. Values far from the compiled one are not tried: a spec whose structure flips
at a threshold (`if: $width > 100`) is confirmed only near its compiled values.
"""
from __future__ import annotations

from netc.backends.codegen.pipeline import Generator
from netc.errors import NetcError

ALTERNATIVES = 2  # other valid values each param is checked at


def exact_generator(network):
    """A built Generator for `network` whose factory arguments are all exact."""
    fixed: set[str] = set()
    cache: dict = {}
    while True:
        gen = Generator(network, fixed).build()
        base = gen.fingerprint()
        wrong = {p for p in gen.exposed if not _honoured(network, p, base, fixed, cache)}
        if not wrong:
            return gen
        fixed |= wrong


def _honoured(network, param: str, base: str, fixed: set[str], cache: dict) -> bool:
    tried = 0
    for value in alternatives(network, param):
        key = (param, repr(value))
        if key not in cache:
            try:
                cache[key] = network.recompile({param: value})
            except NetcError:  # not a valid value of this spec
                cache[key] = None
        other = cache[key]
        if other is None:
            continue
        try:
            if Generator(other, fixed).build().fingerprint() != base:
                return False
        except NetcError:  # the other compile's code cannot be generated: not the same code
            return False
        tried += 1
        if tried == ALTERNATIVES:
            break
    return tried > 0  # no other value compiles (or none was found): nothing confirms it


def alternatives(network, param: str) -> list:
    """Values near a param's compiled value, of its kind (the spec decides which are valid)."""
    v = network.env[param]
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        return [x for x in dict.fromkeys((v + 1, 2 * v, v - 1, v // 2, v + 2, 3 * v)) if x != v and x >= 0]
    if isinstance(v, float):
        return [x for x in dict.fromkeys((v / 2, (v + 1) / 2, 2 * v)) if x != v]
    if isinstance(v, list) and v and all(type(x) is int for x in v):
        return [[x + 1 for x in v], [2 * x for x in v]]
    if isinstance(v, str):
        return [s for s in network.source.strings() if s != v]
    return []
