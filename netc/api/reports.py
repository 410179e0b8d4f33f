"""The reports the command line prints that are not a `Network` method, the choices its options
offer, and what it needs to read and write: the whole of what `netc/cli` asks of netc besides
`netc.api` itself. Each analysis is imported when its report is asked for, so a command pays
for none but its own (`netc check` stays fast, and none of this imports torch)."""
from __future__ import annotations

from netc.analysis.formats import human
from netc.fsutil import io_error, write_atomic
from netc.ops import fmt_shape
from netc.spec.expand import Limits
from netc.spec.load import parse_overrides

__all__ = ["Limits", "fmt_shape", "human", "io_error", "parse_overrides", "write_atomic"]


def table_formats() -> list[str]:
    from netc.analysis.formats import FORMATS

    return [*FORMATS]


def paper_layouts() -> list[str]:
    from netc.analysis.paper import LAYOUTS

    return [*LAYOUTS]


def dtypes() -> list[str]:
    from netc.analysis.cost import DTYPE_BYTES

    return [*DTYPE_BYTES]


def print_table(network, depth: int | None, dtype: str) -> None:
    """The cost table, styled for a terminal (rich)."""
    from rich.console import Console

    from netc.analysis.cost import analyse
    from netc.analysis.formats import print_styled
    from netc.analysis.table import build

    print_styled(build(analyse(network, dtype), depth), Console())


def paper_text(networks: list, layout: str, fmt: str) -> str:
    """The architecture table of `networks` in a paper's layout (text, md, latex or html)."""
    from netc.analysis.paper import paper_table, render

    return render(paper_table(networks, layout), fmt)


def paths_text(network, between: tuple[int, int] | None, fmt: str) -> str:
    """Input-output paths and their lengths (Veit et al. 2016), as text or JSON."""
    import json

    from netc.analysis.paths import as_json, count_paths, report

    result = count_paths(network)
    return json.dumps(as_json(result), indent=1) + "\n" if fmt == "json" else report(result, between)


def train_text(network, fmt: str, batch: int, optimizer: str, amp: bool, device: str, isa: str | None,
               budget: str | None) -> str:
    """Text or JSON of one training step's predicted cost at `batch`, or at the largest batch
    that fits `budget` (a size like 24GiB) when given."""
    import json

    from netc.analysis.train import as_dict, describe, parse_bytes
    from netc.errors import error

    if fmt not in ("text", "json"):
        raise error("usage", f"--train prints text or json, not {fmt}", None, "use --format text or --format json")
    limit = None
    if budget is not None:
        try:
            limit = parse_bytes(budget)
        except ValueError as e:
            raise error("usage", f"--budget: {e}", None, "e.g. --budget 24GiB") from None
        cost = network.max_batch(limit, optimizer, amp, device, isa)
        if cost is None:
            one = network.train_cost(1, optimizer, amp, device, isa)
            raise error("limit", f"{network.name} does not fit in {budget} even at batch 1 "
                        f"(predicted peak {one.peak / 2**20:,.1f} MiB)", None,
                        "use --amp, a smaller width or input (--set, --input), or a larger budget")
    else:
        cost = network.train_cost(batch, optimizer, amp, device, isa)
    if fmt == "json":
        return json.dumps({**as_dict(cost), "budget": limit}, indent=2) + "\n"
    return describe(cost, limit)


def lint_severities() -> list[str]:
    from netc.analysis.lint import SEVERITIES

    return [*SEVERITIES]


def lint_formats() -> list[str]:
    from netc.analysis.lint.output import FORMATS

    return [*FORMATS]


def lint_rules_text() -> str:
    from netc.analysis.lint import RULES

    width = max(len(r.title) for r in RULES.values())
    return "".join(f"{r.id}  {r.severity:<7}  {r.title:<{width}}  {r.source}\n" for r in RULES.values())


def lint_calibration() -> str:
    """Every rule and what it finds in the catalogue (docs/lint.md)."""
    from netc.analysis.lint.calibration import document

    return document()


def lint_report(networks, severity: str, fmt: str) -> tuple[str, str, bool]:
    """(the findings of `networks` at `severity` and above in `fmt`, the one-line summary, whether
    there are any)."""
    from netc.analysis.lint import at_least, lint
    from netc.analysis.lint import output as out

    findings, silenced, n = [], 0, 0
    for network in networks:
        found, muted = lint(network)
        findings += [f for f in found if at_least(f.severity, severity)]
        silenced, n = silenced + muted, n + 1
    text = out.text(findings) if fmt == "text" else out.RENDER[fmt](findings, silenced)
    return text, out.summary(findings, silenced, n), bool(findings)


def bundled_spec_names() -> list[str]:
    """The bundled specs' paths as locations show them: relative to the current directory when below it."""
    import os

    from netc.catalogue import spec_files

    return [rel if not (rel := os.path.relpath(p)).startswith("..") else str(p) for p in spec_files()]


def diff_formats() -> list[str]:
    from netc.analysis.diff_formats import FORMATS

    return [*FORMATS]


def diff_text(a, b, depth: int | None, fmt: str) -> str:
    """`a` against `b` block by block, in `fmt`."""
    from netc.analysis.diff import diff
    from netc.analysis.diff_formats import RENDER

    return RENDER[fmt](diff(a, b, depth))


def catalogue_formats() -> list[str]:
    from netc.catalogue import FORMATS

    return [*FORMATS]


def catalogue_text(fmt: str) -> str:
    from netc import catalogue

    return catalogue.render(catalogue.entries(), fmt)


def catalogue_update(path: str) -> tuple[int, bool]:
    """Rewrite the catalogue block of the file at `path`; (specs listed, whether it changed)."""
    from pathlib import Path

    from netc import catalogue

    items = catalogue.entries()
    text = Path(path).read_text(encoding="utf-8")
    new = catalogue.update_block(text, catalogue.to_markdown(items), path)
    if new != text:
        write_atomic(path, new)
    return len(items), new != text


def schema_text() -> str:
    import json

    from netc.schema import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def onnx_opsets() -> range:
    """The ONNX opsets `export --opset` can write (from the installed exporter)."""
    from netc.backends.onnx.export import supported_opsets

    return supported_opsets()


def parse_size(text: str) -> int:
    """'24GiB', '500 MB', '1048576' -> bytes; ValueError otherwise (also beyond 2^63 - 1)."""
    from netc.analysis.train import parse_bytes

    try:
        n = parse_bytes(text)
    except OverflowError:  # more digits than a float holds: inf
        n = 2**63
    if n > 2**63 - 1:
        raise ValueError(f"the size '{text[:40]}' is beyond any machine's memory (2^63 bytes)")
    return n


def convert_weights(source, target, path) -> tuple[bytes, int]:
    """The weights file `path` of the network `source` converted into a state_dict of `target`:
    (its torch.save bytes, how many tensors it holds). The file is read by the one weights reader."""
    import io

    import torch

    from netc.backends.torch.weights import read_state_dict

    converted = target.weights_from(source, read_state_dict(path))
    buf = io.BytesIO()
    torch.save(converted, buf)
    return buf.getvalue(), len(converted)


def parse_kwargs(pairs) -> dict:
    """`netc import`'s KEY=VALUE arguments as the keyword arguments of the model's constructor."""
    from netc.interop.source import parse_kwargs as parse

    return parse(pairs)
