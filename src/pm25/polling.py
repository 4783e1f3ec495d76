"""Waiting on a condition with a deadline: the one wait helper of the package, the notebooks and the tests.

Nothing waits for a fixed time: a wait looks at its condition, often at first and then every `every_s` (half
a second: a condition may cost a request to the broker), and ends as soon as it holds. Past a second, it shows
one line, rewritten in place, of what it waits for and for how long.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pm25.errors import LearnerError

T = TypeVar("T")

FIRST_PAUSE_S = 0.02
PROGRESS_AFTER_S = 1.0  # a wait longer than this shows one line, updated in place, of what it waits for
PROGRESS_EVERY_S = 2.0


class WaitedInVain(LearnerError, TimeoutError):
    """The condition did not hold within the deadline."""


def wait_until(
    condition: Callable[[], T | None],
    timeout_s: float,
    what: str,
    state: Callable[[], str] | None = None,
    every_s: float = 0.5,
) -> T:
    """Return condition()'s value once it is true; WaitedInVain naming `what` (and `state()`) after timeout_s.

    `state` says, in the progress line and the error, where things stand (e.g. "lag 1,200"). The pause between
    looks doubles from FIRST_PAUSE_S up to `every_s`; 0 for a condition that waits by itself (a poll)."""
    start = time.monotonic()
    progress = _Progress(what, start, state)
    pause = min(FIRST_PAUSE_S, every_s)
    try:
        while not (value := condition()):
            if time.monotonic() > start + timeout_s:
                now = f" ({state()})" if state else ""
                raise WaitedInVain(f"Waited {timeout_s:.0f} s for {what}, in vain{now}.")
            progress.show(time.monotonic())
            time.sleep(pause)  # how often the condition is looked at; nothing depends on this pause
            pause = min(2 * pause, every_s)
    except BaseException:  # in vain, the condition's own error or an interrupt: end the line before the error
        progress.end()
        raise
    progress.end(f"Waited {time.monotonic() - start:.0f} s for {what}: done.")
    return value


class _Progress:
    """One line that says what a wait waits for, rewritten in place ("\\r"), ended by a line break."""

    def __init__(self, what: str, start: float, state: Callable[[], str] | None):
        self.what, self.start, self.state = what, start, state
        self.shown_at: float | None = None
        self.width = 0

    def show(self, now: float) -> None:
        due = self.start + PROGRESS_AFTER_S if self.shown_at is None else self.shown_at + PROGRESS_EVERY_S
        if now < due:
            return
        state = f" ({self.state()})" if self.state else ""
        self._write(f"Waiting for {self.what}: {now - self.start:.0f} s{state}")
        self.shown_at = now

    def end(self, last_line: str = "") -> None:
        """Done (or given up): the last line, if a line was shown, then a line break."""
        if self.shown_at is not None:
            if last_line:
                self._write(last_line)
            print(flush=True)

    def _write(self, line: str) -> None:
        print("\r" + line.ljust(self.width), end="", flush=True)  # pads out the longer line it replaces
        self.width = len(line)
