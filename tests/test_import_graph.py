"""The package's import graph has no circle: no gfocal module imports, at load time, one that imports it back.

Only imports that run when a module loads count: those inside functions (deferred on purpose, e.g. the CLI's)
and those under ``if TYPE_CHECKING`` do not.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"


def _module_names() -> dict[str, Path]:
    names = {}
    for path in (SOURCE / "gfocal").rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _load_time_imports(statements: list[ast.stmt], package: list[str]) -> set[str]:
    """Modules (and ``module.name`` candidates) that ``statements`` import when they run at load time."""
    found: set[str] = set()
    for node in statements:
        if isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            found |= _load_time_imports(node.body + node.orelse, package)
        elif isinstance(node, ast.Try):
            handlers = [statement for handler in node.handlers for statement in handler.body]
            found |= _load_time_imports(node.body + handlers + node.orelse + node.finalbody, package)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
    return found


def import_graph() -> dict[str, set[str]]:
    """gfocal module -> the gfocal modules it imports at load time."""
    modules = _module_names()
    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        imported = _load_time_imports(ast.parse(path.read_text()).body, package)
        graph[name] = {module for module in imported if module in modules and module != name}
    return graph


def first_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports (its modules, the first repeated at the end), or None (``graphlib`` finds it)."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return error.args[1]
    return None


def test_the_checker_finds_a_circle():
    assert sorted(set(first_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}))) == ["a", "b", "c"]
    assert first_circle({"a": {"b"}, "b": set()}) is None


def test_the_package_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 50 and "gfocal.models.components" in graph["gfocal.models.detector"]
    assert first_circle(graph) is None
