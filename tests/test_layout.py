"""The shape of the code base: the library never reaches into the application, and no
library file or function grows past what a reader takes in at once."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY_FILE_LINES, FUNCTION_LINES = 300, 60


def python_files(*folders):
    return sorted(f for folder in folders for f in (ROOT / folder).rglob("*.py"))


def imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("path", python_files("lowrank_jax"), ids=str)
def test_the_library_never_imports_the_application(path):
    modules = set(imported_modules(ast.parse(path.read_text())))
    assert not {m for m in modules if m.split(".")[0] in ("train", "configs", "tests")}


@pytest.mark.parametrize("path", python_files("lowrank_jax"), ids=str)
def test_library_files_stay_short(path):
    assert len(path.read_text().splitlines()) <= LIBRARY_FILE_LINES


def test_no_function_is_longer_than_a_screen():
    long = [f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in python_files("lowrank_jax", "train", "configs")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > FUNCTION_LINES]
    assert not long
