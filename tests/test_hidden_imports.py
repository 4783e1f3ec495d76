"""No parameter or variable hides a pm25 name imported at the top of the same file.

A hidden module fails only when the shadowed code runs: `messages` (a module for a while) was also a hypothesis
argument in a fault test, whose `messages.Rejected()` then failed in CI. Ruff has no check for it.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = ["src/pm25", "tests", "benchmarks", "e2e"]


def pm25_imports(tree: ast.Module) -> set[str]:
    """The names a file's top-level imports bind from pm25."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pm25":
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def bound_names(tree: ast.Module):
    """(line, name) of every parameter and every assigned name, anywhere in the file."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
                yield node.lineno, argument.arg
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.lineno, node.id


def test_no_parameter_or_variable_hides_an_imported_pm25_name():
    hidden = []
    for folder in CODE:
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imported = pm25_imports(tree)
            hidden += [
                f"{path.relative_to(REPO)}:{line} {name}" for line, name in bound_names(tree) if name in imported
            ]
    assert not hidden, hidden
