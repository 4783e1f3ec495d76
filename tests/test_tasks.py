"""The task mechanism: unanswered tasks fall back to the solution, wrong ones get their hint, and every
notebook with tasks also runs with the solutions filled in (the committed runs are nbmake's, the demo's
is here)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from pm25.data.readings import load_readings
from pm25.errors import LearnerError
from pm25.learning import tasks
from pm25.learning.tasks import WrongAnswer
from tests import wrong_answers
from tests.faults.support import create_topic, produce
from tests.notebooks import (
    SRC,
    check_cells,
    learner_error,
    run,
    small_readings,
    task_cells,
    until_the_last_task_check,
    with_answer,
    with_solutions,
)

TESTS = Path(__file__).resolve().parent
DEMO = TESTS / "tasks_demo.ipynb"
TEACHERS = SRC.parent / "TEACHERS.md"
NOTEBOOKS = [*sorted(SRC.glob("*.ipynb")), DEMO]  # in the order a learner runs them


def with_tasks(paths):
    return [path for path in paths if task_cells(nbformat.read(path, as_version=4))]


def always_right(**answers):
    return f"checked {answers}"


def test_an_unanswered_value_takes_the_example_answer_and_says_so_without_showing_it(capsys):
    assert tasks.check("message_key", always_right, key_field=...) == "boxId"
    said = capsys.readouterr().out
    assert "'message_key' is not answered yet: the rest of the notebook runs with the example answer" in said
    assert "boxId" not in said and "checked" not in said  # neither the answer nor what the check says of it
    assert len(said.strip().splitlines()) == 1


def test_the_fallback_does_not_show_the_text_to_type(capsys):
    tasks.check("time_range", always_right, time_from=..., time_to=...)
    solved = tasks.solved_values("time_range")
    said = capsys.readouterr().out
    assert solved["time_from"] not in said and solved["time_to"] not in said


def test_the_example_answer_is_revealed_only_after_a_try(capsys):
    tasks.forget_tries()
    tasks.check("message_key", always_right, key_field=...)
    with pytest.raises(LearnerError, match=r"^Try task 'message_key' first"):
        tasks.reveal("message_key")

    def never_right(key_field):
        raise WrongAnswer("think again")

    with pytest.raises(WrongAnswer, match=r"think again \(Stuck\? tasks\.reveal\('message_key'\) shows the example"):
        tasks.check("message_key", never_right, key_field="timestamp")
    capsys.readouterr()
    tasks.reveal("message_key")
    assert capsys.readouterr().out == tasks.solution("message_key")


def test_revealing_a_task_that_does_not_exist_names_those_that_do():
    with pytest.raises(LearnerError, match=r"no task 'mesage_key'.*'message_key'"):
        tasks.reveal("mesage_key")


def test_a_value_answered_next_to_one_left_blank_is_not_replaced(capsys):
    with pytest.raises(WrongAnswer, match=r"`time_to` is still `\.\.\.`") as error:
        tasks.check("time_range", always_right, time_from="2024-01-01T00:00:00.000Z", time_to=...)
    assert "not answered yet" not in capsys.readouterr().out + str(error.value)


def test_an_answered_value_is_checked_and_kept(capsys):
    assert tasks.check("message_key", always_right, key_field="mine") == "mine"
    assert capsys.readouterr().out.startswith("✅ Right: checked")


def test_a_wrong_answer_stops_with_the_hint_as_one_line():
    def never_right(key_field):
        raise WrongAnswer("think again")

    with pytest.raises(WrongAnswer) as error:
        tasks.check("message_key", never_right, key_field="timestamp")
    assert error.value._render_traceback_()[0].startswith("❌ think again (Stuck?")


def test_several_answers_come_back_in_the_order_given():
    assert tasks.check("producer", always_right, to_json=1, send_readings=2) == (1, 2)


def skeleton(): ...  # your code


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


def define(source: str, name: str):
    """What a notebook cell running `source` defines as `name` (its source kept, as IPython keeps it)."""
    path = Path(tempfile.mkdtemp()) / "cell.py"
    path.write_text(source, encoding="utf-8")
    namespace: dict = {}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace[name]


def test_an_untouched_skeleton_counts_as_unanswered(capsys):
    run_loop = define(tasks.skeletons()["consumer_loop"], "run_loop")
    assert tasks.check("consumer_loop", always_right, run_loop=run_loop) is not run_loop
    assert "not answered yet" in capsys.readouterr().out


def test_an_untouched_class_skeleton_counts_as_unanswered():
    detector = define(tasks.skeletons()["window_detector"], "WindowDetector")
    assert tasks.is_skeleton("window_detector", "WindowDetector", detector)


HALF_DONE_LOOP = tasks.skeletons()["consumer_loop"].replace("...  # process the record", "process(record)")


def test_a_half_finished_answer_names_the_line_left_and_what_belongs_there(capsys):
    run_loop = define(HALF_DONE_LOOP, "run_loop")
    with pytest.raises(WrongAnswer) as error:
        tasks.check("consumer_loop", always_right, run_loop=run_loop)
    assert "line 27, `...  # then commit: tell Kafka that these records are done`, still has `...`" in str(error.value)
    assert "solution" not in capsys.readouterr().out + str(error.value)


def test_a_placeholder_whose_comment_was_deleted_gets_the_skeletons_comment():
    half_done = tasks.skeletons()["producer"].replace("key=...", "key=reading['boxId']")
    to_json = define(half_done.replace("return ...  # JSON text, encoded: Kafka sends bytes", "return ..."), "to_json")
    with pytest.raises(WrongAnswer) as error:
        tasks.check("producer", always_right, to_json=to_json, send_readings=define(half_done, "send_readings"))
    assert "`return ...`, still has `...` where the code does this: JSON text, encoded: Kafka sends bytes" in str(
        error.value
    )


def test_a_bare_placeholder_is_not_explained_by_the_line_after_it():
    # Both of the loop's bare `...` lost their comments: no guess at what they are for, and never the next line's.
    bare = tasks.skeletons()["consumer_loop"].replace("...  # process the record", "...").replace("500", "1000")
    run_loop = define(bare.replace("...  # then commit: tell Kafka that these records are done", "..."), "run_loop")
    with pytest.raises(WrongAnswer) as error:
        tasks.check("consumer_loop", always_right, run_loop=run_loop)
    assert "line 24, `...`, still has `...`; line 27, `...`, still has `...`;" in str(error.value)
    assert "line after it" not in str(error.value)


def test_a_half_finished_class_is_not_replaced_by_the_solution():
    skeleton = tasks.skeletons()["window_detector"]
    half_done = skeleton.replace("hour = ...", "hour = reading.timestamp.replace(minute=0, second=0, microsecond=0)")
    detector = define(half_done, "WindowDetector")
    assert not tasks.is_skeleton("window_detector", "WindowDetector", detector)
    with pytest.raises(WrongAnswer, match=r"`if \.\.\.:`, still has `\.\.\.` \(the line after it says what for"):
        tasks.check("window_detector", always_right, WindowDetector=detector)


def test_a_solutions_file_with_a_task_twice_is_refused():
    with pytest.raises(ValueError, match="appears twice"):
        tasks.parse_task_cells("# %% task:a\nx = 1\n# %% task:a\nx = 2\n")


@pytest.mark.parametrize("name", sorted(tasks.solutions()))
def test_teachers_guide_shows_each_solution_as_it_is(name):
    block = f"```python\n{tasks.solution(name)}```"
    assert block in TEACHERS.read_text(encoding="utf-8"), f"TEACHERS.md must show the solution of {name}:\n{block}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_task_cell_has_a_solution_and_starts_unanswered(path):
    for name, cell in task_cells(nbformat.read(path, as_version=4)).items():
        assert name in tasks.solutions(), f"{path.name}: task {name!r} has no solution in data/solutions.py"
        assert cell.source.strip() + "\n" == tasks.skeletons().get(name), f"{path.name}: {name!r} is not its skeleton"
        assert re.search(r"(^|[\s=(,\[])\.\.\.", cell.source), f"{path.name}: task {name!r} is answered already"


@pytest.fixture(scope="module")
def solutions_env(bootstrap_servers, tmp_path_factory) -> dict[str, str]:
    """A data folder and topics of the solution runs' own: step 3's checks need readings on its topic."""
    data_dir = tmp_path_factory.mktemp("solutions")
    readings = load_readings(small_readings(data_dir)).readings
    topic = f"test_solutions_{data_dir.name}"
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, readings[:30])
    return {"PM25_DATA_DIR": str(data_dir), "PM25_TOPIC": topic, "PM25_ALERT_TOPIC": f"{topic}_alerts"}


@pytest.mark.parametrize("path", with_tasks(NOTEBOOKS), ids=lambda path: path.name)
def test_notebook_runs_with_the_solutions_filled_in(path, solutions_env):
    # Up to the last check: the cells after it are the committed notebook's, which nbmake runs.
    notebook = run(
        until_the_last_task_check(with_solutions(nbformat.read(path, as_version=4))), path.parent, solutions_env
    )
    checks = [printed(cell) for cell in check_cells(notebook)]
    assert len(checks) == len(task_cells(notebook))
    assert all("✅ Right" in said for said in checks), checks  # after what the answer printed (a failed commit)


def printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", []))


def test_the_committed_demo_falls_back_to_every_solution():
    notebook = run(nbformat.read(DEMO, as_version=4), DEMO.parent, {})
    said = "".join(map(printed, notebook.cells))
    assert said.count("not answered yet") == len(task_cells(notebook))


WITHOUT_COMMIT = tasks.solution("consumer_loop").replace("        consumer.commit()", "        pass")


@pytest.mark.parametrize(
    ("path", "task", "answer", "hint"),
    [
        (DEMO, "message_key", 'key_field = "timestamp"', "lose their order"),
        (DEMO, "consumer_loop", WITHOUT_COMMIT, "Nothing was committed"),
        (DEMO, "consumer_loop", HALF_DONE_LOOP, "line 27, `...  # then commit: tell Kafka that these records are"),
        (DEMO, "window_detector", wrong_answers.NEVER_RESOLVES, 'Yours never says "resolved"'),
        (
            SRC / "step_2_producer.ipynb",
            "producer",
            tasks.solution("producer").replace('.encode("utf-8")', ""),
            "to_json must return bytes",
        ),
        (
            SRC / "step_3_event_processing.ipynb",
            "window_detector",
            wrong_answers.LAST_THREE_ROWS,
            "count the hours with data (not the readings)",
        ),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else None,
)
def test_a_wrong_answer_in_the_notebook_gets_its_hint(path, task, answer, hint):
    notebook = with_answer(nbformat.read(path, as_version=4), task, answer)
    assert hint in learner_error(notebook, path.parent, {})


LEARNERS_CELL = """from datetime import timedelta


def send_readings(producer, topic, readings):
    for reading in readings:
        hour = reading["timestamp"] - timedelta(hours=1)
    producer.flush()
"""


def test_an_error_in_the_learners_code_is_one_line_naming_their_line(capsys):
    send_readings = define(LEARNERS_CELL, "send_readings")

    def checker(to_json, send_readings):
        send_readings(None, "topic", [{"timestamp": 3}])  # inside the package's check, as the real ones do

    with pytest.raises(WrongAnswer) as error:
        tasks.check("producer", checker, to_json=str, send_readings=send_readings)
    shown = error.value._render_traceback_()
    assert len(shown) == 1 and "\n" not in shown[0], shown
    assert shown[0].startswith(
        '❌ Your code stopped at line 6 of its cell, `hour = reading["timestamp"] - timedelta(hours=1)`, with '
        "TypeError: unsupported operand type(s) for -: 'int' and 'datetime.timedelta'. "
    ), shown
    assert "%tb" in shown[0]  # the full traceback, on request
    assert isinstance(error.value.__cause__, TypeError)


def test_the_hour_of_the_day_in_date_arithmetic_gets_the_clock_hour_question():
    # `hour = reading.timestamp.hour` (an int, 0-23) fails later, in `hour - timedelta(...)`, on a correct line.
    cell = (
        "from datetime import timedelta\n\ndef window_start(hour, hours):\n    return hour - timedelta(hours=hours)\n"
    )
    window_start = define(cell, "window_start")

    def checker(window_start):
        window_start(17, 24)  # what `reading.timestamp.hour` hands on

    with pytest.raises(WrongAnswer) as error:
        tasks.check("window_detector", checker, window_start=window_start)
    (shown,) = error.value._render_traceback_()
    assert "hour of the day" in shown and "replace(minute=0, second=0, microsecond=0)" in shown, shown


def test_an_error_outside_the_learners_code_keeps_its_traceback():
    def checker(key_field):
        raise ConnectionError("the package's own trouble")

    with pytest.raises(ConnectionError):
        tasks.check("message_key", checker, key_field="boxId")


class FakeShell:
    """What tasks.check reads of IPython: whether the cell run last succeeded, and its source."""

    def __init__(self, source: str, succeeded: bool):
        self.last_execution_succeeded = succeeded
        self.last_execution_result = SimpleNamespace(info=SimpleNamespace(raw_cell=source))


@pytest.mark.parametrize(
    ("source", "succeeded", "judged"),
    [
        ("key_field = boxid  # a NameError", False, False),
        ('key_field = "boxId"', True, True),
        ('key_field = tasks.check("message_key", producer_checks.key_field_check(), key_field=key_field)', False, True),
        ("print(1 / 0)", False, True),
    ],
    ids=["the task cell failed", "it ran", "the check itself failed before", "another cell failed"],
)
def test_a_check_after_its_task_cell_failed_says_to_fix_that_cell_first(monkeypatch, source, succeeded, judged):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: FakeShell(source, succeeded))
    if judged:
        assert tasks.check("message_key", always_right, key_field="boxId") == "boxId"
    else:
        with pytest.raises(LearnerError, match=r"^The cell above stopped with an error.*fix the cell above first"):
            tasks.check("message_key", always_right, key_field="boxId")
