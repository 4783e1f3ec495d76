"""The package map of pm25's docstring holds: each module imports only from its own layer or the layers below."""

from __future__ import annotations

import ast
from pathlib import Path

import pm25

PACKAGE = Path(pm25.__file__).parent
# From the bottom up; "pm25" is the package's own top-level modules (config, errors, files, polling, ...).
LAYERS = ["pm25", "pm25.data", "pm25.rules", "pm25.streaming", "pm25.views", "pm25.learning"]
RUNNERS = ["pm25.brokers", "pm25.classroom"]  # for running the tutorial: they may import any layer, in this order


def layer_of(module: str) -> str:
    """pm25.data.contract -> pm25.data; pm25.config -> pm25."""
    subpackage = ".".join(module.split(".")[:2])
    return subpackage if subpackage in LAYERS + RUNNERS else "pm25"


def imports(path: Path) -> set[str]:
    """Every pm25 module this file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pm25":
            found |= {
                f"{node.module}.{alias.name}" if node.module in LAYERS + RUNNERS else node.module
                for alias in node.names
            }
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "pm25"}
    return found


def modules() -> dict[str, Path]:
    """pm25.data.contract -> its file, for every module of the package."""
    return {
        ".".join(("pm25", *path.relative_to(PACKAGE).with_suffix("").parts)): path for path in PACKAGE.rglob("*.py")
    }


def rank(layer: str) -> int:
    return (LAYERS + RUNNERS).index(layer)


def test_every_subpackage_is_on_the_map():
    subpackages = {f"pm25.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS[1:] + RUNNERS)
    for subpackage in subpackages:
        assert f"`{subpackage.split('.')[1]}`" in pm25.__doc__, f"{subpackage} is not in the map of pm25's docstring"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for module, path in modules().items():
        mine = layer_of(module.removesuffix(".__init__"))
        for imported in imports(path):
            theirs = layer_of(imported)
            if rank(theirs) > rank(mine):
                upward.append(f"{module} ({mine}) imports {imported} ({theirs})")
    assert upward == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    upward = tmp_path / "detector.py"
    upward.write_text("from pm25.views import maps\n\ndef f():\n    from pm25.learning.tasks import check\n")
    assert {layer_of(name) for name in imports(upward)} == {"pm25.views", "pm25.learning"}
    assert all(rank(layer_of(name)) > rank("pm25.rules") for name in imports(upward))
