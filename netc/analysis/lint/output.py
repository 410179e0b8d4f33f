"""Lint findings as text (compiler style), JSON and SARIF 2.1.0.

Instances of one template layer are one finding each in the IR but one place in the source: they
are grouped by rule and location, and a group reports how many instances it covers, which, and
the sum of their savings.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from netc.analysis.formats import human
from netc.analysis.lint.registry import RULES, SEVERITIES, Finding, Rule
from netc.errors import MAX_MESSAGE, Loc, clip

FORMATS = ("text", "json", "sarif")
SHOWN_SCOPES = 4
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


@dataclass
class Group:
    """The findings of one rule at one source location."""

    findings: list[Finding]

    @property
    def first(self) -> Finding:
        return self.findings[0]

    @property
    def scopes(self) -> list[str]:
        return [f.scope for f in self.findings]

    @property
    def saving(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for f in self.findings:
            for k, v in f.saving.items():
                total[k] = total.get(k, 0) + v
        return total


def group(findings: list[Finding]) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for f in findings:
        key = (f.spec, f.rule.id, f.loc)
        if key in groups:
            groups[key].findings.append(f)
        else:
            groups[key] = Group([f])
    return list(groups.values())


def _amount(what: str, n: int) -> str:
    sign = "+" if n > 0 else "-"
    return f"{sign}{human(abs(n)) if what == 'MACs' else f'{abs(n):,}'} {what}"


def text(findings: list[Finding]) -> str:
    """`file:line:col: warning[NL301]: message`, then the suggestion and the instances."""
    lines = []
    for g in group(findings):
        f = g.first
        where = f"{f.loc}: " if f.loc else ""
        lines.append(f"{where}{f.severity}[{f.rule.id}]: {clip(f.message, MAX_MESSAGE)} ({f.rule.title}; {f.rule.source})")
        if f.suggestion:
            lines.append(f"  suggestion: {f.suggestion}")
        if len(g.findings) > 1:
            shown = ", ".join(g.scopes[:SHOWN_SCOPES]) + (", …" if len(g.scopes) > SHOWN_SCOPES else "")
            total = ", ".join(_amount(k, v) for k, v in g.saving.items())
            lines.append(f"  note: {len(g.findings)} instances ({shown})" + (f"; in all {total}" if total else ""))
        elif f.loc is None or f.via:
            lines.append(f"  note: in '{f.scope}'")
        for loc in f.via:
            lines.append(f"  note: instantiated from {loc}")
    return "\n".join(lines) + ("\n" if lines else "")


def summary(findings: list[Finding], silenced: int, specs: int) -> str:
    n = len(group(findings))
    by = {s: sum(1 for g in group(findings) if g.first.severity == s) for s in SEVERITIES}
    parts = [f"{by[s]} {s}{'s' if by[s] != 1 else ''}" for s in reversed(SEVERITIES) if by[s]]
    text = f"{n} finding{'s' if n != 1 else ''}" + (f" ({', '.join(parts)})" if parts else "")
    text += f" in {specs} spec{'s' if specs != 1 else ''}"
    return text + (f"; {silenced} silenced by 'lint: ignore'" if silenced else "")


def _loc_dict(loc: Loc | None) -> dict:
    return {"file": loc.file, "line": loc.line, "col": loc.col} if loc else {"file": None, "line": 0, "col": 0}


def to_dict(findings: list[Finding], silenced: int) -> dict:
    return {
        "schema": "netc-lint",
        "version": 1,
        "findings": [{"spec": g.first.spec, "rule": g.first.rule.id, "severity": g.first.severity,
                      "title": g.first.rule.title, "source": g.first.rule.source, **_loc_dict(g.first.loc),
                      "message": g.first.message, "suggestion": g.first.suggestion, "scopes": g.scopes,
                      "saving": g.saving, "via": [_loc_dict(v) for v in g.first.via]}
                     for g in group(findings)],
        "silenced": silenced,
    }


def to_json(findings: list[Finding], silenced: int) -> str:
    return json.dumps(to_dict(findings, silenced), indent=2, ensure_ascii=False) + "\n"


def _uri(file: str) -> str:
    """A relative file stays relative (code scanning resolves it against the repository root)."""
    p = Path(file)
    return p.resolve().as_uri() if p.is_absolute() else quote(os.fsencode(p.as_posix()))  # the name's bytes


def _physical(loc: Loc) -> dict:
    out: dict = {"artifactLocation": {"uri": _uri(loc.file)}}
    if loc.line > 0:
        out["region"] = {"startLine": loc.line, "startColumn": max(loc.col, 1)}
    return {"physicalLocation": out}


def _sarif_rule(r: Rule) -> dict:
    return {"id": r.id, "name": r.title.replace(" ", "-"), "shortDescription": {"text": r.title},
            "fullDescription": {"text": r.doc}, "defaultConfiguration": {"level": r.severity},
            "properties": {"source": r.source}}


def to_sarif(findings: list[Finding], silenced: int) -> str:
    """One SARIF 2.1.0 run; each result on the YAML line of the layer that causes it."""
    index = {rid: i for i, rid in enumerate(RULES)}
    results = []
    for g in group(findings):
        f = g.first
        message = f.message + (f"; suggestion: {f.suggestion}" if f.suggestion else "")
        if len(g.findings) > 1:
            message += f" ({len(g.findings)} instances)"
        result = {"ruleId": f.rule.id, "ruleIndex": index[f.rule.id], "level": f.severity,
                  "message": {"text": clip(message, MAX_MESSAGE)},
                  "locations": [_physical(f.loc)] if f.loc else [],
                  "properties": {"spec": f.spec, "scopes": g.scopes, "saving": g.saving}}
        if f.via:
            result["relatedLocations"] = [{"id": i, **_physical(v), "message": {"text": "instantiated from here"}}
                                          for i, v in enumerate(f.via)]
        results.append(result)
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "netc lint",
                                         "rules": [_sarif_rule(r) for r in RULES.values()]}},
                     "results": results, "properties": {"silenced": silenced}}]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


RENDER = {"json": to_json, "sarif": to_sarif}
