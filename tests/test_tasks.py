"""The task mechanism: unanswered tasks fall back to the solution, wrong ones get their hint, and every
notebook with tasks also runs with the solutions filled in (the committed run is nbmake's)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from pm25 import tasks
from pm25.tasks import WrongAnswer
from tests.notebooks import SRC, learner_error, run, task_cells, with_answer, with_solutions

TESTS = Path(__file__).resolve().parent
DEMO = TESTS / "tasks_demo.ipynb"
TEACHERS = SRC.parent / "TEACHERS.md"
NOTEBOOKS = [*sorted(SRC.glob("*.ipynb")), DEMO]  # in the order a learner runs them


def with_tasks(paths):
    return [path for path in paths if task_cells(nbformat.read(path, as_version=4))]


def always_right(**answers):
    return f"checked {answers}"


def test_an_unanswered_value_takes_the_solution_and_says_so(capsys):
    assert tasks.check("message_key", always_right, key_field=...) == "boxId"
    assert "`key_field` not answered yet" in capsys.readouterr().out


def test_an_answered_value_is_checked_and_kept(capsys):
    assert tasks.check("message_key", always_right, key_field="mine") == "mine"
    assert capsys.readouterr().out.startswith("✅ checked")


def test_a_wrong_answer_stops_with_the_hint_as_one_line():
    def never_right(key_field):
        raise WrongAnswer("think again")

    with pytest.raises(WrongAnswer) as error:
        tasks.check("message_key", never_right, key_field="timestamp")
    assert error.value._render_traceback_() == ["❌ think again"]


def test_several_answers_come_back_in_the_order_given():
    assert tasks.check("producer", always_right, to_json=1, send_readings=2) == (1, 2)


def skeleton():
    ...  # your code


def skeleton_with_a_blank_argument(producer):
    producer.send("topic", key=...)


class SkeletonClass:
    def process(self, reading):
        return ...


def answered(reading):
    return reading


@pytest.mark.parametrize("answer", [..., None, skeleton, skeleton_with_a_blank_argument, SkeletonClass])
def test_placeholders_count_as_unanswered(answer):
    assert tasks.is_unanswered(answer)


@pytest.mark.parametrize("answer", ["boxId", 0, answered, str, tasks.WrongAnswer])
def test_answers_count_as_answered(answer):
    assert not tasks.is_unanswered(answer)


def test_a_solutions_file_with_a_task_twice_is_refused():
    with pytest.raises(ValueError, match="two solutions"):
        tasks.parse_solutions("# %% task:a\nx = 1\n# %% task:a\nx = 2\n")


@pytest.mark.parametrize("name", sorted(tasks.solutions()))
def test_teachers_guide_shows_each_solution_as_it_is(name):
    block = f"```python\n{tasks.solution(name)}```"
    assert block in TEACHERS.read_text(encoding="utf-8"), f"TEACHERS.md must show the solution of {name}:\n{block}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_task_cell_has_a_solution_and_starts_unanswered(path):
    for name, cell in task_cells(nbformat.read(path, as_version=4)).items():
        assert name in tasks.solutions(), f"{path.name}: task {name!r} has no solution in data/solutions.py"
        assert re.search(r"(^|[\s=(,\[])\.\.\.", cell.source), f"{path.name}: task {name!r} is answered already"


@pytest.mark.parametrize("path", with_tasks(NOTEBOOKS), ids=lambda path: path.name)
def test_notebook_runs_with_the_solutions_filled_in(path):
    notebook = run(with_solutions(nbformat.read(path, as_version=4)), path.parent, {})
    checks = [printed(cell) for cell in notebook.cells if "tasks.check(" in cell.source]
    assert len(checks) == len(task_cells(notebook))
    assert all(said.startswith("✅") for said in checks), checks


def printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", []))


LAST_THREE_ROWS = """
from collections import defaultdict, deque


class WindowDetector:
    def __init__(self, threshold=15.0, window_hours=24, min_hours=18):
        self.threshold, self.rows, self.exceeded = threshold, defaultdict(lambda: deque(maxlen=3)), set()

    def process(self, reading):
        rows = self.rows[reading.box_id]
        rows.append(reading.value)
        mean = sum(rows) / len(rows)
        if mean > self.threshold and reading.box_id not in self.exceeded:
            self.exceeded.add(reading.box_id)
            return "exceeded"
        if mean <= self.threshold and reading.box_id in self.exceeded:
            self.exceeded.discard(reading.box_id)
            return "resolved"
        return None
"""


def test_the_committed_demo_falls_back_to_every_solution():
    notebook = run(nbformat.read(DEMO, as_version=4), DEMO.parent, {})
    assert "".join(map(printed, notebook.cells)).count("not answered yet") == len(task_cells(notebook))


WITHOUT_COMMIT = tasks.solution("consumer_loop").replace("        consumer.commit()", "        pass")


@pytest.mark.parametrize(
    ("path", "task", "answer", "hint"),
    [
        (DEMO, "message_key", 'key_field = "timestamp"', "lose their order"),
        (DEMO, "consumer_loop", WITHOUT_COMMIT, "Nothing was committed"),
        (DEMO, "window_detector", LAST_THREE_ROWS, "The first difference is at reading"),
        (SRC / "step_2_producer.ipynb", "producer", tasks.solution("producer").replace('.encode("utf-8")', ""),
         "to_json must return bytes"),
        (SRC / "step_3_event_processing.ipynb", "window_detector", LAST_THREE_ROWS,
         "The first difference is at reading"),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else None,
)  # fmt: skip
def test_a_wrong_answer_in_the_notebook_gets_its_hint(path, task, answer, hint):
    notebook = with_answer(nbformat.read(path, as_version=4), task, answer)
    assert hint in learner_error(notebook, path.parent, {})
