"""A cell run out of order, or a field name typed without quotes, gets one line that says what to do."""

from __future__ import annotations

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from pm25.hints import hint
from tests.notebooks import SRC, run, task_cells, with_answer

STEP_2 = SRC / "step_2_producer.ipynb"


@pytest.mark.parametrize(
    "name", ["step_1_data_prep.ipynb", "step_2_producer.ipynb", "step_3b_consumer_group.ipynb",
             "step_4_stream_processor.ipynb"],
)  # fmt: skip
def test_the_imports_cell_installs_the_hints(name):
    imports = next(cell for cell in nbformat.read(SRC / name, as_version=4).cells if cell.cell_type == "code")
    assert "hints.install()" in imports.source


def test_a_field_name_without_quotes_is_answered_with_the_quotes(tmp_path):
    notebook = with_answer(nbformat.read(STEP_2, as_version=4), "message_key", "key_field = boxId")
    imports = next(cell for cell in notebook.cells if "hints.install()" in cell.source)
    notebook.cells = [imports, task_cells(notebook)["message_key"]]
    with pytest.raises(CellExecutionError) as raised:
        run(notebook, SRC, {"PM25_DATA_DIR": str(tmp_path)})
    assert raised.value.ename == "NameError"
    shown = next(output for output in notebook.cells[1].outputs if output.output_type == "error")["traceback"]
    assert shown == [hint("boxId")]
    assert 'write it in quotes: "boxId"' in shown[0]


def test_an_unknown_name_is_still_sent_to_the_cells_above():
    assert "run the cells above this one first" in hint("aoi")
    assert "quotes" not in hint("aoi")
