"""`netc lint`: design rules from the catalogue's papers, checked statically on the IR.

Consumes a compiled `Network` and its cost analysis; produces `Finding`s, each located at the
spec layer that causes it. The rules are a registry (`RULES`, filled by the rule modules, one
per source); `lint` runs them, drops what the spec's `lint: {ignore: [...]}` keys silence (at the
top level, or on a layer and everything inside it) and returns the rest in source order.
Nothing here imports torch.
"""
from __future__ import annotations

from netc.analysis.lint import defects, inception, resnet, shufflenet, vgg  # noqa: F401  (registration)
from netc.analysis.lint.registry import RULES, SEVERITIES, Context, Finding, Rule
from netc.errors import Collector, did_you_mean, error

_by_id = sorted(RULES.items())  # listed and run in id order, whatever the import order
RULES.clear()
RULES.update(_by_id)

__all__ = ["RULES", "SEVERITIES", "Finding", "Rule", "at_least", "lint"]


def at_least(severity: str, threshold: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


def check_ignores(network) -> None:
    """Every rule id a `lint: {ignore}` names must exist (a typo would silently ignore nothing)."""
    errors = Collector()
    spec = network.spec
    named = [(rule, network.source.key_loc("lint", "ignore") if spec.lint else None)
             for rule in (spec.lint.ignore if spec.lint else ())]
    seen = set()
    for nid, d in network.nodes():
        for rule in d.lint_ignore:
            if rule not in RULES and (rule, d.loc) not in seen:
                seen.add((rule, d.loc))
                named.append((rule, d.loc))
    for rule, loc in named:
        if rule not in RULES:
            errors.add(error("lint", f"'lint: ignore' names no rule '{rule}'", loc,
                             did_you_mean(rule, RULES) or "'netc lint --rules' lists them"))
    errors.raise_if_any()


def lint(network, rules=None, suppress: bool = True) -> tuple[list[Finding], int]:
    """The findings of `rules` (default: all) on `network`, and how many the spec's ignores silenced."""
    check_ignores(network)
    ctx = Context(network)
    spec_ignore = set(network.spec.lint.ignore) if network.spec.lint else set()
    found, silenced = [], 0
    for r in (RULES[i] for i in (rules or RULES)):
        for hit in r.check(ctx):
            d = ctx.node[hit.node]
            if suppress and (r.id in spec_ignore or r.id in d.lint_ignore):
                silenced += 1
                continue
            found.append(Finding(r, network.name, d.scope, d.loc, tuple(d.via), hit.message,
                                 hit.suggestion, dict(hit.saving)))
    order = {nid: i for i, nid in enumerate(network.order)}
    scope_pos = {ctx.node[nid].scope: order[nid] for nid in ctx.order}
    found.sort(key=lambda f: (scope_pos[f.scope], f.rule.id))
    return found, silenced
