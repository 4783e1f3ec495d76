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
from collections.abc import Iterable

import pandas as pd
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, TopicPartition

from pm25.data.contract import InvalidMessage, decode
from pm25.streaming.waiting import GroupError, wait_until_settled

# How long a member that stopped answering keeps its partitions, and on Tansu how long a group's first join
# waits for members: short, so a class sees the take-over within seconds (kafka-python's default is 45 s).
SESSION_TIMEOUT_MS = 6000
MEMBER_COLUMNS = ["member", "partition", "processed", "next offset", "boxes"]
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


def group_table(members: Iterable[GroupMember]) -> pd.DataFrame:
    """Each member's partitions: records processed, the next offset to read (committed), boxes seen.

    A partition just given to a member shows the group's committed offset it starts from."""
    table = pd.DataFrame([row for member in members for row in member.rows()], columns=MEMBER_COLUMNS)
    return table.astype({"partition": "Int64", "next offset": "Int64"})  # whole numbers; <NA> for a member without any
