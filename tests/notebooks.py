"""Run the tutorial's notebooks from tests, as a learner's kernel would run them."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import PythonExporter

SRC = Path(__file__).resolve().parents[1] / "src"


def execute_notebook(name: str, env: dict[str, str], timeout_s: int = 300) -> nbformat.NotebookNode:
    """Execute src/<name> in a fresh kernel whose environment is ours plus `env`; return it with outputs."""
    notebook = nbformat.read(SRC / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(SRC)}}
    )
    client.execute(env={**os.environ, **env})
    return notebook


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
