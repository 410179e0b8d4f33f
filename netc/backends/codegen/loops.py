"""Runs of sibling modules that differ only by their index, written as one comprehension.

Children of an `nn.Sequential` that are built by the same call and whose values are equal or grow
by a fixed step from one child to the next (DenseNet's layers: 64, 96, 128, … input channels)
are written once, as torchvision writes them in a loop:
`*[(f"denselayer{i + 1}", DenseLayer(num_init_features + i * growth_rate, …)) for i in range(6)]`.
Named children must be numbered consecutively (`denselayer1`, `denselayer2`, …); positional ones are.
A run's step becomes a hole of its own, so the class fitting writes it in the spec's names where
one has its value (`growth_rate`), and the exactness check (`exact.py`) holds it to every value.
"""
from __future__ import annotations

import re

from netc.backends.codegen.fitting import HOLE, IN, Frag, Hole, collect_terms, join_frags, names_in, same

MIN_RUN = 3  # a loop over two children reads worse than the two calls
NUMBERED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*?)?(0|[1-9][0-9]*)")


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Run:
    """Consecutive children compatible with the first: same call text, each hole constant or affine."""

    def __init__(self, name: str, frag: Frag):
        self.names, self.frags = [name], [frag]
        m = NUMBERED.fullmatch(name)
        self.prefix, self.start = (m.group(1) or "", int(m.group(2))) if m else (None, None)
        self.steps: list = [None] * len(frag.holes)

    def accepts(self, name: str, frag: Frag) -> bool:
        first, n = self.frags[0], len(self.frags)
        if self.prefix is None or name != f"{self.prefix}{self.start + n}" or frag.text != first.text:
            return False
        steps = []
        for j, (h0, h) in enumerate(zip(first.holes, frag.holes)):
            if (h.kwarg, h.default) != (h0.kwarg, h0.default):
                return False
            equal = same(h.value, h0.value) and h.cands == h0.cands
            step = self.steps[j]
            if step is None:  # the second child fixes the step
                grows = h.kwarg is None and is_int(h.value) and is_int(h0.value) and h.value != h0.value
                step = 0 if equal else h.value - h0.value if grows else None
                if step is None:
                    return False
            elif not (equal if step == 0 else is_int(h.value) and h.value == h0.value + n * step):
                return False
            steps.append(step)
        self.steps = steps
        self.names.append(name)
        self.frags.append(frag)
        return True

    def varies(self) -> bool:
        return any(self.steps)


def runs(parts: list[tuple[str, Frag]]) -> list[Run]:
    out: list[Run] = []
    for name, frag in parts:
        if not (out and out[-1].accepts(name, frag)):
            out.append(Run(name, frag))
    return out


def loop_frag(run: Run, env: dict, named: bool) -> list[Frag]:
    """The run's children as frags: one comprehension when it is long enough, else one each."""
    n = len(run.frags)
    if n < (MIN_RUN if run.varies() or named else 2):
        return [pair(name, f) if named else f for name, f in zip(run.names, run.frags)]
    first = run.frags[0]
    holes: list[Hole] = []
    texts = []
    for j, h in enumerate(first.holes):
        holes.append(h)
        k = len(holes) - 1
        if run.steps[j]:
            holes.append(Hole(run.steps[j], step_cands(h, run.frags[1].holes[j], env)))
            texts.append(f"\x00{k}\x00 + i * \x00{k + 1}\x00")
        else:
            texts.append(f"\x00{k}\x00")

    def fill(m):  # a sum needs parentheses unless it is a whole argument
        text = texts[int(m.group(1))]
        whole = first.text[m.start() - 1:m.start()] in ("(", " ", "=") and first.text[m.end():m.end() + 1] in (",", ")")
        return text if whole or " + " not in text else f"({text})"

    body = HOLE.sub(fill, first.text)
    var = "i" if run.varies() or named else "_"
    if named:
        index = f"i + {run.start}" if run.start else "i"
        body = f'(f"{run.prefix}{{{index}}}", {body})'
    return [Frag(f"*[{body} for {var} in range({n})]", holes)]


def step_cands(h0: Hole, h1: Hole, env: dict) -> list[str]:
    """Expressions for the step from one child's value to the next: the difference of their own
    expressions first (`init + growth` - `init` = `growth`), then any name holding the step."""
    diffs = [collect_terms(f"{c1} - ({c0})") for c0 in h0.cands[:4] for c1 in h1.cands[:4]]
    names = [v for v in env if v != IN and is_int(env[v]) and env[v] == h1.value - h0.value]
    return list(dict.fromkeys([d for d in diffs if names_in(d)] + names))


def pair(name: str, frag: Frag) -> Frag:
    return Frag(f"({name!r}, {frag.text})", frag.holes)


def children(parts: list[tuple[str, Frag]], env: dict, named: bool) -> Frag:
    """The arguments of an `nn.Sequential` (positional), or the list of (name, module) pairs of
    its `OrderedDict` (named)."""
    items = [f for run in runs(parts) for f in loop_frag(run, env, named)]
    if named and len(items) == 1 and items[0].text.startswith("*["):  # one loop: the list is the comprehension
        return Frag(items[0].text[1:], items[0].holes)
    inner = join_frags(items)
    return Frag(f"[{inner.text}]", inner.holes) if named else inner
