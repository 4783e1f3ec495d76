"""Waiting for step 3b's consumer group to reach a state: settled (every partition shared out) or caught up.

A wait polls a condition until a deadline and, past a second, shows one line, rewritten in place, of what it
waits for and the group's state. In vain, it raises a GroupError saying who holds what and the way out: the
embedded broker of `make lab` freezes a group for good when a member leaves while another one joins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pandas as pd

from pm25.errors import LearnerError

if TYPE_CHECKING:
    from pm25.streaming.group import GroupMember

SETTLE_TIMEOUT_S = 60.0
PROGRESS_AFTER_S = 1.0  # a wait longer than this shows one line, updated in place, of what it waits for
PROGRESS_EVERY_S = 2.0
STUCK = (
    "If a member left while another joined, the embedded broker of `make lab` keeps the group frozen for good: "
    "run the cell that makes `group_id` again (a new group), then the members' cells; or restart `make lab`."
)


class GroupError(LearnerError, RuntimeError):
    """A member could not work, or the group did not reach the expected state in time."""


def settled(members: Iterable[GroupMember], partitions: int) -> bool:
    """Whether every running member has its share from the group's latest rebalance and knows where it starts,
    the shares cover every partition exactly once, and they differ by at most one partition. A member that just
    started has no share yet: until it has, the others' partitions are the old split."""
    running = [member for member in members if member.running]
    if not all(member.has_share() and member.knows_its_start() for member in running):
        return False
    owned = [member.partitions for member in running]
    numbers = [number for mine in owned for number in mine]
    counts = [len(mine) for mine in owned]
    return sorted(numbers) == list(range(partitions)) and max(counts) - min(counts) <= 1


def holders(members: Iterable[GroupMember]) -> str:
    """Who holds which partitions, e.g. "first has [0, 1, 2], second has none"."""
    held = [(member.name, member.partitions) for member in members if member.running]
    return ", ".join(f"{name} has {mine or 'none'}" for name, mine in held) or "no member runs"


def wait_until_settled(members: Iterable[GroupMember], what: str, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Return once the running members have shared every partition out (see `settled`); else a GroupError
    saying who holds what, why the group may be stuck and the way out."""
    members = list(members)
    running = [member for member in members if member.running]
    if not running:
        return
    partitions = _topic_partitions(running, timeout_s)
    wait_until(lambda: settled(members, partitions), what, timeout_s, lambda: holders(members))


def _topic_partitions(members: list[GroupMember], timeout_s: float) -> int:
    wait_until(
        lambda: all(m.topic_partitions is not None or not m.running for m in members), "the members to start", timeout_s
    )
    return max(member.topic_partitions or 0 for member in members)


def wait_until_caught_up(lag: Callable[[], pd.DataFrame], what: str, timeout_s: float) -> None:
    """Return once lag() is 0 on every partition, showing the group's total lag while it waits."""
    total: dict[str, int] = {}  # the lag seen by the latest check, for the progress line

    def caught_up() -> bool:
        total["lag"] = int(lag()["lag"].sum())
        return total["lag"] == 0

    wait_until(caught_up, what, timeout_s, lambda: f"lag {total['lag']:,}")


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = SETTLE_TIMEOUT_S,
    state: Callable[[], str] | None = None,
) -> None:
    """Return once condition() holds; a GroupError naming `what`, the state and the way out if not within timeout_s.

    A wait of more than PROGRESS_AFTER_S shows one line, rewritten every PROGRESS_EVERY_S: what it waits for,
    for how long, and the state."""
    start = time.monotonic()
    progress = _Progress(what, start, state)
    while not condition():
        if time.monotonic() > start + timeout_s:
            progress.end()
            now = f" ({state()})" if state else ""
            raise GroupError(f"Waited {timeout_s:.0f} s for {what}, in vain{now}. {STUCK}")
        progress.show(time.monotonic())
        time.sleep(0.1)  # how often the condition is looked at; nothing depends on this pause
    progress.end(f"Waited {time.monotonic() - start:.0f} s for {what}: done.")


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
