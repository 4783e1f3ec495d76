"""A cell run out of order, or a field name typed without quotes, gets one line that says what to do."""

from __future__ import annotations

import nbformat
import pytest
from kafka import KafkaConsumer
from nbclient.exceptions import CellExecutionError

from pm25.learning.hints import CLOSED_CLIENT, hint
from pm25.streaming.commits import ProcessedOffsets
from tests.notebooks import SRC, cell_by_id, run, task_cells, with_answer

STEP_2 = SRC / "step_2_producer.ipynb"


@pytest.mark.parametrize(
    "name",
    [
        "step_1_data_prep.ipynb",
        "step_2_producer.ipynb",
        "step_3b_consumer_group.ipynb",
        "step_4_stream_processor.ipynb",
    ],
)
def test_the_imports_cell_installs_the_hints(name):
    assert "hints.install()" in cell_by_id(nbformat.read(SRC / name, as_version=4), "imports").source


def test_a_field_name_without_quotes_is_answered_with_the_quotes(tmp_path):
    notebook = with_answer(nbformat.read(STEP_2, as_version=4), "message_key", "key_field = boxId")
    notebook.cells = [cell_by_id(notebook, "imports"), task_cells(notebook)["message_key"]]
    with pytest.raises(CellExecutionError) as raised:
        run(notebook, SRC, {"PM25_DATA_DIR": str(tmp_path)})
    assert raised.value.ename == "NameError"
    shown = next(output for output in notebook.cells[1].outputs if output.output_type == "error")["traceback"]
    assert shown == [hint("boxId")]
    assert 'write it in quotes: "boxId"' in shown[0]


def test_an_unknown_name_is_still_sent_to_the_cells_above():
    assert "run the cells above this one first" in hint("aoi")
    assert "quotes" not in hint("aoi")


def test_a_loop_run_again_after_its_consumer_was_closed_gets_one_line(bootstrap_servers):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("from kafka import KafkaConsumer\nfrom pm25.learning import hints\nhints.install()"),
        nbformat.v4.new_code_cell(
            f"consumer = KafkaConsumer(bootstrap_servers={bootstrap_servers!r})\nconsumer.close()"
        ),
        nbformat.v4.new_code_cell("consumer.poll(timeout_ms=100)"),  # the loop cell, run again after the close
    ]
    with pytest.raises(CellExecutionError) as raised:
        run(notebook, SRC, {})
    assert raised.value.ename == "IllegalStateError"
    shown = next(output for output in notebook.cells[2].outputs if output.output_type == "error")["traceback"]
    assert shown == [CLOSED_CLIENT]


def test_rewind_after_the_consumer_was_closed_adds_no_second_error(bootstrap_servers):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers)
    consumer.close()
    ProcessedOffsets(consumer, None, lambda boxes: None, topic_partitions=3).rewind()  # returns quietly
