"""Waiting for step 3b's consumer group to reach a state: settled (every partition shared out) or caught up.

Each wait is `pm25.polling.wait_until`, which shows past a second what it waits for and the group's state. In
vain, it raises a GroupError saying who holds what and the way out: the embedded broker of `make lab` freezes
a group for good when a member leaves while another one joins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pandas as pd

from pm25.errors import LearnerError
from pm25.polling import WaitedInVain, wait_until

if TYPE_CHECKING:
    from pm25.streaming.group import GroupMember

SETTLE_TIMEOUT_S = 60.0
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
    _wait(lambda: settled(members, partitions), what, timeout_s, lambda: holders(members))


def _topic_partitions(members: list[GroupMember], timeout_s: float) -> int:
    _wait(
        lambda: all(m.topic_partitions is not None or not m.running for m in members), "the members to start", timeout_s
    )
    return max(member.topic_partitions or 0 for member in members)


def wait_until_caught_up(lag: Callable[[], pd.DataFrame], what: str, timeout_s: float) -> None:
    """Return once lag() is 0 on every partition, showing the group's total lag while it waits."""
    total: dict[str, int] = {}  # the lag seen by the latest check, for the progress line

    def caught_up() -> bool:
        total["lag"] = int(lag()["lag"].sum())
        return total["lag"] == 0

    _wait(caught_up, what, timeout_s, lambda: f"lag {total['lag']:,}")


def _wait(condition: Callable[[], bool], what: str, timeout_s: float, state: Callable[[], str] | None = None) -> None:
    try:
        wait_until(condition, timeout_s, what, state)
    except WaitedInVain as error:
        raise GroupError(f"{error} {STUCK}") from None
