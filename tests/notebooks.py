"""Run the tutorial's notebooks from tests, as a learner's kernel would run them."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import PythonExporter

from pm25.data.dataset import READINGS_FILE
from pm25.data.readings import recording_readings
from pm25.files import write_csv
from pm25.learning.tasks import TAG_PREFIX, solution

SRC = Path(__file__).resolve().parents[1] / "src"

# The tests that use conftest's `offline_chain` (node ids start so): on one worker, it runs once.
OFFLINE_CHAIN_TESTS = ("tests/test_expected_results.py::test_offline_", "tests/test_step4_notebook.py::")


def worker_group(nodeid: str) -> str | None:
    """The group of tests that `make test` (pytest-xdist, see conftest.py) runs on one worker, in order.

    The notebooks as committed (nbmake) share the session's data folder and default topics, in a learner's
    order: step 1 writes the readings that step 2 sends and steps 3 and 3b read.
    """
    path = nodeid.split("::")[0]
    if path.startswith("src/") and path.endswith(".ipynb"):
        return "committed-notebooks"
    if nodeid.startswith(OFFLINE_CHAIN_TESTS):
        return "offline-chain"
    return None


@functools.cache
def _recording_of_the_first_boxes(boxes: int):
    recording = recording_readings()
    return recording[recording["boxId"].isin(recording["boxId"].unique()[:boxes])]


def small_readings(data_dir: Path, boxes: int = 3) -> Path:
    """Step 1's readings file in `data_dir`: the bundled recording's own rows, of its first `boxes` boxes.

    A data folder without one falls back to the whole recording, on which step 3 checks its detector
    (seconds per run); steps 2 and 3 need real readings, not that many.
    """
    path = data_dir / READINGS_FILE
    write_csv(path, _recording_of_the_first_boxes(boxes))
    return path


def execute_notebook(name: str, env: dict[str, str], timeout_s: int = 300) -> nbformat.NotebookNode:
    """Execute src/<name> in a fresh kernel whose environment is ours plus `env`; return it with outputs."""
    return run(nbformat.read(SRC / name, as_version=4), SRC, env, timeout_s)


def run(notebook: nbformat.NotebookNode, directory: Path, env: dict[str, str], timeout_s: int = 300):
    """Execute `notebook` in place, in a fresh kernel working in `directory`; return it with outputs."""
    client = NotebookClient(
        notebook, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(directory)}}
    )
    client.execute(env={**os.environ, **env})
    return notebook


def cell_index(cells: list[nbformat.NotebookNode], cell_id: str) -> int:
    """Where the cell with this id is in `cells`. Tests name a cell by its id (or a task's tag), never by its
    text, so a cell's text lives in the notebook alone. Commit notebooks with `nbstripout --keep-id`."""
    found = [number for number, cell in enumerate(cells) if cell.get("id") == cell_id]
    assert len(found) == 1, f"{len(found)} cells have the id {cell_id!r}"
    return found[0]


def cell_by_id(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    """The notebook's cell with this id."""
    return notebook.cells[cell_index(notebook.cells, cell_id)]


def check_cell_id(task: str) -> str:
    """The id of the cell that checks a task's answer: the task's name, then -check (message-key-check)."""
    return task.replace("_", "-") + "-check"


def check_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The cells that check the tasks' answers (`tasks.check(...)`), in the notebook's order."""
    found = sorted(cell_index(notebook.cells, check_cell_id(task)) for task in task_cells(notebook))
    return [notebook.cells[number] for number in found]


def task_cells(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The cells tagged `task:<name>`, by task name."""
    return {
        tag.removeprefix(TAG_PREFIX): cell
        for cell in notebook.cells
        for tag in cell.get("metadata", {}).get("tags", [])
        if tag.startswith(TAG_PREFIX)
    }


def with_answer(notebook: nbformat.NotebookNode, task: str, source: str) -> nbformat.NotebookNode:
    """A copy of the notebook whose cell for `task` holds `source` instead of the unanswered skeleton."""
    answered = nbformat.from_dict(notebook)
    task_cells(answered)[task].source = source
    return answered


def with_solutions(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook with every task cell answered by its solution (data/solutions.py)."""
    for task in task_cells(notebook):
        notebook = with_answer(notebook, task, solution(task))
    return notebook


def until_the_last_task_check(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook whose cells end with its last task check."""
    return until(notebook, check_cells(notebook)[-1].id)


def until(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    """A copy of the notebook whose cells end with the one with this id."""
    cut = nbformat.from_dict(notebook)
    cut.cells = cut.cells[: cell_index(cut.cells, cell_id) + 1]
    return cut


def learner_error(notebook: nbformat.NotebookNode, directory: Path, env: dict[str, str]) -> str:
    """Run the notebook, which must stop at an error; return that error's message (the ❌ line's text)."""
    try:
        run(notebook, directory, env)
    except CellExecutionError as error:
        return error.evalue
    raise AssertionError("the notebook ran to the end without an error")


def notebook_as_script(name: str, directory: Path, last_cell: str | None = None) -> Path:
    """src/<name> as a plain Python script (for running it as a process that a test can kill), to the end or
    up to and including the cell with the id `last_cell`."""
    notebook = nbformat.read(SRC / name, as_version=4)
    script, _ = PythonExporter().from_notebook_node(until(notebook, last_cell) if last_cell else notebook)
    path = directory / (Path(name).stem + ".py")
    path.write_text(script, encoding="utf-8")
    return path


def stream_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook printed."""
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
    )
