"""`make lint` checks the notebooks as committed: a learner's saved outputs and answers do not fail it."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.notebooks import cell_by_id, check_cell_id, task_cells

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NOTEBOOK = "src/step_1_data_prep.ipynb"


def git(directory: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
        cwd=directory,
        check=True,
        capture_output=True,
    )


def lint_notebooks(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "lint-notebooks", f"BIN={BIN}"], cwd=directory, capture_output=True, text=True
    )


@pytest.fixture
def checkout(tmp_path):
    """A git checkout holding the Makefile, the tool settings and step 1, as committed."""
    for name in ("Makefile", "pyproject.toml", NOTEBOOK):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "--quiet", "-m", "as committed")
    return tmp_path


def run_as_a_learner(path: Path, answer: bool = True) -> None:
    """What JupyterLab saves after a learner ran the cells (and answered Task 1): outputs (and answers)."""
    notebook = nbformat.read(path, as_version=4)
    for count, cell in enumerate(cell for cell in notebook.cells if cell.cell_type == "code"):
        cell.execution_count = count + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="✅ Right\n")]
        if answer and "task:city_centre" in cell.metadata.get("tags", []):
            cell.source = "import math\nberlin_lat, berlin_lon = 52.52, 13.405"  # an unused import, as learners do
    nbformat.write(notebook, path)


def test_a_learners_saved_notebook_does_not_fail_lint(checkout):
    run_as_a_learner(checkout / NOTEBOOK)
    result = lint_notebooks(checkout)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_notebook_staged_with_outputs_fails_lint_and_says_how_to_fix_it(checkout):
    run_as_a_learner(checkout / NOTEBOOK, answer=False)
    git(checkout, "add", NOTEBOOK)
    result = lint_notebooks(checkout)
    assert result.returncode != 0
    advice = f"{NOTEBOOK} as staged in git has outputs: run {BIN}/nbstripout --keep-id {NOTEBOOK}"
    assert advice in result.stdout + result.stderr


# src/ on the import path by hand (PYTHONPATH, sys.path, pytest's pythonpath, a `cd src` before `python -m`):
# the package is installed in editable mode instead (pyproject.toml), everywhere.
SRC_BY_HAND = re.compile(r"(PYTHONPATH|sys\.path|pythonpath)\W.*\bsrc\b|\bcd \S*src\b")
# The checks whose broken variants set PYTHONPATH on purpose, and this file.
CHECKS_OF_IT = {"tests/test_lint.py", "tests/test_docker_stack.py"}


def src_by_hand(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if SRC_BY_HAND.search(line)]


def test_nothing_puts_src_on_the_import_path_by_hand():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    found = {
        name: lines
        for name in tracked.splitlines()
        if name not in CHECKS_OF_IT
        and (REPO / name).is_file()
        and (lines := src_by_hand((REPO / name).read_text(encoding="utf-8", errors="ignore")))
    }
    assert found == {}


@pytest.mark.parametrize(
    "line",
    [
        'pythonpath = ["src", "."]',
        "ENV PYTHONPATH=/home/${NB_USER}/work/src",
        "\tcd src && ../$(BIN)/python -m pm25.classroom.lab",
        'sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))',
        '(cd "$src" && exec python -m pm25.brokers.embedded)',
    ],
)
def test_the_path_check_reports_what_the_repository_did_before_the_editable_install(line):
    assert src_by_hand(line) == [line.strip()]


# -- cell ids: tests find cells by id (tests.notebooks.cell_index), so ids name what a cell does -----------------

NOTEBOOKS = [*sorted((REPO / "src").glob("*.ipynb")), REPO / "tests" / "tasks_demo.ipynb"]


def id_problems(notebook: nbformat.NotebookNode) -> list[str]:
    ids = [cell.get("id", "") for cell in notebook.cells]
    problems = [
        f"cell {number}: id {cell_id!r} says nothing"
        for number, cell_id in enumerate(ids)
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cell_id) or cell_id.isdigit()
    ]
    problems += [f"id {cell_id!r} is not unique" for cell_id in sorted(set(ids)) if ids.count(cell_id) > 1]
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_cell_id_is_descriptive_and_unique_in_its_notebook(path):
    assert id_problems(nbformat.read(path, as_version=4)) == []


@pytest.mark.parametrize("ids", [["imports", "3"], ["imports", "imports"], ["send loop"], ["Send-Loop"]])
def test_the_id_check_reports_numbered_repeated_or_unlike_ids(ids):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass") for _ in ids])
    for cell, cell_id in zip(notebook.cells, ids, strict=True):
        cell.id = cell_id
    assert id_problems(notebook)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_task_has_a_check_cell_named_after_it(path):
    notebook = nbformat.read(path, as_version=4)
    for task in task_cells(notebook):
        assert "tasks.check(" in cell_by_id(notebook, check_cell_id(task)).source, f"{path.name}: task {task!r}"
