"""The package's shape, read from its source with `ast` (nothing is imported): no import cycle
between netc modules, the command line reaches the backends only through the API, short simple
functions (ruff's McCabe and statement-count checks)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

from tests.conftest import ROOT

PACKAGE = ROOT / "netc"
# per function: McCabe's cyclomatic complexity and the statement count (ruff's C901 and PLR0915);
# a file may be as long as its one job needs
MAX_COMPLEXITY = 15
MAX_STATEMENTS = 50


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
    assert "netc.backends.torch.module" in imports("netc.api.building")  # inside a function
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


def _over_limits(*paths: Path) -> list[str]:
    """ruff's findings of a function above the limits in `paths`, one line each (path:line:col: code ...)."""
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--output-format",
                          "concise", "--select", "C901,PLR0915",
                          "--config", f"lint.mccabe.max-complexity={MAX_COMPLEXITY}",
                          "--config", f"lint.pylint.max-statements={MAX_STATEMENTS}", *map(str, paths)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr  # 1: findings; anything else: ruff did not run
    return [line for line in run.stdout.splitlines() if ": C901 " in line or ": PLR0915 " in line]


def test_no_function_under_netc_is_above_the_complexity_limits():
    found = _over_limits(PACKAGE)
    assert not found, "split these along their seams:\n" + "\n".join(found)


def test_the_complexity_check_flags_a_function_one_over_each_limit(tmp_path):
    def function(name: str, n: int, body: str) -> str:
        return f"def {name}(x):\n" + "".join(body.format(i=i) for i in range(n)) + "    return x\n"

    branches = "    if x == {i}:\n        x += 1\n"  # each `if` adds one to the complexity, 1 to start
    statements = "    x += {i}\n"  # ruff counts these (and not the closing return)
    (tmp_path / "at.py").write_text(function("branchy", MAX_COMPLEXITY - 1, branches)
                                    + function("long", MAX_STATEMENTS, statements))
    (tmp_path / "over.py").write_text(function("branchy", MAX_COMPLEXITY, branches)
                                      + function("long", MAX_STATEMENTS + 1, statements))
    assert _over_limits(tmp_path / "at.py") == []
    found = _over_limits(tmp_path / "over.py")
    assert [line.split(": ")[1].split()[0] for line in found] == ["C901", "PLR0915"], found


def _class_fields(module: str, cls: str) -> set[str]:
    """The annotated fields and the properties of class `cls` in `module`, read from its source."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    return ({n.target.id for n in body if isinstance(n, ast.AnnAssign)}
            | {n.name for n in body if isinstance(n, ast.FunctionDef)
               and any(ast.unparse(d) == "property" for d in n.decorator_list)})


IR_FIELDS = _class_fields("netc.ir.node", "Node") | _class_fields("netc.ir.graph", "Graph")
# what yields IR nodes: `g.node(n)`, `network.nodes()`, `g.node_items()`, `g.node_table()`, `g.nodes[n]`
NODE_SOURCES = ("node", "nodes", "node_items", "node_table")


def _string_key(node: ast.AST) -> tuple[ast.AST, str] | None:
    """(x, "k") of `x["k"]`, `x.get("k", …)`, `x.pop("k")`, `x.setdefault("k", …)` or `"k" in x`."""
    if isinstance(node, ast.Subscript):
        target, key = node.value, node.slice
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
          and node.func.attr in ("get", "pop", "setdefault")):
        target, key = node.func.value, node.args[0]
    elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
        target, key = node.comparators[0], node.left
    else:
        return None
    return (target, key.value) if isinstance(key, ast.Constant) and isinstance(key.value, str) else None


def _yields_nodes(expr: ast.AST) -> bool:
    """An expression that calls or indexes one of NODE_SOURCES (`g.node(n)`, `net.nodes()`, …)."""
    return any(isinstance(n, ast.Attribute) and n.attr in NODE_SOURCES for n in ast.walk(expr))


def _node_names(tree: ast.AST) -> set[str]:
    """Names bound to IR nodes (or tables of them): `d = g.node(n)`, `for _, d in net.nodes()`,
    `table = g.node_table()`, comprehensions alike."""
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and _yields_nodes(n.value):
            targets = n.targets
        elif isinstance(n, (ast.For, ast.comprehension)) and _yields_nodes(n.iter):
            targets = [n.target]
        else:
            continue
        names |= {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
    return names


def _networkx_attribute_dict(node: ast.AST) -> bool:
    """`g.nodes[n]`, `g.nodes(data=…)`, `g.nodes.data(…)`, `g.graph["k"]`, `g.graph.get(…)`,
    `nx.get_node_attributes(…)`: networkx's attribute dicts, where the IR keeps its typed records."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
        return node.value.attr == "nodes" or (node.value.attr == "graph" and _string_key(node) is not None)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        f = node.func
        return ((f.attr == "nodes" and any(k.arg == "data" for k in node.keywords))
                or (isinstance(f.value, ast.Attribute) and f.value.attr in ("nodes", "graph")
                    and f.attr in ("data", "get", "pop", "setdefault", "update"))
                or f.attr in ("get_node_attributes", "set_node_attributes"))
    return False


def dict_style_ir_access(name: str) -> list[str]:
    """Where module `name` reads or writes the IR as a dict: through networkx's attribute dicts, or
    by a string key naming a field of `Node` or `Graph` on something that holds IR nodes."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    holders = _node_names(tree)
    found = []
    for node in ast.walk(tree):
        keyed = _string_key(node)
        on_ir = keyed is not None and keyed[1] in IR_FIELDS and (
            _yields_nodes(keyed[0]) or any(isinstance(n, ast.Name) and n.id in holders for n in ast.walk(keyed[0])))
        if on_ir or _networkx_attribute_dict(node):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_the_dict_access_reader_sees_every_kind_of_access():
    """Planted in a scratch module: each line is found; a plain mapping with the same keys is not."""
    MODULES["netc.backends.scratch"] = scratch = ROOT / "tests" / "_scratch_layout.py"
    lines = ['for _, d in network.nodes(): d["op"]', 'd = g.node(n); d.get("owned")', '"shape" in g.node(0)',
             't = g.node_table(); t[n]["inputs"]', 'g.nodes[n]', 'g.nodes(data=True)', 'g.graph["blocks"]',
             'g.graph.get("spec")', 'nx.get_node_attributes(g, "op")']
    try:
        scratch.write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert sorted({int(f.split(":")[1]) for f in dict_style_ir_access("netc.backends.scratch")}) == \
            list(range(1, len(lines) + 1))
        scratch.write_text('saving = {"params": 1}\nsaving["params"]\nraw.get("shape")\n', encoding="utf-8")
        assert dict_style_ir_access("netc.backends.scratch") == []  # other mappings may use these keys
    finally:
        del MODULES["netc.backends.scratch"]
        scratch.unlink(missing_ok=True)
    assert {"op", "inputs", "shape", "meta", "outputs", "blocks"} <= IR_FIELDS


def test_the_ir_is_read_by_its_fields_outside_netc_ir():
    """A node's and the graph's fields are attributes (`node.shape`, `g.outputs`), so a misspelt one
    fails where it is written; only `netc.ir` touches how networkx stores them."""
    found = [hit for name in MODULES if not name.startswith("netc.ir") for hit in dict_style_ir_access(name)]
    assert not found, "dict-style access to the IR outside netc/ir:\n" + "\n".join(found)


BACKENDS = ("netc.backends", "netc.analysis")  # torch, codegen, render, onnx; costs, lint, diff, paper


def test_no_backend_imports_the_frontend():
    """The backends and the analysis consume the `Network` and its IR only: what they need of the
    source is on the IR or behind `Network.source`, and a recompile is `Network.recompile`."""
    bad = {name: sorted(m for m in imports(name) if m == "netc.spec" or m.startswith("netc.spec."))
           for name in MODULES if name.startswith(BACKENDS)}
    assert not {k: v for k, v in bad.items() if v}


def raw_yaml_access(name: str) -> list[str]:
    """Where module `name` reaches the YAML a spec was parsed from: `x._raw`, `getattr(x, "_raw")`."""
    path = MODULES[name]
    return [f"{path.relative_to(ROOT)}:{node.lineno}"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
            if (isinstance(node, ast.Attribute) and node.attr == "_raw")
            or (isinstance(node, ast.Constant) and node.value == "_raw")]


def test_only_the_frontend_reads_the_parsed_yaml():
    found = [hit for name in MODULES if not name.startswith("netc.spec") for hit in raw_yaml_access(name)]
    assert not found, f"the spec's parsed YAML (`_raw`) read outside netc/spec: {found}"


def test_the_frontend_checks_see_a_planted_violation():
    MODULES["netc.backends.scratch"] = scratch = ROOT / "tests" / "_scratch_frontend.py"
    try:
        scratch.write_text('from netc.spec.load import parse_spec\nx = spec._raw\ny = getattr(spec, "_raw", None)\n',
                           encoding="utf-8")
        assert imports("netc.backends.scratch") == {"netc.spec.load"}
        assert raw_yaml_access("netc.backends.scratch") == ["tests/_scratch_frontend.py:2", "tests/_scratch_frontend.py:3"]
    finally:
        del MODULES["netc.backends.scratch"]
        scratch.unlink(missing_ok=True)
