"""The tutorial as a learner meets it: JupyterLab in a browser, each notebook run with Run > Run All Cells.

The tests run in file order, as a learner works: step 1 writes the data step 2 sends, step 3 reads it.
Each waits for conditions with deadlines (all cells numbered, kernel idle), never for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from e2e.conftest import SCREENSHOTS
from pm25.learning.quiz import load_quiz

NOTEBOOK_TIMEOUT_S = float(os.environ.get("PM25_E2E_NOTEBOOK_TIMEOUT_S", "300"))
# An error output is rendered like stderr; these are what tell it from a warning.
ERROR_TEXT = re.compile(
    r"Traceback \(most recent call last\)|^\s*Cell In\[\d+\]|^\w*(Error|Exception|Interrupt)\b", re.M
)
EXECUTED_PROMPT = re.compile(r"^\[\d+\]:$")


def open_notebook(page: Page, lab, name: str, timeout_s: float = 90) -> None:
    """Open src/<name> and wait until its kernel runs and is idle, choosing one if JupyterLab asks.

    JupyterLab's root is the repository (so the notebooks' links to README.md and img/ work)."""
    name = f"src/{name}"
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout_s * 1000)
    indicator = page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator")
    deadline = time.monotonic() + timeout_s
    while not (kernel_idle(lab, name) and indicator.get_attribute("data-status") == "idle"):
        select_kernel_if_asked(page)
        if time.monotonic() > deadline:
            pytest.fail(f"no idle kernel for {name} within {timeout_s:g} s")
        page.wait_for_timeout(250)  # polling interval for the condition above, not synchronisation


def kernel_idle(lab, name: str) -> bool:
    """The server has a kernel for the notebook, and it is idle (the page alone says idle before it has one)."""
    sessions = lab.api("GET", "/api/sessions").json()
    return any(s["path"] == name and s["kernel"] and s["kernel"]["execution_state"] == "idle" for s in sessions)


def select_kernel_if_asked(page: Page) -> None:
    """JupyterLab may ask which kernel to start: take the one it proposes (the notebook's Python 3)."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.locator(".jp-mod-accept").click()
        expect(dialog).to_have_count(0)


def run_all_cells(page: Page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    select_kernel_if_asked(page)


def wait_until_executed(page: Page, timeout_s: float = NOTEBOOK_TIMEOUT_S) -> None:
    """Every code cell has an execution number ([3]: not [*]: or [ ]:) and the kernel is idle."""
    try:
        _wait_until_executed(page, timeout_s)
    except PlaywrightTimeoutError:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "failure.png"), full_page=True)
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        status = page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator").get_attribute("data-status")
        pytest.fail(f"not all cells ran within {timeout_s:g} s: prompts {prompts}, kernel {status}; see failure.png")


def _wait_until_executed(page: Page, timeout_s: float) -> None:
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')];
            const status = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
            return prompts.length > 0 && status && status.dataset.status === 'idle'
                && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
        }""",
        timeout=timeout_s * 1000,
        polling=500,
    )


def assert_no_errors(page: Page) -> None:
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    not_run = [i for i, text in enumerate(prompts) if not EXECUTED_PROMPT.match(text.strip())]
    assert not not_run, f"code cells {not_run} did not run: {prompts}"
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    errors = [text for text in stderr.all_inner_texts() if ERROR_TEXT.search(text)]
    assert not errors, "error output:\n" + "\n---\n".join(text[:2000] for text in errors)


CIRCLE_MARKERS = (
    "map => [...map.querySelectorAll('path.leaflet-interactive')]"
    ".filter(p => /a/i.test(p.getAttribute('d') || '')).length"
)


def circle_markers(leaflet_map: Locator, expected: int, timeout_s: float = 30) -> int:
    """How many circle markers the map shows, once it shows `expected` (or the deadline passed).

    Leaflet draws circle markers as SVG paths of arcs; the AOI outline is a path of lines.
    """
    with suppress(PlaywrightTimeoutError):  # then the assertion on the count says what was found instead
        leaflet_map.page.wait_for_function(
            f"([map, expected]) => ({CIRCLE_MARKERS})(map) === expected",
            arg=[leaflet_map.element_handle(), expected],
            timeout=timeout_s * 1000,
        )
    return leaflet_map.evaluate(CIRCLE_MARKERS)


def number_of_boxes(data_dir: Path) -> int:
    return len(json.loads((data_dir / "senseboxes.geojson").read_text())["features"])


def shutdown_kernels(lab) -> None:
    for session in lab.api("GET", "/api/sessions").json():
        lab.api("DELETE", f"/api/sessions/{session['id']}")


def snap(locator: Locator, path: Path) -> None:
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path), animations="disabled")


@pytest.fixture
def notebook(page, lab):
    """Open src/<name>, run all cells through the menu, wait until all ran; shut its kernel down after."""

    def run(name: str, answer: Callable[[Page], None] | None = None) -> Page:
        open_notebook(page, lab, name)
        if answer:
            answer(page)
        run_all_cells(page)
        wait_until_executed(page)
        return page

    yield run
    shutdown_kernels(lab)


TASK_1_ANSWER = "berlin_lat, berlin_lon = 52.5163, 13.3777"


def type_task_1_answer(page: Page) -> None:
    """As a learner answers: click into Task 1's cell, select its skeleton and type over it."""
    editor = page.locator(".jp-CodeCell", has_text="# Task 1: the centre of Berlin").locator(".cm-content")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(TASK_1_ANSWER)
    expect(page.locator(".jp-CodeCell .cm-content").filter(has_text=TASK_1_ANSWER)).to_have_count(1)


def test_step_1_checks_a_typed_answer_downloads_and_maps_every_box(notebook, lab, screenshots):
    page = notebook("step_1_data_prep.ipynb", answer=type_task_1_answer)
    assert_no_errors(page)
    outputs = page.locator(".jp-OutputArea-output")
    confirmed = "✅ Right: (52.5163, 13.3777) is 1.9 km from the centre of Berlin."
    expect(outputs.filter(has_text=confirmed)).to_have_count(1)
    expect(outputs.filter(has_text="⏳ Task 'bounding_box'")).to_have_count(1)  # unanswered: the solution is used
    boxes = number_of_boxes(lab.data_dir)
    assert boxes > 0
    maps = page.locator(".jp-OutputArea-output .leaflet-container")
    expect(maps).to_have_count(2)  # the drawing map and the map of the boxes
    boxes_map = maps.nth(1)
    assert circle_markers(boxes_map, boxes) == boxes
    snap(boxes_map, screenshots / "step_1_boxes_map.png")
    plot = page.locator('.jp-OutputArea-output[data-mime-type="image/png"] img').last
    expect(plot).to_be_visible()
    snap(plot, screenshots / "step_1_pm25_plot.png")


def test_step_1_link_to_the_readme_opens_it_in_jupyterlab(page, lab):
    open_notebook(page, lab, "step_1_data_prep.ipynb")
    # The link is in a collapsed "Going deeper" section: a learner opens it first.
    page.locator(".jp-MarkdownCell .jp-RenderedMarkdown summary", has_text="what PM2.5 is").first.click()
    page.locator(".jp-MarkdownCell .jp-RenderedMarkdown a", has_text="Background").first.click()
    expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text="README.md")).to_have_count(1)
    readme = page.locator(".jp-MarkdownViewer .jp-RenderedMarkdown")  # rendered, not the Markdown source
    expect(readme.locator("h2", has_text="Background")).to_have_count(1)
    expect(readme.locator("h1")).to_contain_text("Streaming air-quality data with Apache Kafka")
    shutdown_kernels(lab)


def test_step_2_sends_everything_and_every_message_is_acknowledged(notebook, screenshots):
    page = notebook("step_2_producer.ipynb")
    assert_no_errors(page)
    acknowledged = page.locator(
        ".jp-OutputArea-output", has_text="✅ Every message sent was acknowledged by the broker."
    )
    expect(acknowledged).to_have_count(1)
    snap(page.locator(".jp-NotebookPanel"), screenshots / "step_2_notebook.png")


def test_step_3_maps_every_box_and_plots_the_rolling_means(notebook, lab, screenshots):
    page = notebook("step_3_event_processing.ipynb")
    assert_no_errors(page)
    boxes = number_of_boxes(lab.data_dir)
    live_map = page.locator(".jp-OutputArea-output .leaflet-container")
    expect(live_map).to_have_count(1)
    assert circle_markers(live_map, boxes) == boxes
    snap(live_map, screenshots / "step_3_live_map.png")
    # The saved status map, in a frame: Leaflet is inside the page, so its markers show without internet too.
    status_map = page.frame_locator(".jp-OutputArea-output iframe")
    expect(status_map.locator(".leaflet-overlay-pane path.leaflet-interactive")).to_have_count(boxes)
    plot = page.locator('.jp-OutputArea-output[data-mime-type="image/png"] img').last
    expect(plot).to_be_visible()
    snap(plot, screenshots / "step_3_rolling_mean_plot.png")


def test_step_4_gives_step_3s_alerts_and_survives_a_killed_instance(notebook):
    page = notebook("step_4_stream_processor.ipynb")
    assert_no_errors(page)
    expect(page.locator(".jp-OutputArea-output", has_text="restored")).to_have_count(1)
    expect(page.locator(".jp-OutputArea-output", has_text=" 0 missing.")).to_have_count(1)


def test_step_3b_second_consumer_shares_the_partitions_then_hands_them_back(notebook, screenshots):
    page = notebook("step_3b_consumer_group.ipynb")
    assert_no_errors(page)
    tables = page.locator(".jp-OutputArea-output table")
    # the split: both members own partitions at once; after second.stop() its rows say "(no longer)"
    both = tables.filter(has_text="first").filter(has_text="second")
    expect(both.first).to_be_visible()
    expect(page.locator(".jp-OutputArea-output table", has_text="second (no longer)")).not_to_have_count(0)
    snap(both.last, screenshots / "step_3b_group_table.png")


def test_self_tests_answer_a_click_with_feedback(notebook, screenshots):
    page = notebook("self_tests.ipynb")
    assert_no_errors(page)
    question = next(q for q in load_quiz() if not q.multiple and "`" in q.text)
    right = question.option(question.answer[0])
    wrong = next(option for option in question.options if option.key != right.key)
    box = quiz_box(page, question)
    expect(box).to_have_count(1)
    title = box.locator(":scope > .widget-html").first
    expect(title.locator("code")).not_to_have_count(0)  # `inline code` rendered as code, without backticks
    expect(title).not_to_contain_text("`")
    feedback = box.locator(":scope > .widget-html").last

    box.locator(".widget-radio-box label", has_text=wrong.text).click()
    box.get_by_role("button", name="Check").click()
    expect(feedback).to_contain_text("Not quite")
    expect(feedback).to_contain_text(wrong.explanation[:40])

    box.locator(".widget-radio-box label", has_text=right.text).click()
    box.get_by_role("button", name="Check").click()
    expect(feedback).to_contain_text("Correct!")
    assert labels_cut_off(box.locator(".widget-radio-box label")) == []
    snap(box, screenshots / "self_tests_feedback.png")


def test_self_tests_long_labels_wrap_on_a_narrow_screen(notebook, screenshots):
    page = notebook("self_tests.ipynb")
    question = next(q for q in load_quiz() if q.multiple)
    box = quiz_box(page, question)
    for option in question.options:
        box.locator(".widget-checkbox", has_text=option.text).locator("input").set_checked(
            option.key != question.answer[0]
        )
    box.get_by_role("button", name="Check").click()
    expect(box.locator(":scope > .widget-html").last).to_contain_text("Not quite: one option you ticked is wrong")
    size = page.viewport_size
    page.set_viewport_size({"width": 640, "height": size["height"]})  # a laptop with the file browser open
    try:
        assert labels_cut_off(page.locator(".widget-checkbox label, .widget-radio-box label")) == []
        snap(box, screenshots / "self_tests_multiple_choice.png")
    finally:
        page.set_viewport_size(size)


def quiz_box(page: Page, question) -> Locator:
    """The widget box of one question, found by its title as rendered (inline code without backticks)."""
    title = question.text.replace("`", "")
    return page.locator(".widget-vbox").filter(has=page.locator(":scope > .widget-html", has_text=title))


def labels_cut_off(labels: Locator) -> list[str]:
    """The labels whose text does not fit their box (cut off with "…", or overflowing into the next)."""
    return labels.evaluate_all(
        "labels => labels.filter(l => l.scrollWidth > l.clientWidth + 1 || l.scrollHeight > l.clientHeight + 1)"
        ".map(l => l.textContent)"
    )
