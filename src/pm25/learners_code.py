"""Where the learner's own code is in a traceback: the line to name in a one-line error, instead of the package's
frames. Used by the task checks (pm25.learning.tasks) and by step 3's stream (pm25.streaming.poll_loop)."""

from __future__ import annotations

import inspect
import linecache
from collections.abc import Iterable
from typing import Any


def methods(cls: type) -> dict[str, Any]:
    """A class's own functions, by name."""
    return {name: member for name, member in vars(cls).items() if inspect.isfunction(member)}


def code_objects(answer: Any) -> list:
    """The code of a function, of a class's methods, and of what they define inside (lambdas, comprehensions)."""
    functions = methods(answer).values() if inspect.isclass(answer) else [answer]
    found, todo = [], [function.__code__ for function in functions if inspect.isfunction(function)]
    while todo:
        code = todo.pop()
        found.append(code)
        todo += [const for const in code.co_consts if inspect.iscode(const)]
    return found


def learners_line(error: BaseException, answers: Iterable[Any]) -> str | None:
    """Where in the learner's own code `error` was raised (or called what raised it): "line N of its cell, `code`"."""
    codes = {code for answer in answers for code in code_objects(answer)}
    frame = None
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code in codes:
            frame = trace
        trace = trace.tb_next
    if frame is None:
        return None
    line = linecache.getline(frame.tb_frame.f_code.co_filename, frame.tb_lineno).strip()
    return f"line {frame.tb_lineno} of its cell" + (f", `{line}`" if line else "")
