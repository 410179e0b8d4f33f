"""The package's shape, read from its source with `ast` (nothing is imported): no import cycle
between netc modules, the command line reaches the backends only through the API, small files."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

from tests.conftest import ROOT

PACKAGE = ROOT / "netc"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The netc modules `name` imports, at module level or inside functions: `from a.b import c`
    is an import of `a.b.c` when that is a module, else of `a.b`. The parent packages that Python
    also initialises are not counted (every module would otherwise depend on `netc/__init__`)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..a import b
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m == "netc" or m.startswith("netc.")}


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(MODULES)
    g.add_edges_from((name, target) for name in MODULES for target in imports(name) if target != name)
    return g


def test_the_import_reader_sees_every_kind_of_import():
    """The checks below are only as good as `imports`: it must see module-level and function-level
    imports, `from package import module` and plain `import`."""
    assert "netc.spec.load" in imports("netc.api")  # module level, from-import
    assert "netc.backends.torch.module" in imports("netc.api")  # inside a function
    assert "netc.backends.codegen" in imports("netc.api")  # from netc.backends import codegen
    assert "netc.backends.codegen.generate" in imports("netc.backends.codegen")
    assert import_graph().number_of_edges() > 50


def test_no_import_cycle_between_netc_modules():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, f"modules that import each other (directly or round a cycle): {cycles}"


def test_the_command_line_imports_no_backend():
    """`netc/cli/` parses arguments and formats what the API returns; the API runs the backends."""
    bad = {name: sorted(m for m in imports(name) if m == "netc.backends" or m.startswith("netc.backends."))
           for name in MODULES if name == "netc.cli" or name.startswith("netc.cli.")}
    assert not {k: v for k, v in bad.items() if v}


# what netc/cli may import of netc: the API (`netc.api` and its `reports` of analyses, choices and
# files), its own modules, and the error types every layer raises and the CLI reports
CLI_MAY_IMPORT = ("netc.api", "netc.cli", "netc.errors")


def cli_reaches_around_the_api(modules=None) -> dict[str, list[str]]:
    """The netc modules each module of netc/cli imports that are not the API, the CLI or the errors."""
    found = {}
    for name in modules or [m for m in MODULES if m == "netc.cli" or m.startswith("netc.cli.")]:
        bad = sorted(m for m in imports(name) if m == "netc" or not any(
            m == allowed or m.startswith(allowed + ".") for allowed in CLI_MAY_IMPORT))
        if bad:
            found[name] = bad
    return found


def test_the_command_line_is_a_thin_face_on_the_api(tmp_path, monkeypatch):
    """`netc/cli/` reaches analyses, spec parsing and files only through `netc.api`: no import of
    `netc.analysis`, `netc.spec`, `netc.ops`, `netc.fsutil` or a backend. The check finds a planted one."""
    assert not cli_reaches_around_the_api()
    planted = PACKAGE / "cli" / "check.py"
    monkeypatch.setitem(MODULES, "netc.cli.planted", tmp_path / "planted.py")
    (tmp_path / "planted.py").write_text(planted.read_text(encoding="utf-8") +
                                         "\n\ndef f():\n    from netc.analysis.formats import human\n")
    assert cli_reaches_around_the_api(["netc.cli.planted"]) == {"netc.cli.planted": ["netc.analysis.formats"]}


def test_no_file_under_netc_is_longer_than_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_LINES}
    assert not long, f"files above {MAX_LINES} lines: {long}"
