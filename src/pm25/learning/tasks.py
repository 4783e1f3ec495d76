"""Tasks the learner answers in a notebook, each next to a check that says what is wrong.

A task cell starts as its skeleton: a value is `...` (or None), a function or class still holds a
`...` where the learner's code goes. The check cell hands the answers to `check()`:

    lat, lon = tasks.check("coordinates", check_coordinates, lat=lat, lon=lon)

* untouched (every answer is still its skeleton): it says so and takes the answers from the
  solution, without showing them, so the rest of the notebook runs (that is also how CI runs the
  committed notebooks); after a try, `tasks.reveal(name)` shows the solution;
* half-finished (edited, but a `...` is left): a wrong answer that names the line still `...` and
  what belongs there; the learner's work is never replaced by the solution;
* answered: it runs the task's check, which returns what it confirms in a sentence or raises
  WrongAnswer with a hint (shown as one ❌ line: the notebook stops there, nothing else is lost).

Solutions and skeletons live in two files of the same form, data/solutions.py and data/skeletons.py:
one cell per task, opened by `# %% task:<name>`. TEACHERS.md shows the solutions (a test compares
them), the notebooks' task cells are the skeletons (a test compares them too), and the tests run every
notebook with the solutions in place of the cells tagged `task:<name>`.
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
from pm25.learners_code import learners_line, methods

SOLUTIONS_FILE = BUNDLED_DATA_DIR / "solutions.py"
SKELETONS_FILE = BUNDLED_DATA_DIR / "skeletons.py"
TAG_PREFIX = "task:"
_CELL_MARK = re.compile(r"^# %% task:([\w-]+)[ \t]*$", re.MULTILINE)
_COMMENT = re.compile(r"\s#\s*(.*)$")


class WrongAnswer(LearnerError):
    """A task's answer is not right; the message is the hint."""


def parse_task_cells(text: str) -> dict[str, str]:
    """Task name -> the cell's code, from the text of a solutions or skeletons file."""
    parts = _CELL_MARK.split(text)  # [preamble, name, code, name, code, ...]
    cells: dict[str, str] = {}
    for name, code in zip(parts[1::2], parts[2::2], strict=True):
        if name in cells:
            raise ValueError(f"task {name!r} appears twice")
        cells[name] = code.strip() + "\n"
    return cells


@cache
def solutions(path: Path = SOLUTIONS_FILE) -> dict[str, str]:
    """Every task's solution code, by task name."""
    return parse_task_cells(path.read_text(encoding="utf-8"))


@cache
def skeletons(path: Path = SKELETONS_FILE) -> dict[str, str]:
    """Every task's skeleton, the task cell as the notebook holds it when committed, by task name."""
    return parse_task_cells(path.read_text(encoding="utf-8"))


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
        return any(is_unanswered(member) for member in methods(answer).values())
    if not inspect.isfunction(answer):
        return False
    return _holds_ellipsis(answer.__code__) or bool(_placeholder_lines(answer))


def is_skeleton(name: str, key: str, answer: Any) -> bool:
    """Whether `answer` (the notebook's `key`) is still exactly the skeleton of task `name`.

    Code is compared as syntax trees, so spaces and comments do not count as edits."""
    if answer is ... or answer is None:
        return True
    definition = _skeleton_definitions(name).get(key)
    if inspect.isclass(answer) and isinstance(definition, ast.ClassDef):
        expected = {node.name: ast.dump(node) for node in definition.body if isinstance(node, ast.FunctionDef)}
        return {name: _syntax(method) for name, method in methods(answer).items()} == expected
    if inspect.isfunction(answer) and isinstance(definition, ast.FunctionDef):
        syntax = _syntax(answer)
        return is_unanswered(answer) if syntax is None else syntax == ast.dump(definition)  # None: no source kept
    return False


def placeholders(name: str, key: str, answer: Any) -> list[str]:
    """Where the answer to task `name` still holds a `...`, each as a phrase: which line, and what belongs there."""
    if answer is ... or answer is None:
        return [f"`{key}` is still `{'...' if answer is ... else None}`: give it a value too"]
    functions = methods(answer).values() if inspect.isclass(answer) else [answer]
    spots = sorted(spot for function in functions for spot in _placeholder_lines(function))
    if not spots and is_unanswered(answer):
        return [f"`{key}` still holds a `...`"]
    comments = _skeleton_comments(name)
    return [_describe(number, line, following, comments) for number, line, following in spots]


def _holds_ellipsis(code) -> bool:
    """A `...` used as a value (e.g. `return ...`, `key=...`) is one of the code's constants."""
    return any(const is ... or (inspect.iscode(const) and _holds_ellipsis(const)) for const in code.co_consts)


def _source(function) -> tuple[list[str], int] | None:
    """The function's source lines and the number of its first line in its cell (or file)."""
    try:
        return inspect.getsourcelines(function)
    except (OSError, TypeError):  # no source kept
        return None


def _parse(lines: list[str]) -> ast.Module | None:
    try:
        return ast.parse(textwrap.dedent("".join(lines)))
    except SyntaxError:  # a lambda in the middle of a line
        return None


def _syntax(function) -> str | None:
    """The function's syntax tree as text, for comparing code whatever its spacing and comments."""
    source = _source(function)
    tree = source and _parse(source[0])
    return ast.dump(tree.body[0]) if tree and tree.body else None


def _placeholder_lines(function) -> list[tuple[int, str, str]]:
    """(line number, line, the line after it) of each line of the function that holds a `...`.

    A `...` standing alone as a statement is compiled away, so it is looked for in the source."""
    source = _source(function)
    tree = source and _parse(source[0])
    if not (source and tree):
        return []
    lines, first = source
    numbers = sorted({node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value is ...})
    return [(first + n - 1, lines[n - 1].strip(), lines[n].strip() if n < len(lines) else "") for n in numbers]


def _describe(number: int, line: str, following: str, comments: dict[str, str]) -> str:
    comment = _COMMENT.search(line)
    what = comment.group(1) if comment else comments.get(line)  # the skeleton's comment, if the learner removed it
    if what:
        return f"line {number}, `{line}`, still has `...` where the code does this: {what}"
    if line.endswith(":") and following:  # `if ...:` - the block below says what the condition is for
        return f"line {number}, `{line}`, still has `...` (the line after it says what for: `{following}`)"
    return f"line {number}, `{line}`, still has `...`"


@cache
def _skeleton_comments(name: str) -> dict[str, str]:
    """The comment of each of the skeleton's lines with a `...`, by the line without it, where that line is unique."""
    found: dict[str, list[str | None]] = {}
    for line in skeletons().get(name, "").splitlines():
        if "..." in line:
            comment = _COMMENT.search(line)
            code = line[: comment.start()] if comment else line
            found.setdefault(code.strip(), []).append(comment and comment.group(1))
    return {code: comments[0] for code, comments in found.items() if len(comments) == 1 and comments[0]}


@cache
def _skeleton_definitions(name: str) -> dict[str, ast.AST]:
    """The functions and classes the task's skeleton defines, by name."""
    tree = ast.parse(skeletons().get(name, ""))
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}


_tried: set[str] = set()  # the tasks whose check ran an answer of the learner's in this kernel


def reveal(name: str) -> None:
    """Print the solution of task `name`, once the learner has tried it."""
    if name not in solutions():
        raise LearnerError(f"There is no task {name!r}; the tasks are {', '.join(map(repr, solutions()))}.")
    if name not in _tried:
        raise LearnerError(
            f"Try task {name!r} first: answer it in its cell and run its check. Then tasks.reveal({name!r}) shows "
            "the example answer."
        )
    print(solution(name), end="")


def forget_tries() -> None:
    """As in a fresh kernel: no task tried yet."""
    _tried.clear()


def check(name: str, checker: Callable[..., str], **answers: Any) -> Any:
    """Check the answers to task `name`; return them (one value, or a tuple in the order given).

    An untouched task takes the solution's answers, with a note saying so; a half-finished one is a
    wrong answer that points at what is left. `checker(**answers)` returns a sentence confirming
    the answer, or raises WrongAnswer with a hint.
    """
    if _task_cell_failed(answers):
        raise LearnerError(
            f"The cell above stopped with an error, so {', '.join(f'`{key}`' for key in answers)} may still be an "
            "older answer: fix the cell above first, run it, then this one."
        )
    if all(is_skeleton(name, key, answer) for key, answer in answers.items()):
        answers = _solution_instead(name, answers)
    else:
        _tried.add(name)
        left = [
            spot for key, answer in answers.items() if is_unanswered(answer) for spot in placeholders(name, key, answer)
        ]
        if left:
            raise WrongAnswer(
                f"Task {name!r} is not finished: " + "; ".join(left) + ". Fill it in and run both cells again."
            )
        try:
            print("✅ Right: " + checker(**answers))
        except WrongAnswer as wrong:
            raise WrongAnswer(f"{wrong} (Stuck? tasks.reveal({name!r}) shows the example answer.)") from None
        except Exception as error:
            where = learners_line(error, answers.values())
            if where is None:
                raise  # not in the learner's code: its traceback is what helps
            raise WrongAnswer(
                f"Your code stopped at {where}, with {type(error).__name__}: {error}. {_likely_cause(error)}Fix "
                "that line and run both cells again (%tb in a new cell shows the full traceback)."
            ) from error
    values = tuple(answers.values())
    return values[0] if len(values) == 1 else values


def _likely_cause(error: BaseException) -> str:
    """A sentence on the mistake behind a typical error, where the failing line is not the wrong one."""
    if isinstance(error, TypeError) and "'int' and 'datetime.timedelta'" in str(error):
        return (
            "Is an `hour` of yours `timestamp.hour`? That is the hour of the day, a number 0-23; the clock hour is "
            "`reading.timestamp.replace(minute=0, second=0, microsecond=0)`. "
        )
    return ""


def _task_cell_failed(answers: dict[str, Any]) -> bool:
    """Whether the cell run just before the check (in IPython) defines one of the answers and stopped with an
    error: then the names still hold what an earlier run gave them, and the check would judge that."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or shell.last_execution_succeeded or shell.last_execution_result is None:
        return False
    source = shell.last_execution_result.info.raw_cell or ""
    if "tasks.check(" in source:
        return False  # the check itself, run again
    return any(
        re.search(rf"^\s*(def|class)\s+{key}\b|^\s*{key}\s*(,[\w\s,]*)?=[^=]", source, re.MULTILINE) for key in answers
    )


def _solution_instead(name: str, answers: dict[str, Any]) -> dict[str, Any]:
    solved = solved_values(name)
    print(
        f"⏳ Task {name!r} is not answered yet: the rest of the notebook runs with the example answer. "
        f"Answer it and run both cells again (after a try, tasks.reveal({name!r}) shows the example)."
    )
    return {key: solved[key] for key in answers}
