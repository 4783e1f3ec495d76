"""Run the tutorial's notebooks from tests, as a learner's kernel would run them."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import PythonExporter

from pm25.tasks import TAG_PREFIX, solution

SRC = Path(__file__).resolve().parents[1] / "src"


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


def learner_error(notebook: nbformat.NotebookNode, directory: Path, env: dict[str, str]) -> str:
    """Run the notebook, which must stop at an error; return that error's message (the ❌ line's text)."""
    try:
        run(notebook, directory, env)
    except CellExecutionError as error:
        return error.evalue
    raise AssertionError("the notebook ran to the end without an error")


def notebook_as_script(name: str, directory: Path) -> Path:
    """src/<name> as a plain Python script (for running it as a process that a test can kill)."""
    script, _ = PythonExporter().from_filename(str(SRC / name))
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
