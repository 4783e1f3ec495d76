"""The self-test questions in data/quiz.yaml and the feedback the widget gives."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from pm25.quiz import (
    QUIZ_PATH,
    Option,
    Question,
    QuizError,
    check_answer,
    load_quiz,
    parse_quiz,
    show_quiz,
    validate,
)

REQUIRED_CHAPTERS = {"iot", "streams", "workflow", "kafka", "pm25"}


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


def test_quiz_has_at_least_twelve_questions(questions):
    assert len(questions) >= 12


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


def test_the_brief_topics_are_asked(questions):
    """Key and ordering, consumer groups, committed offsets, IoT advantages, PM2.5 thresholds."""
    for question_id in ("kafka-key", "kafka-consumer-group", "kafka-committed-offset", "iot-advantages"):
        by_id(questions, question_id)
    assert any("15 µg/m³" in o.text for q in questions if q.chapter == "pm25" for o in q.options)


def test_who_24_hour_guideline_answer_is_15(questions):
    question = by_id(questions, "pm25-who")
    assert question.option(question.answer[0]).text == "15 µg/m³"


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


def test_multiple_with_a_missing_option_is_wrong_and_says_so():
    feedback = check_answer(multi(), ["a"])
    assert not feedback.correct
    assert "1 correct one(s) are missing" in feedback.message


def test_multiple_with_an_extra_option_is_wrong():
    assert not check_answer(multi(), ["a", "b", "c"]).correct


# The widget


def question_boxes(box):
    return box.children[1:]


def test_show_quiz_filters_by_chapter(questions):
    box = show_quiz("kafka")
    assert len(question_boxes(box)) == sum(q.chapter == "kafka" for q in questions)


def test_show_quiz_without_chapter_shows_everything(questions):
    assert len(question_boxes(show_quiz())) == len(questions)


def test_show_quiz_rejects_an_unknown_chapter():
    with pytest.raises(ValueError, match="kafka"):
        show_quiz("no-such-chapter")


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
