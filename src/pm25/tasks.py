"""Tasks the learner answers in a notebook, each next to a check that says what is wrong.

A task cell starts unanswered: a value is `...` (or None), a function or class still holds a `...`
where the learner's code goes. The check cell hands the answers to `check()`:

    lat, lon = tasks.check("coordinates", check_coordinates, lat=lat, lon=lon)

* unanswered: it says so and takes the answers from the solution, so the rest of the notebook runs
  (that is also how CI runs the committed notebooks);
* answered: it runs the task's check, which returns what it confirms in a sentence or raises
  WrongAnswer with a hint (shown as one ❌ line: the notebook stops there, nothing else is lost).

Solutions live in one file, data/solutions.py: one cell per task, opened by `# %% task:<name>`.
TEACHERS.md shows the same code (a test compares them), and the tests run every notebook with the
solutions in place of the cells tagged `task:<name>`.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from pm25.config import BUNDLED_DATA_DIR
from pm25.errors import LearnerError

SOLUTIONS_FILE = BUNDLED_DATA_DIR / "solutions.py"
TAG_PREFIX = "task:"
_CELL_MARK = re.compile(r"^# %% task:([\w-]+)[ \t]*$", re.MULTILINE)


class WrongAnswer(LearnerError):
    """A task's answer is not right; the message is the hint."""


def parse_solutions(text: str) -> dict[str, str]:
    """Task name -> the solution's code, from the text of a solutions file."""
    parts = _CELL_MARK.split(text)  # [preamble, name, code, name, code, ...]
    solutions: dict[str, str] = {}
    for name, code in zip(parts[1::2], parts[2::2], strict=True):
        if name in solutions:
            raise ValueError(f"task {name!r} has two solutions")
        solutions[name] = code.strip() + "\n"
    return solutions


@cache
def solutions(path: Path = SOLUTIONS_FILE) -> dict[str, str]:
    """Every task's solution code, by task name."""
    return parse_solutions(path.read_text(encoding="utf-8"))


def solution(name: str) -> str:
    try:
        return solutions()[name]
    except KeyError:
        raise KeyError(f"no solution for task {name!r} in {SOLUTIONS_FILE}") from None


def solved_values(name: str) -> dict[str, Any]:
    """The names the task's solution defines, as a notebook cell running it would define them."""
    namespace: dict[str, Any] = {}
    exec(compile(solution(name), f"<solution of task {name}>", "exec"), namespace)
    return namespace


def is_unanswered(answer: Any) -> bool:
    """`...` or None, or a function or class whose code still holds a `...` placeholder."""
    if answer is ... or answer is None:
        return True
    if inspect.isclass(answer):  # a class's own source cannot be found in a notebook, its methods' can
        return any(is_unanswered(member) for member in vars(answer).values() if inspect.isfunction(member))
    if not inspect.isfunction(answer):
        return False
    return _holds_ellipsis(answer.__code__) or _source_holds_ellipsis(answer)


def _holds_ellipsis(code) -> bool:
    """A `...` used as a value (e.g. `return ...`, `key=...`) is one of the code's constants."""
    return any(const is ... or (inspect.iscode(const) and _holds_ellipsis(const)) for const in code.co_consts)


def _source_holds_ellipsis(function) -> bool:
    """A `...` standing alone as a statement is compiled away, so it is looked for in the source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):  # no source kept, or a lambda in the middle of a line
        return False
    return any(isinstance(node, ast.Constant) and node.value is ... for node in ast.walk(tree))


def check(name: str, checker: Callable[..., str], **answers: Any) -> Any:
    """Check the answers to task `name`; return them (one value, or a tuple in the order given).

    Unanswered parts are replaced by the solution's, with a note saying so. `checker(**answers)`
    returns a sentence confirming the answer, or raises WrongAnswer with a hint.
    """
    unanswered = [key for key, answer in answers.items() if is_unanswered(answer)]
    if unanswered:
        solved = solved_values(name)
        answers = {key: solved[key] for key in answers}
        listed = ", ".join(f"`{key}`" for key in unanswered)
        print(
            f"⏳ Task {name!r}: {listed} not answered yet (still `...`). "
            "Using the solution so the rest of the notebook runs; answer it and run both cells again."
        )
        print("   The solution: " + checker(**answers))
    else:
        print("✅ " + checker(**answers))
    values = tuple(answers.values())
    return values[0] if len(values) == 1 else values
