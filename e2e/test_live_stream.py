"""The learner's own code on a live stream, in the browser: the consumer-loop task typed into step 3, its live
view watched while the readings arrive, then step 3b's second member after a written prediction.

It needs only step 1's readings and step 2's topic; run alone, it makes both (three boxes, as the notebook tests).
"""

from __future__ import annotations

import os

import nbformat
from kafka import KafkaAdminClient
from playwright.sync_api import Page, expect

from e2e.conftest import REPO
from e2e.test_browser import (
    assert_no_errors,
    open_notebook,
    run_all_cells,
    shutdown_kernels,
    snap,
    wait_until_executed,
)
from pm25 import config
from pm25.data.dataset import READINGS_FILE
from pm25.data.readings import load_readings
from pm25.learning.tasks import solution
from pm25.streaming import topics
from pm25.views.maps import NO_DATA
from tests.faults.support import produce
from tests.notebooks import small_readings

STEP_3 = "step_3_event_processing.ipynb"
LIVE_SPEEDUP = "7200"  # three boxes' three days in about 36 s: long enough to see the map change


def steps_1_and_2_done(data_dir) -> None:
    """Step 1's readings file and step 2's topic, unless the tests before this one made them."""
    readings_file = data_dir / READINGS_FILE
    if not readings_file.exists():
        small_readings(data_dir)
    bootstrap_servers = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    topic = config.load().topic
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        if topic in admin.list_topics():
            return
        topics.ensure_topic(admin, topic)
    produce(bootstrap_servers, topic, load_readings(readings_file).readings)


def type_into_cell(page: Page, cell_text: str, source: str, shows: str) -> None:
    """Select all of the code cell holding `cell_text` and put `source` in its place, as a paste does;
    `shows` is a line of `source` that the skeleton has not."""
    page.locator(".jp-CodeCell", has_text=cell_text).locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(source)
    expect(page.locator(".jp-CodeCell .cm-content").filter(has_text=shows)).to_have_count(1)


COLOURED = (  # a circle marker coloured by a window mean: a reading of its box has been processed
    "([map, noData]) => [...map.querySelectorAll('path.leaflet-interactive')]"
    ".some(p => p.getAttribute('fill') !== noData)"
)


def live_speedup_cell() -> str:
    notebook = nbformat.read(REPO / "src" / STEP_3, as_version=4)
    [cell] = [cell for cell in notebook.cells if "live_speedup = settings.live_speedup" in cell.source]
    return cell.source


def test_the_typed_consumer_loop_runs_step_3s_live_view_and_step_3b_splits_as_predicted(page, lab, screenshots):
    steps_1_and_2_done(lab.data_dir)
    open_notebook(page, lab, STEP_3)
    answer = solution("consumer_loop")
    type_into_cell(page, "def make_consumer(", answer, shows="consumer.subscribe([topic])")
    live = live_speedup_cell().replace("live_speedup = settings.live_speedup", f"live_speedup = {LIVE_SPEEDUP}")
    type_into_cell(page, "live_speedup = settings.live_speedup", live, shows=f"live_speedup = {LIVE_SPEEDUP}")
    run_all_cells(page)

    outputs = page.locator(".jp-OutputArea-output")
    typed_answer_passed = outputs.filter(has_text="✅ Right: the loop processed all")
    expect(typed_answer_passed).to_have_count(1, timeout=120_000)
    live_map = outputs.locator(".leaflet-container")
    note = live_map.locator(".leaflet-bottom.leaflet-left")
    expect(note).to_contain_text("Provisional", timeout=120_000)
    page.wait_for_function(COLOURED, arg=[live_map.element_handle(), NO_DATA], timeout=120_000)  # a box has data
    snap(live_map, screenshots / "step_3_live_map_mid_run.png")
    assert "Provisional" in note.inner_text()  # still, after the screenshot: it shows the map mid-run

    wait_until_executed(page)
    assert_no_errors(page)
    expect(note).to_contain_text("Final")
    expect(outputs.filter(has_text="'duplicates': 0, 'late': 0}")).to_have_count(1)
    expect(outputs.filter(has_text="Alerts: yours: ").filter(has_text=", the same.")).to_have_count(1)
    shutdown_kernels(lab)

    open_notebook(page, lab, "step_3b_consumer_group.ipynb")
    type_into_cell(page, "split = ...  # e.g. [3, 0]", "split = [2, 1]", shows="split = [2, 1]")
    run_all_cells(page)
    wait_until_executed(page)
    assert_no_errors(page)
    expect(outputs.filter(has_text="✅ As you predicted: first [")).to_have_count(1)
    both = page.locator(".jp-OutputArea-output table").filter(has_text="first").filter(has_text="second")
    expect(both.first).to_be_visible()
    shutdown_kernels(lab)
