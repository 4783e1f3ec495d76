"""Self-test questions for the tutorial: load them, check them, and show them as widgets.

    from pm25.learning.quiz import show_quiz
    show_quiz("kafka")          # one chapter; show_quiz() shows all

The questions live in data/quiz.yaml. Each names the learning goal of TEACHERS.md it checks, has
options with one explanation each, and either one correct answer (`answer: b`) or, with
`multiple: true`, a list of correct answers (`answer: [a, c]`). `Inline code` in a question or an
explanation is shown as code; option labels are plain text (radio buttons cannot show code).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pm25.config import BUNDLED_DATA_DIR
from pm25.errors import LearnerError

QUIZ_PATH = BUNDLED_DATA_DIR / "quiz.yaml"

# ipywidgets cut long labels off with "…" (checkboxes) or let wrapped lines overlap (radio buttons), and
# space text for one-line labels: inside the quiz, labels wrap and grow, and paragraphs read as text.
QUIZ_CSS = """<style>
.pm25-quiz .widget-checkbox { width: auto; height: auto; }
.pm25-quiz .widget-checkbox .widget-label-basic { white-space: normal; overflow: visible; line-height: 1.4; }
.pm25-quiz .widget-radio-box label { height: auto; line-height: 1.4; margin: 0.15em 0; }
.pm25-quiz .widget-radio-box input { height: 1.4em; }
.pm25-quiz .widget-html-content { line-height: 1.4; }
</style>"""
INLINE_CODE = re.compile(r"`([^`]+)`")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}


class QuizError(LearnerError):
    """The quiz file cannot be used; the message lists every problem found."""


@dataclass(frozen=True)
class Option:
    key: str
    text: str
    explanation: str


@dataclass(frozen=True)
class Question:
    id: str
    chapter: str
    chapter_title: str
    goal: str
    text: str
    options: tuple[Option, ...]
    answer: tuple[str, ...]
    multiple: bool = False

    def option(self, key: str) -> Option | None:
        return next((option for option in self.options if option.key == key), None)


@dataclass(frozen=True)
class Feedback:
    correct: bool
    message: str
    explanations: tuple[str, ...] = ()


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _not_texts(where: str, fields: dict) -> list[str]:
    """Fields that YAML did not read as text: unquoted, 2023-02-26T08:24:00Z is a datetime and `no` a bool."""
    return [
        f"{where}{name} {value} is a {type(value).__name__}, not a text: put it in quotes"
        for name, value in fields.items()
        if value is not None and not isinstance(value, str)
    ]


def parse_quiz(data: dict) -> list[Question]:
    """Turn the YAML document into questions. Missing fields become empty: validate() names them."""
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise QuizError("The quiz file needs a 'questions:' list (and a 'chapters:' mapping).")
    titles = data.get("chapters") or {}
    questions, not_texts = [], []
    for number, raw in enumerate(data["questions"], start=1):
        raw = raw if isinstance(raw, dict) else {}
        where = f"{_text(raw.get('id')) or f'question {number}'}: "
        not_texts += _not_texts(where, {field: raw.get(field) for field in ("id", "chapter", "goal", "text")})
        for item in raw.get("options") or []:
            if isinstance(item, dict):
                fields = {field: item.get(field) for field in ("key", "text", "explanation")}
                not_texts += _not_texts(f"{where}option {_text(item.get('key'))!r} ", fields)
        answer = raw.get("answer")
        answers = answer if isinstance(answer, list) else [] if answer is None else [answer]
        options = tuple(
            Option(_text(item.get("key")), _text(item.get("text")), _text(item.get("explanation")))
            if isinstance(item, dict)
            else Option("", _text(item), "")
            for item in raw.get("options") or []
        )
        chapter = _text(raw.get("chapter"))
        questions.append(
            Question(
                id=_text(raw.get("id")) or f"question {number}",
                chapter=chapter,
                chapter_title=_text(titles.get(chapter)),
                goal=_text(raw.get("goal")),
                text=_text(raw.get("text")),
                options=options,
                answer=tuple(_text(key) for key in answers),
                multiple=raw.get("multiple") is True,
            )
        )
    if not_texts:
        raise QuizError("The quiz file has problems:\n" + "\n".join(not_texts))
    return questions


def load_quiz(path: str | Path | None = None) -> list[Question]:
    """Read the questions from data/quiz.yaml (or from `path`)."""
    path = Path(path) if path else QUIZ_PATH
    with path.open(encoding="utf-8") as file:
        return parse_quiz(yaml.safe_load(file))


def _problems(question: Question) -> list[str]:
    problems = []
    if not question.chapter:
        problems.append("has no chapter")
    elif not question.chapter_title:
        problems.append(f"has chapter {question.chapter!r}, which 'chapters:' does not name")
    if not question.goal:
        problems.append("names no learning goal (`goal:`, one of TEACHERS.md's learning goals)")
    if not question.text:
        problems.append("has no text")
    if len(question.options) < 2:
        problems.append("needs at least two options")
    keys = [option.key for option in question.options]
    if "" in keys:
        problems.append("has an option without a key")
    if len(set(keys)) != len(keys):
        problems.append(f"has duplicate option keys {keys}")
    for option in question.options:
        if not option.text:
            problems.append(f"option {option.key!r} has no text")
        if not option.explanation:
            problems.append(f"option {option.key!r} has no explanation")
        if "`" in option.text:
            problems.append(f"option {option.key!r} has backticks, but option labels are plain text: leave them out")
    unknown = [key for key in question.answer if key not in keys]
    if unknown:
        problems.append(f"answer names unknown options {unknown}")
    if question.multiple:
        if not question.answer:
            problems.append("is `multiple: true` but lists no correct answers")
        if len(set(question.answer)) != len(question.answer):
            problems.append("lists a correct answer twice")
        if len(question.answer) >= len(question.options):
            problems.append("marks every option correct, so there is nothing to choose")
    elif len(question.answer) != 1:
        problems.append(
            f"must have exactly one correct answer (got {len(question.answer)}); use `multiple: true` for several"
        )
    return problems


def validate(questions: list[Question]) -> list[str]:
    """Every problem in the questions, one sentence each; an empty list means the quiz is fine."""
    problems = []
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            problems.append(f"{question.id}: the id is used twice")
        seen.add(question.id)
        problems.extend(f"{question.id}: {problem}" for problem in _problems(question))
    return problems


def check_answer(question: Question, answer: str | list[str] | tuple[str, ...] | None) -> Feedback:
    """Judge an answer (an option key, or a list of keys for `multiple` questions)."""
    chosen = [] if answer is None else [answer] if isinstance(answer, str) else list(answer)
    if not chosen:
        return Feedback(False, "Choose an answer first.")
    explanations = tuple(
        f"{option.text}: {option.explanation}" for key in chosen if (option := question.option(key)) is not None
    )
    if len(explanations) != len(chosen):
        return Feedback(False, f"Unknown option in {chosen}.")
    if set(chosen) == set(question.answer):
        return Feedback(True, "Correct!", explanations)
    if question.multiple:
        return Feedback(False, _multiple_choice_hint(question, chosen), explanations)
    return Feedback(False, "Not quite. Read why, then try again.", explanations)


def _multiple_choice_hint(question: Question, chosen: list[str]) -> str:
    """What is wrong with a choice of several options, in words, without giving the answer away."""
    wrong = len(set(chosen) - set(question.answer))
    missed = len(set(question.answer) - set(chosen))
    if wrong and missed:
        return (
            f"Not quite: {_options(wrong)} you ticked {_is(wrong)} wrong, "
            f"and {_options(missed)} that {_is(missed)} right {_is(missed)} not ticked."
        )
    if wrong:
        return f"Almost: you ticked every right option, but also {_options(wrong)} that {_is(wrong)} wrong."
    return f"Almost: what you ticked is right, but {_options(missed, 'more ')} {_is(missed)} right too."


def _options(count: int, more: str = "") -> str:
    return f"{NUMBER_WORDS.get(count, count)} {more}option{'' if count == 1 else 's'}"


def _is(count: int) -> str:
    return "is" if count == 1 else "are"


def inline_html(text: str) -> str:
    """Text as HTML, with `inline code` shown as code."""
    return INLINE_CODE.sub(r"<code>\1</code>", html.escape(text))


def feedback_html(feedback: Feedback) -> str:
    colour = "green" if feedback.correct else "#b00020"
    items = "".join(f"<li>{inline_html(text)}</li>" for text in feedback.explanations)
    details = f"<ul>{items}</ul>" if items else ""
    return f'<div style="color:{colour}"><b>{html.escape(feedback.message)}</b></div>{details}'


def question_widget(question: Question, number: int):
    """One question: its text, radio buttons (or checkboxes), a Check button and the feedback."""
    import ipywidgets as widgets

    title = widgets.HTML(f"<b>{number}. {inline_html(question.text)}</b>")
    if question.multiple:
        boxes = [
            widgets.Checkbox(description=o.text, value=False, indent=False, layout=widgets.Layout(width="auto"))
            for o in question.options
        ]
        choice = widgets.VBox([widgets.HTML("<i>Choose all that apply.</i>"), *boxes])

        def current():
            return [o.key for o, box in zip(question.options, boxes, strict=True) if box.value]
    else:
        radio = widgets.RadioButtons(
            options=[(o.text, o.key) for o in question.options],
            value=None,
            layout=widgets.Layout(width="auto"),
        )
        choice = radio

        def current():
            return radio.value

    button = widgets.Button(description="Check", button_style="primary")
    feedback = widgets.HTML()

    def on_check(_button):
        feedback.value = feedback_html(check_answer(question, current()))

    button.on_click(on_check)
    return widgets.VBox([title, choice, button, feedback], layout=widgets.Layout(margin="0 0 1.5em 0"))


def show_quiz(chapter: str | None = None, path: str | Path | None = None):
    """An ipywidgets box with every question of `chapter` (all chapters if None)."""
    import ipywidgets as widgets

    questions = load_quiz(path)
    problems = validate(questions)
    if problems:
        raise QuizError("The quiz file has problems:\n" + "\n".join(problems))
    chapters = list(dict.fromkeys(q.chapter for q in questions))
    if chapter is not None and chapter not in chapters:
        raise QuizError(f"No chapter {chapter!r}; the chapters are: {', '.join(chapters)}.")
    chosen = [q for q in questions if chapter in (None, q.chapter)]
    title = f"<h3>{html.escape(chosen[0].chapter_title)}</h3>" if chapter else ""
    header = widgets.HTML(QUIZ_CSS + title)
    quiz = widgets.VBox([header, *(question_widget(q, n) for n, q in enumerate(chosen, start=1))])
    quiz.add_class("pm25-quiz")
    return quiz


def ask(question_id: str, path: str | Path | None = None):
    """One question of the quiz inside a notebook, at the moment it applies: its options, Check and the feedback.
    Nothing waits for an answer, so Run All (and CI) goes straight on."""
    import ipywidgets as widgets

    questions = {question.id: question for question in load_quiz(path)}
    if question_id not in questions:
        raise QuizError(f"No question {question_id!r} in {path or QUIZ_PATH}.")
    box = widgets.VBox([widgets.HTML(QUIZ_CSS), question_widget(questions[question_id], 1)])
    box.add_class("pm25-quiz")
    return box
