"""The self-test questions in data/quiz.yaml, their coverage of the learning goals, and the widget's feedback."""

from __future__ import annotations

import dataclasses
import inspect
import re
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import yaml

from pm25.config import REPO_DIR
from pm25.learning.quiz import (
    QUIZ_CSS,
    QUIZ_PATH,
    Option,
    Question,
    QuizError,
    ask,
    check_answer,
    feedback_html,
    load_quiz,
    parse_quiz,
    show_quiz,
    validate,
)
from pm25.rules.daily import DailyMeans
from pm25.rules.detector import Detector

REQUIRED_CHAPTERS = {"iot", "streams", "workflow", "kafka", "pm25"}  # the notebooks point learners to these
GOAL = re.compile(r"^\d+\. \*\*(?P<name>[^*]+?)\.\*\* ", re.MULTILINE)


def learning_goals() -> list[str]:
    """The bold names of the numbered goals in TEACHERS.md's "Learning goals" section."""
    text = (REPO_DIR / "TEACHERS.md").read_text(encoding="utf-8")
    section = text.split("## Learning goals", 1)[1].split("\n## ", 1)[0]
    return GOAL.findall(section)


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return load_quiz()


def by_id(questions: list[Question], question_id: str) -> Question:
    return next(q for q in questions if q.id == question_id)


def single() -> Question:
    return Question(
        id="q",
        chapter="kafka",
        chapter_title="Apache Kafka",
        goal="Kafka building blocks",
        text="Which?",
        options=(Option("a", "A", "Because a."), Option("b", "B", "Because b.")),
        answer=("b",),
    )


def multi() -> Question:
    options = (Option("a", "A", "Yes a."), Option("b", "B", "No b."), Option("c", "C", "Yes c."))
    return dataclasses.replace(single(), options=options, answer=("a", "c"), multiple=True)


# The data file


def test_quiz_file_has_no_problems(questions):
    assert validate(questions) == []


def texts_of_the_file(data: dict):
    """(where, value) of every text field of the YAML document as YAML reads it, before parse_quiz."""
    for chapter, title in data["chapters"].items():
        yield f"chapter {chapter}", title
    for question in data["questions"]:
        yield f"{question['id']} id", question["id"]
        yield f"{question['id']} text", question["text"]
        for option in question["options"]:
            for field in ("key", "text", "explanation"):
                yield f"{question['id']} option {option['key']} {field}", option[field]


def test_every_text_in_the_quiz_file_is_a_string():
    # Unquoted, 2023-02-26T08:24:00Z is a datetime to YAML, and `y`/`no` are booleans (issue 21 item 10)
    data = yaml.safe_load(QUIZ_PATH.read_text(encoding="utf-8"))
    assert [(where, value) for where, value in texts_of_the_file(data) if not isinstance(value, str)] == []


def test_the_options_of_a_question_read_differently(questions):
    assert [q.id for q in questions if len({o.text for o in q.options}) < len(q.options)] == []


def test_teachers_guide_lists_the_learning_goals_the_hands_on_parts_bring():
    assert {"Producer", "Consumer group", "Event-time window", "Alerts in context"} <= set(learning_goals())


def test_every_learning_goal_has_at_least_two_questions(questions):
    per_goal = Counter(q.goal for q in questions)
    assert {goal: per_goal[goal] for goal in learning_goals() if per_goal[goal] < 2} == {}


def test_every_question_names_a_learning_goal_of_the_teachers_guide(questions):
    goals = set(learning_goals())
    assert [(q.id, q.goal) for q in questions if q.goal not in goals] == []


def test_the_correct_option_is_the_longest_in_at_most_40_percent_of_single_answer_questions(questions):
    """Guessing "the longest option" must not pay. A tie for the longest counts as longest."""
    single = [q for q in questions if not q.multiple]
    longest = [q.id for q in single if len(q.option(q.answer[0]).text) == max(len(o.text) for o in q.options)]
    assert len(longest) <= 0.4 * len(single), longest


def length_rank(question: Question) -> str:
    """Where the correct option stands by length; a tie with the shortest or the longest counts as that."""
    lengths = [len(option.text) for option in question.options]
    correct = len(question.option(question.answer[0]).text)
    return "longest" if correct == max(lengths) else "shortest" if correct == min(lengths) else "middle"


def test_no_length_rank_holds_the_correct_option_in_more_than_half_of_single_answer_questions(questions):
    """Guessing "the middle-length one" (or the shortest, or the longest) must not pay (issue 25 item 9)."""
    ranks = Counter(length_rank(q) for q in questions if not q.multiple)
    assert max(ranks.values()) <= 0.5 * sum(ranks.values()), ranks


def test_no_option_position_holds_most_correct_answers(questions):
    positions = Counter([o.key for o in q.options].index(q.answer[0]) for q in questions if not q.multiple)
    assert max(positions.values()) <= 0.5 * sum(positions.values()), positions


def test_chapters_cover_the_required_topics(questions):
    assert {q.chapter for q in questions} >= REQUIRED_CHAPTERS


def test_every_required_chapter_has_at_least_two_questions(questions):
    for chapter in REQUIRED_CHAPTERS:
        assert sum(q.chapter == chapter for q in questions) >= 2, chapter


def test_single_answer_questions_have_exactly_one_correct_option(questions):
    for question in questions:
        if not question.multiple:
            assert len(question.answer) == 1, question.id


def test_every_option_has_an_explanation(questions):
    assert all(option.explanation for q in questions for option in q.options)


def test_the_concepts_of_the_issue_are_applied(questions):
    """3 partitions and 4 consumers, a crash before commit, a valid bbox, acks=all on one broker, lag."""
    for question_id in (
        "group-four-consumers",
        "consumer-crash-before-commit",
        "osem-bbox",
        "producer-acks-one-broker",
        "consumer-lag",
    ):
        by_id(questions, question_id)


def test_who_24_hour_guideline_answer_is_15(questions):
    question = by_id(questions, "pm25-who")
    assert question.option(question.answer[0]).text == "15 µg/m³"


def test_the_valid_bbox_is_longitude_first_south_west_corner_first(questions):
    question = by_id(questions, "osem-bbox")
    west, south, east, north = map(float, question.option(question.answer[0]).text.split(","))
    assert (13 < west < east < 14, 52 < south < north < 53) == (True, True)


# The rule questions say what pm25.rules.detector does (decision 2: the 24-hour mean of hourly means, >= 18 hours)

T0 = datetime(2023, 2, 26, 0, tzinfo=UTC)
needs_24_hour_detector = pytest.mark.skipif(
    "min_hours" not in inspect.signature(Detector).parameters, reason="needs the 24-hour Detector (decision 3)"
)


def reading(moment: datetime, value: float) -> SimpleNamespace:
    return SimpleNamespace(box_id="box", box_name="Box", timestamp=moment, value=value)


def run(readings) -> tuple[Detector, list]:
    detector = Detector()
    alerts = [alert for alert in map(detector.process, readings) if alert is not None]
    return detector, alerts


def hourly(values, start: datetime = T0) -> list[SimpleNamespace]:
    return [reading(start + timedelta(hours=hour, minutes=10), value) for hour, value in enumerate(values)]


@needs_24_hour_detector
def test_rule_question_hourly_means_answer_is_the_detectors_mean(questions):
    busy_hour = [reading(T0 + timedelta(minutes=2 * n), 30.0) for n in range(24)]
    closing = reading(T0 + timedelta(hours=20), 10.0)  # the first reading of hour 20 closes hours 0..19
    detector, alerts = run([*busy_hour, *hourly([10.0] * 19, start=T0 + timedelta(hours=1)), closing])
    mean, n_hours = detector.window("box")
    question = by_id(questions, "rule-hourly-means")
    assert (n_hours, alerts) == (20, [])
    assert question.option(question.answer[0]).text.startswith(f"{mean:.1f} µg/m³")


@needs_24_hour_detector
def test_rule_question_twelve_hours_is_no_decision(questions):
    detector, alerts = run(hourly([40.0] * 12))
    question = by_id(questions, "rule-coverage")
    assert (alerts, detector.state("box")) == ([], "ok")
    assert question.option(question.answer[0]).text.startswith("No decision")


@needs_24_hour_detector
def test_rule_question_a_mean_of_exactly_15_resolves(questions):
    _detector, alerts = run(hourly([20.0] * 18 + [0.0] * 7))  # before hour 24: (18 x 20 + 6 x 0) / 24 = 15
    question = by_id(questions, "rule-threshold-tie")
    assert [(a.event, round(a.mean, 2)) for a in alerts] == [("exceeded", 20.0), ("resolved", 15.0)]
    assert question.option(question.answer[0]).text.startswith("resolved")


@needs_24_hour_detector
def test_window_question_clock_hours_are_the_detectors_window(questions):
    """At 27 Feb 14:20, the box's first reading of that hour, the hour 26 Feb 13:00 has left the window and
    26 Feb 14:00 is in it."""
    start = datetime(2023, 2, 26, 13, tzinfo=UTC)
    at_14_20 = reading(datetime(2023, 2, 27, 14, 20, tzinfo=UTC), 1.0)
    detector, _alerts = run([*hourly([100.0] + [10.0] * 24, start=start), at_14_20])
    question = by_id(questions, "window-clock-hours")
    assert detector.window("box") == (pytest.approx(10.0), 24)
    assert "26 February 14:00 up to 27 February 14:00" in question.option(question.answer[0]).text


def test_event_time_question_measures_and_delivers_in_different_clock_hours(questions):
    """In one clock hour (10:00 and 10:07) both answers would name the same hour: no question at all."""
    question = by_id(questions, "streams-event-time")
    measured, received = (datetime.strptime(time, "%H:%M") for time in re.findall(r"(\d\d:\d\d) UTC", question.text))
    assert measured.hour != received.hour
    assert f"from {measured:%H}:00 to" in question.option(question.answer[0]).text


def test_rolling_vs_calendar_question_is_an_alert_without_a_day_above_25(questions):
    """40 µg/m³ from 26 February 12:00 to 27 February 12:00, 5 otherwise: the detector alerts at threshold 25,
    while both calendar days average 22.5, as the correct option says."""
    stream = hourly([40.0 if 12 <= hour < 36 else 5.0 for hour in range(48)], start=datetime(2023, 2, 26, tzinfo=UTC))
    detector, daily = Detector(threshold=25.0), DailyMeans()
    events = [alert.event for alert in map(detector.process, stream) if alert is not None]
    for r in stream:
        daily.update(r)
    days = daily.table()
    question = by_id(questions, "rule-rolling-vs-calendar-day")
    assert "exceeded" in events
    assert (days["date"].tolist(), days["mean"].tolist()) == (["2023-02-26", "2023-02-27"], [22.5, 22.5])
    assert not days["above_eu_2030"].any()
    assert question.option(question.answer[0]).text.startswith("None") and "22.5" in question.option("c").text


def test_who_percentile_question_agrees_with_the_99th_percentile_of_a_years_daily_means(questions):
    question = by_id(questions, "pm25-who-percentile")
    days_above = int(re.search(r"(\d+) of them are above 15", question.text)[1])

    def percentile_99(days_above_15: int) -> float:
        daily_means = [20.0] * days_above_15 + [10.0] * (365 - days_above_15)
        return statistics.quantiles(daily_means, n=100, method="inclusive")[98]

    assert percentile_99(days_above) <= 15 < percentile_99(5)  # 5 days: what the explanation says breaks it
    assert question.option(question.answer[0]).text.startswith("It is met")


def test_eu_daily_question_counts_calendar_days_18_a_year(questions):
    question = by_id(questions, "pm25-eu-daily")
    correct = question.option(question.answer[0])
    assert "calendar days" in correct.text and "18" in correct.text
    assert "2008/50/EC" in correct.explanation and "12 December 2026" in correct.explanation


def test_loading_a_file_without_questions_fails_clearly(tmp_path):
    path = tmp_path / "quiz.yaml"
    path.write_text("chapters: {}\n", encoding="utf-8")
    with pytest.raises(QuizError, match="questions"):
        load_quiz(path)


# validate() catches broken variants


def broken_variant_problems(change) -> list[str]:
    data = yaml.safe_load(QUIZ_PATH.read_text(encoding="utf-8"))
    change(data["questions"][0], data)
    return validate(parse_quiz(data))


def test_validate_catches_two_correct_answers_without_multiple():
    def change(question, _data):
        question.pop("multiple", None)
        question["answer"] = ["a", "b"]

    assert any("exactly one correct answer" in p for p in broken_variant_problems(change))


def test_validate_catches_a_missing_answer():
    def change(question, _data):
        question.pop("multiple", None)
        question.pop("answer")

    assert any("exactly one correct answer" in p for p in broken_variant_problems(change))


def test_validate_catches_an_answer_naming_no_option():
    def change(question, _data):
        question.pop("multiple", None)
        question["answer"] = "z"

    assert any("unknown options" in p for p in broken_variant_problems(change))


def test_validate_catches_a_missing_explanation():
    def change(question, _data):
        del question["options"][1]["explanation"]

    assert any("no explanation" in p for p in broken_variant_problems(change))


def test_validate_catches_multiple_without_answers():
    def change(question, _data):
        question["multiple"] = True
        question["answer"] = []

    assert any("lists no correct answers" in p for p in broken_variant_problems(change))


def test_validate_catches_multiple_with_every_option_correct():
    def change(question, _data):
        question["multiple"] = True
        question["answer"] = [option["key"] for option in question["options"]]

    assert any("every option correct" in p for p in broken_variant_problems(change))


def test_validate_catches_an_unknown_chapter():
    def change(question, _data):
        question["chapter"] = "astrology"

    assert any("'chapters:' does not name" in p for p in broken_variant_problems(change))


def test_validate_catches_a_duplicate_id():
    def change(question, data):
        question["id"] = data["questions"][1]["id"]

    assert any("used twice" in p for p in broken_variant_problems(change))


def test_validate_catches_a_question_without_goal():
    def change(question, _data):
        del question["goal"]

    assert any("names no learning goal" in p for p in broken_variant_problems(change))


def test_validate_catches_backticks_in_an_option_label():
    def change(question, _data):
        question["options"][0]["text"] = "use `acks=all`"

    assert any("backticks" in p for p in broken_variant_problems(change))


def test_parse_quiz_refuses_an_option_that_yaml_read_as_a_date():
    data = yaml.safe_load(QUIZ_PATH.read_text(encoding="utf-8"))
    first = data["questions"][0]
    first["options"][1]["text"] = yaml.safe_load("2023-02-26T08:24:00.000Z")
    reason = rf"{first['id']}: option 'b' text 2023-02-26 08:24:00\+00:00 is a datetime, not a text: put it in quotes"
    with pytest.raises(QuizError, match=reason):
        parse_quiz(data)


def test_parse_quiz_refuses_a_question_text_that_yaml_read_as_a_number():
    data = yaml.safe_load(QUIZ_PATH.read_text(encoding="utf-8"))
    data["questions"][1]["text"] = 1.5
    with pytest.raises(QuizError, match=rf"{data['questions'][1]['id']}: text 1.5 is a float"):
        parse_quiz(data)


def test_validate_catches_a_single_option():
    def change(question, _data):
        question.pop("multiple", None)
        question["options"] = question["options"][:1]
        question["answer"] = question["options"][0]["key"]

    assert any("at least two options" in p for p in broken_variant_problems(change))


# Feedback


def test_correct_single_answer_is_praised_with_its_explanation():
    feedback = check_answer(single(), "b")
    assert feedback.correct
    assert feedback.explanations == ("B: Because b.",)


def test_wrong_single_answer_is_explained():
    feedback = check_answer(single(), "a")
    assert not feedback.correct
    assert feedback.explanations == ("A: Because a.",)


def test_no_answer_asks_for_one():
    feedback = check_answer(single(), None)
    assert not feedback.correct
    assert "Choose" in feedback.message


def test_unknown_option_is_not_correct():
    assert not check_answer(single(), "z").correct


def test_multiple_needs_all_correct_options_in_any_order():
    assert check_answer(multi(), ["c", "a"]).correct


def test_multiple_with_a_missing_option_says_so_in_words():
    feedback = check_answer(multi(), ["a"])
    assert not feedback.correct
    assert feedback.message == "Almost: what you ticked is right, but one more option is right too."


def test_multiple_with_an_extra_option_says_so_in_words():
    feedback = check_answer(multi(), ["a", "b", "c"])
    assert not feedback.correct
    assert feedback.message == "Almost: you ticked every right option, but also one option that is wrong."


def test_multiple_with_wrong_and_missing_options_names_both():
    feedback = check_answer(multi(), ["b"])
    assert (
        feedback.message == "Not quite: one option you ticked is wrong, and two options that are right are not ticked."
    )


def test_feedback_shows_inline_code_as_code():
    question = dataclasses.replace(single(), options=(Option("a", "A", "Use `acks=all`."), Option("b", "B", "b")))
    html = feedback_html(check_answer(question, "a"))
    assert "<code>acks=all</code>" in html and "`" not in html


def test_feedback_escapes_html_in_explanations():
    question = dataclasses.replace(single(), options=(Option("a", "A", "x < y & <b>"), Option("b", "B", "b")))
    assert "x &lt; y &amp; &lt;b&gt;" in feedback_html(check_answer(question, "a"))


# The widget


def question_boxes(box):
    return box.children[1:]


def test_show_quiz_filters_by_chapter(questions):
    box = show_quiz("kafka")
    assert len(question_boxes(box)) == sum(q.chapter == "kafka" for q in questions)


def test_show_quiz_without_chapter_shows_everything(questions):
    assert len(question_boxes(show_quiz())) == len(questions)


def test_show_quiz_rejects_an_unknown_chapter_with_a_learner_error():
    with pytest.raises(QuizError, match="kafka"):
        show_quiz("no-such-chapter")


def test_question_text_shows_inline_code_as_code(questions):
    question = by_id(questions, "producer-flush")
    index = [q for q in questions if q.chapter == "producer"].index(question)
    title = question_boxes(show_quiz("producer"))[index].children[0]
    assert "<code>flush()</code>" in title.value and "`" not in title.value


def test_long_option_labels_wrap_instead_of_being_cut_off():
    quiz = show_quiz("iot")
    assert "pm25-quiz" in quiz._dom_classes and quiz.children[0].value.startswith(QUIZ_CSS)
    assert "white-space: normal" in QUIZ_CSS and "height: auto" in QUIZ_CSS


def test_clicking_check_shows_feedback(questions):
    question = by_id(questions, "kafka-key")
    index = [q for q in questions if q.chapter == "kafka"].index(question)
    _title, radio, button, feedback = question_boxes(show_quiz("kafka"))[index].children
    radio.value = question.answer[0]
    button.click()
    assert "Correct!" in feedback.value


def test_clicking_check_on_a_multiple_question_uses_the_checkboxes(questions):
    question = by_id(questions, "iot-advantages")
    index = [q for q in questions if q.chapter == "iot"].index(question)
    _title, choice, button, feedback = question_boxes(show_quiz("iot"))[index].children
    checkboxes = choice.children[1:]
    for option, checkbox in zip(question.options, checkboxes, strict=True):
        checkbox.value = option.key in question.answer
    button.click()
    assert "Correct!" in feedback.value


def test_show_quiz_refuses_a_broken_file(tmp_path):
    data = yaml.safe_load(QUIZ_PATH.read_text(encoding="utf-8"))
    data["questions"][0]["answer"] = "z"
    path = tmp_path / "quiz.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(QuizError, match="unknown options"):
        show_quiz(path=path)


def test_ask_shows_one_question_in_a_notebook_and_check_without_an_answer_says_so(questions):
    asked = ask("consumer-crash-before-commit")
    assert "pm25-quiz" in asked._dom_classes and asked.children[0].value == QUIZ_CSS
    title, radio, button, feedback = asked.children[1].children
    assert "crashes" in title.value and feedback.value == ""
    button.click()
    assert "Choose an answer first." in feedback.value
    radio.value = by_id(questions, "consumer-crash-before-commit").answer[0]
    button.click()
    assert "Correct!" in feedback.value
    with pytest.raises(QuizError, match="no-such-question"):
        ask("no-such-question")
