"""`make lint` checks the notebooks as committed: a learner's saved outputs and answers do not fail it."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NOTEBOOK = "src/step_1_data_prep.ipynb"


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=directory, check=True,
                   capture_output=True)  # fmt: skip


def lint_notebooks(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "lint-notebooks", f"BIN={BIN}"], cwd=directory,
                          capture_output=True, text=True)  # fmt: skip


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
    assert f"{NOTEBOOK} as staged in git has outputs: run {BIN}/nbstripout {NOTEBOOK}" in result.stdout + result.stderr
