"""A quiz question inside a notebook (quiz.ask): shown as text, answered with a letter, one line of feedback."""

from __future__ import annotations

import pytest

from pm25 import quiz

QUESTION = "producer-flush"


def test_without_an_answer_it_shows_the_question_says_so_and_goes_on(capsys):
    quiz.ask(QUESTION)
    printed = capsys.readouterr().out.splitlines()
    question = next(q for q in quiz.load_quiz() if q.id == QUESTION)
    assert printed[0] == f"❓ {question.text}"
    assert printed[1 : 1 + len(question.options)] == [f"   {o.key}) {o.text}" for o in question.options]
    assert printed[-1] == 'Your answer: none yet. Set answer= to "a" or "b" or "c" and run this cell again.'


@pytest.mark.parametrize("correct", [True, False])
def test_an_answer_gets_one_line_with_its_explanation(correct, capsys):
    question = next(q for q in quiz.load_quiz() if q.id == QUESTION)
    chosen = next(o for o in question.options if (o.key in question.answer) == correct)
    quiz.ask(QUESTION, answer=chosen.key.upper())
    feedback = capsys.readouterr().out.splitlines()[len(question.options) + 1 :]
    expected = f"✅ {chosen.explanation}" if correct else f"❌ {chosen.explanation} Try another letter."
    assert feedback == [expected]


def test_a_letter_that_is_no_option_and_a_question_that_does_not_exist_get_one_line(capsys):
    quiz.ask(QUESTION, answer="z")
    assert capsys.readouterr().out.splitlines()[-1] == """❌ 'z' is not one of the options: answer "a" or "b" or "c"."""
    with pytest.raises(quiz.QuizError, match="There is no quiz question 'no-such-question'"):
        quiz.ask("no-such-question")
