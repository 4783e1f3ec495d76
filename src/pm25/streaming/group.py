"""Consumer-group members that a notebook starts and stops, to watch Kafka share partitions among them.

Each GroupMember is an ordinary KafkaConsumer of the group, polling in a background thread of the
notebook's kernel: to the broker it is a member like any other process, and the notebook can show
every member's partitions and offsets side by side while they work. Stopping a member closes its
consumer, which tells the group it left; the group then hands its partitions to the others.

A member leaves only once its group has settled: the embedded broker of `make lab` freezes a group for
good when a member (its leader) leaves while another one joins. One member per name runs in a kernel:
starting a member again (a cell run twice) first stops the earlier one.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

import pandas as pd
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, TopicPartition

from pm25.data.contract import InvalidMessage, decode
from pm25.errors import LearnerError

# How long a member that stopped answering keeps its partitions, and on Tansu how long a group's first join
# waits for members: short, so a class sees the take-over within seconds (kafka-python's default is 45 s).
SESSION_TIMEOUT_MS = 6000
MEMBER_COLUMNS = ["member", "partition", "processed", "next offset", "boxes"]
SETTLE_TIMEOUT_S = 60.0
PROGRESS_AFTER_S = 1.0  # a wait longer than this shows one line, updated in place, of what it waits for
PROGRESS_EVERY_S = 2.0
STUCK = (
    "If a member left while another joined, the embedded broker of `make lab` keeps the group frozen for good: "
    "run the cell that makes `group_id` again (a new group), then the members' cells; or restart `make lab`."
)
_members: dict[str, GroupMember] = {}  # the members started in this kernel, by name


def work_ms_per_record() -> float:
    """The pretended work per record in ms: PM25_WORK_MS_PER_RECORD, 0.5 by default (tests set 0)."""
    text = os.environ.get("PM25_WORK_MS_PER_RECORD", "0.5")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1000:
        raise GroupError(f"PM25_WORK_MS_PER_RECORD={text!r} is not a number of milliseconds from 0 to 1000.")
    return value


class GroupError(LearnerError, RuntimeError):
    """A member could not work, or the group did not reach the expected state in time."""


def require_topic(kafka_options: dict, topic: str) -> int:
    """The topic's number of partitions; a clear error if it does not exist (run step 2 first)."""
    with KafkaAdminClient(**kafka_options) as admin:
        if topic not in admin.list_topics():  # asked before subscribing: a consumer's request could create it
            raise GroupError(f"The topic {topic!r} does not exist yet: run step 2 first, which creates and fills it.")
        return len(admin.describe_topics([topic])[0]["partitions"])


class GroupMember(ConsumerRebalanceListener):
    """One member of consumer group `group_id` on `topic`: polls, processes each record, commits after.

    Processing a record here means reading it and counting it per partition and box: enough to see
    who handled what. `work_ms` pretends each record takes that long to process, so that a topic of
    100,000 readings takes about a minute, not a second, and the group's members can be watched at work.
    The rebalance callbacks record which partitions the group gave this member.
    """

    def __init__(self, name: str, kafka_options: dict, topic: str, group_id: str, work_ms: float = 0.0):
        self.name, self.topic, self.group_id = name, topic, group_id
        self._work_s = work_ms / 1000
        self._kafka_options = kafka_options
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"group member {name}", daemon=True)
        self._partitions: list[int] = []
        self._has_share = False  # the group gave it its share (maybe none) since it joined or the last revocation
        self._next_offsets: dict[int, int] = {}
        self._counts: Counter = Counter()
        self._boxes: dict[int, set[str]] = {}
        self._processed: set[tuple[int, int]] = set()
        self._error: BaseException | None = None
        self.topic_partitions: int | None = None  # known once the consumer runs

    def start(self) -> GroupMember:
        """Start polling; an earlier member of the same name in this kernel is stopped first (a cell run again)."""
        earlier = _members.get(self.name)
        if earlier is not None and earlier is not self and earlier.running:
            earlier.stop(wait_for_group=earlier.group_id == self.group_id)
            print(f"Stopped the earlier member {self.name!r} (of group {earlier.group_id}) before starting this one.")
        _members[self.name] = self
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0, wait_for_group: bool = True) -> None:
        """Wait until the group has settled, then commit, leave the group and end the thread: the group gives
        this member's partitions to the others. Without waiting, leaving mid-rebalance could freeze the group."""
        if wait_for_group and self.running:
            mates = [member for member in _members.values() if member.group_id == self.group_id]
            wait_until_settled(mates, f"the group to settle before {self.name!r} leaves it")
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise GroupError(f"Member {self.name!r} did not stop within {timeout_s:.0f} s.")
        self._raise_if_failed()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def partitions(self) -> list[int]:
        """The partitions the group gave this member (empty while it joins, and once it stopped)."""
        self._raise_if_failed()
        with self._lock:
            return list(self._partitions)

    def has_share(self) -> bool:
        """Whether the group has given this member its share since it joined (not while a rebalance runs)."""
        with self._lock:
            return self._has_share

    def knows_its_start(self) -> bool:
        """Whether it has looked up where it starts on each of its partitions (not yet right after a rebalance)."""
        with self._lock:
            return all(number in self._next_offsets for number in self._partitions)

    @property
    def processed(self) -> set[tuple[int, int]]:
        """(partition, offset) of every record this member processed."""
        with self._lock:
            return set(self._processed)

    def rows(self) -> list[dict]:
        """One row per partition this member owns or has processed records of."""
        with self._lock:
            numbers = sorted(set(self._partitions) | set(self._counts))
            return [
                {
                    "member": self.name + ("" if number in self._partitions else " (no longer)"),
                    "partition": number,
                    "processed": self._counts[number],
                    "next offset": self._next_offsets.get(number),
                    "boxes": len(self._boxes.get(number, ())),
                }
                for number in numbers
            ] or [
                {
                    "member": self.name + " (no partition)",
                    "partition": None,
                    "processed": 0,
                    "next offset": None,
                    "boxes": 0,
                }
            ]

    # ConsumerRebalanceListener: called inside poll(), on this member's thread.
    def on_partitions_revoked(self, revoked):
        with self._lock:
            self._partitions, self._has_share = [], False

    def on_partitions_assigned(self, assigned):
        with self._lock:
            self._partitions, self._has_share = sorted(tp.partition for tp in assigned), True
            for tp in assigned:  # another member may have gone on since: the position is looked up after poll()
                self._next_offsets.pop(tp.partition, None)

    def _run(self) -> None:
        try:
            consumer = KafkaConsumer(
                **self._kafka_options,
                group_id=self.group_id,
                client_id=f"pm25-{self.name}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=SESSION_TIMEOUT_MS,
            )
        except BaseException as error:
            self._error = error
            return
        try:
            self.topic_partitions = len(consumer.partitions_for_topic(self.topic) or ())
            consumer.subscribe([self.topic], listener=self)
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self._process(record)
                if batch:
                    consumer.commit()  # after processing: a crash before this re-reads, never loses
                self._note_start_offsets(consumer)
        except BaseException as error:
            self._error = error
        finally:
            consumer.close()  # leaves the group at once, so the others need not wait for a time-out
            with self._lock:
                self._partitions = []

    def _note_start_offsets(self, consumer: KafkaConsumer) -> None:
        """For a partition just given to this member: where it starts, i.e. the group's committed offset."""
        with self._lock:
            waiting = [number for number in self._partitions if number not in self._next_offsets]
        for number in waiting:
            offset = consumer.position(TopicPartition(self.topic, number))
            with self._lock:
                self._next_offsets.setdefault(number, offset)

    def _process(self, record) -> None:
        if self._work_s:
            time.sleep(self._work_s)  # the pretended work on this record, not a wait for anything
        try:
            box = decode(record.value).box_name
        except InvalidMessage:
            box = "(not a reading)"
        with self._lock:
            self._counts[record.partition] += 1
            self._boxes.setdefault(record.partition, set()).add(box)
            self._next_offsets[record.partition] = record.offset + 1
            self._processed.add((record.partition, record.offset))

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise GroupError(f"Member {self.name!r} stopped: {self._error}") from self._error


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


def check_split(prediction, members: Iterable[GroupMember]) -> str:
    """One line comparing the learner's predicted split (partitions per member, e.g. [2, 1]) with the group's."""
    members = [member for member in members if member.running]
    counts = [len(member.partitions) for member in members]
    shares = ", ".join(f"{member.name} {member.partitions}" for member in members)
    if prediction is ... or prediction is None:
        return f"No prediction written. The group gave {shares}."
    try:
        as_written = [int(count) for count in prediction]
    except (TypeError, ValueError):
        return f"Write the prediction as one number per member, e.g. [2, 1]. The group gave {shares}."
    predicted = sorted(as_written, reverse=True)
    if predicted == sorted(counts, reverse=True):
        whose = "" if as_written == counts else " (which member gets how many is the group's choice)"
        return f"✅ As you predicted: {shares}{whose}."
    return (
        f"❌ You predicted {predicted}; the group gave {shares}: it shares the partitions out as evenly as it "
        "can, and each partition has exactly one owner in the group. Change `split`, run it, then this cell "
        "again."
    )


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


def group_table(members: Iterable[GroupMember]) -> pd.DataFrame:
    """Each member's partitions: records processed, the next offset to read (committed), boxes seen.

    A partition just given to a member shows the group's committed offset it starts from."""
    table = pd.DataFrame([row for member in members for row in member.rows()], columns=MEMBER_COLUMNS)
    return table.astype({"partition": "Int64", "next offset": "Int64"})  # whole numbers; <NA> for a member without any
