"""A paper-layout table (`netc.analysis.paper.PaperTable`) as aligned text, markdown, LaTeX or HTML.

A row listed in the table's `spans` has one last cell that spans every column from its start to
the end, as the papers print full-width rows (VGG's input and maxpool, ResNet's max pool under
every depth): `\\multicolumn` in LaTeX, `colspan` in HTML; markdown has no spans, so there the
cell is repeated in each column it covers; text writes it once across them."""
from __future__ import annotations

import html
import re

FORMATS = ("text", "md", "latex", "html")

LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
         "}": r"\}", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}", "×": r"$\times$", "→": r"$\to$"}


def _latex_escape(text: str) -> str:
    if m := re.fullmatch(r"(\d+\.\d)×10\^(\d+)", text):
        return f"${m[1]} \\times 10^{{{m[2]}}}$"
    return "".join(LATEX.get(c, c) for c in text)  # one pass: a replacement is never escaped again


def _cells(t, i: int, row: list[str]) -> list[tuple[str, int]]:
    """(text, columns it covers) of each cell of row `i`."""
    n = len(t.header)
    if i not in t.spans:
        return [(c, 1) for c in row]
    start = t.spans[i]
    return [(c, 1) for c in row[:start]] + [(row[start], n - start)]


def _md(t) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = [f"**{t.title}**", "", "| " + " | ".join(map(esc, t.header)) + " |", "|" + "---|" * len(t.header)]
    for i, row in enumerate(t.rows):
        lines.append("| " + " | ".join(esc(c) for c, span in _cells(t, i, row) for _ in range(span)) + " |")
    return "\n".join(lines + [""] + [f"{n}  " for n in t.notes]) + "\n"


def _latex(t) -> str:
    lines = [f"% {t.title}", r"\begin{tabular}{" + "l" * len(t.header) + "}", r"\hline",
             " & ".join(map(_latex_escape, t.header)) + r" \\", r"\hline"]
    for i, row in enumerate(t.rows):
        cells = [_latex_escape(c) if span == 1 else rf"\multicolumn{{{span}}}{{c}}{{{_latex_escape(c)}}}"
                 for c, span in _cells(t, i, row)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"] + [f"% {n}" for n in t.notes]
    return "\n".join(lines) + "\n"


def _html(t) -> str:
    e = html.escape
    lines = ["<table>", f"<caption>{e(t.title)}</caption>",
             "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in t.header) + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(t.rows):
        cells = [f"<td>{e(c)}</td>" if span == 1 else f'<td colspan="{span}" style="text-align: center">{e(c)}</td>'
                 for c, span in _cells(t, i, row)]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table>"] + [f"<p>{e(n)}</p>" for n in t.notes]
    return "\n".join(lines) + "\n"


def _text(t) -> str:
    n = len(t.header)
    widths = [len(h) for h in t.header]
    for i, row in enumerate(t.rows):
        for j, (c, span) in enumerate(_cells(t, i, row)):
            if span == 1:
                widths[j] = max(widths[j], len(c))

    def line(i, row):
        out = []
        for j, (c, span) in enumerate(_cells(t, i, row)):
            across = sum(widths[j:j + span]) + 2 * (span - 1)
            out.append(c.center(across) if span > 1 else c.ljust(widths[j]))
        return "  ".join(out).rstrip()

    lines = [t.title, line(-1, t.header), "  ".join("-" * w for w in widths[:n])]
    lines += [line(i, r) for i, r in enumerate(t.rows)]
    return "\n".join(lines + [f"({note})" for note in t.notes]) + "\n"


def render(t, fmt: str = "text") -> str:
    return {"md": _md, "latex": _latex, "html": _html}.get(fmt, _text)(t)
