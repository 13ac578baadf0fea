"""The test suite's own rules: tests use the package, never the benchmarks; shared helpers come from
``tests/support`` (no ``sys.path`` edits); every test asserts something; the installed package ships no
test scaffolding."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_FILES = sorted((ROOT / "tests").rglob("*.py"))
BENCHMARK_MODULES = {path.stem for path in (ROOT / "benchmarks").glob("*.py")}
#: Calls that check something, besides an ``assert`` statement.
CHECKS = ("raises", "warns", "fail", "assert", "check")


def _imported_modules(tree: ast.AST) -> set[str]:
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def test_no_test_imports_a_benchmark_or_edits_sys_path():
    assert len(TEST_FILES) > 100
    for path in TEST_FILES:
        text = path.read_text()
        top_level = {name.split(".")[0] for name in _imported_modules(ast.parse(text))}
        assert not top_level & (BENCHMARK_MODULES | {"benchmarks"}), f"{path} imports from benchmarks/"
        assert "sys.path" not in text or path.name == Path(__file__).name, f"{path} edits sys.path"


def _checks_something(function: ast.FunctionDef) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name.startswith(CHECKS):
                return True
    return False


def test_every_test_asserts_something():
    silent = [
        f"{path.relative_to(ROOT)}::{node.name}"
        for path in TEST_FILES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and not _checks_something(node)
    ]
    assert silent == []


def test_the_package_ships_no_test_scaffolding():
    package = ROOT / "src" / "gfocal"
    for path in package.rglob("*.py"):
        assert not {"pytest", "mmdet", "mmcv"} & {
            name.split(".")[0] for name in _imported_modules(ast.parse(path.read_text()))
        }, path
