"""The pytest plugin's package layout: one job per module, no import cycles, hooks where pytest
looks for them.

The plugin is the package ``aiocop.pytest_plugin``. pytest reads hooks and fixtures only from
the module the ``pytest11`` entry point names (the package's ``__init__``), so a hook defined in
a submodule and not imported there would silently never run. The graph is read from the source
with ``ast`` (every import, also those inside functions and ``TYPE_CHECKING`` blocks), so a
cycle fails here even when the import order happens to work.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

PACKAGE = "aiocop.pytest_plugin"
INIT = "__init__"


def _package_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations, f"{PACKAGE} is not a package"
    return Path(next(iter(spec.submodule_search_locations)))


def _modules() -> dict[str, ast.Module]:
    """The package's modules by name (``__init__`` for the package itself), parsed."""
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(_package_dir().glob("*.py"))
    }


def _targets(module: str, node: ast.AST, names: set[str]) -> set[str]:
    """The modules of the package that an import statement in ``module`` imports."""
    out: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE:
                out.add(INIT)
            elif alias.name.startswith(PACKAGE + "."):
                out.add(alias.name[len(PACKAGE) + 1 :].split(".")[0])
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: from the package itself (level 1, this package is flat)
            assert node.level == 1, f"{module}: import beyond the package"
            base = node.module or ""
        elif node.module == PACKAGE:
            base = ""
        elif node.module and node.module.startswith(PACKAGE + "."):
            base = node.module[len(PACKAGE) + 1 :]
        else:
            return out
        if base:
            out.add(base.split(".")[0])
        else:  # `from aiocop.pytest_plugin import x`: a submodule, else a name of __init__
            for alias in node.names:
                out.add(alias.name if alias.name in names else INIT)
    return out


def import_graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (self-imports left out)."""
    names = set(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            graph[name] |= _targets(name, node, names) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_graph_reads_every_import_form() -> None:
    source = (
        "import aiocop.pytest_plugin._a\n"
        "from aiocop.pytest_plugin._b import x\n"
        "from aiocop.pytest_plugin import _c, format_report\n"
        "from . import _d\n"
        "from ._e import y\n"
        "def f():\n"
        "    from aiocop.pytest_plugin._f import z\n"
        "import aiocop\n"
        "from aiocop._rules import make_rule\n"
    )
    modules = {n: ast.parse("") for n in (INIT, "_a", "_b", "_c", "_d", "_e", "_f")}
    modules["_m"] = ast.parse(source)
    assert import_graph(modules)["_m"] == {INIT, "_a", "_b", "_c", "_d", "_e", "_f"}


def test_no_import_cycles() -> None:
    modules = _modules()
    assert len(modules) > 1, f"{PACKAGE} is not split into modules"
    graph = import_graph(modules)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _is_fixture(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any("fixture" in ast.unparse(d) for d in decorators)


def test_hooks_and_fixtures_live_in_init() -> None:
    """pytest loads hooks and fixtures from ``aiocop.pytest_plugin`` only."""
    for name, tree in _modules().items():
        defs = [
            node
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
        if name == INIT:
            # __init__ holds the hooks and the fixture only (the rest is imported).
            strays = [n.name for n in defs if not (n.name.startswith("pytest_") or _is_fixture(n))]
            assert strays == [], f"{PACKAGE}: not a hook or fixture: {strays}"
        else:
            misplaced = [n.name for n in defs if n.name.startswith("pytest_") or _is_fixture(n)]
            assert misplaced == [], (
                f"{PACKAGE}.{name}: hooks/fixtures pytest does not see: {misplaced}"
            )


def test_every_module_is_installed() -> None:
    """The installed package has its modules (maturin ships the subpackage), each importable."""
    for name in _modules():
        if name != INIT:
            importlib.import_module(f"{PACKAGE}.{name}")


def test_public_names() -> None:
    plugin = importlib.import_module(PACKAGE)
    assert sorted(plugin.__all__) == ["AiocopStrict", "SettingsError", "Violation", "format_report"]
    for name in plugin.__all__:
        assert getattr(plugin, name) is not None
    hooks = {n for n in dir(plugin) if n.startswith("pytest_")}
    assert hooks == {
        "pytest_addoption",
        "pytest_configure",
        "pytest_collection_modifyitems",
        "pytest_deselected",
        "pytest_load_initial_conftests",
        "pytest_runtest_call",
        "pytest_sessionfinish",
        "pytest_terminal_summary",
    }
    assert callable(plugin.aiocop_strict)
