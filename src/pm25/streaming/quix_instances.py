"""Step 4's instances as processes, and what the notebook reads back about them from Kafka.

The application itself is `pm25.streaming.stream_processor`; this module starts instances of it (`start_instance`),
kills or stops them, and reads their alerts, committed offsets and changelog topics. `CutTopic` cuts a topic
so that the kill demo has work left that decides alerts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pm25.data.contract import InvalidMessage, decode, format_timestamp, parse_timestamp
from pm25.errors import LearnerError
from pm25.streaming.stream_processor import ALERT_FIELDS, DailyMeanRule, changelog_store


def describe(event: dict) -> str:
    """One of an instance's reports (see `report`) as a sentence."""
    if event["event"] == "restored":
        return (
            f"restored the state of partition(s) {event['partitions']} from the changelog "
            f"({len(event['stores'])} state stores) in {event['seconds']:.2f} s"
        )
    if event["event"] == "finished":
        return f"finished, readings: {event['counts']}"
    return event["event"]


@dataclass
class Instance:
    """One instance of the application, running as its own process; its output goes to a log file."""

    name: str
    process: subprocess.Popen
    log: Path
    state_dir: Path

    def partitions(self) -> list[int]:
        """The partitions this instance has been given so far: Quix opens a state folder for each."""
        return sorted({int(folder.name) for folder in self.state_dir.glob("*/*/*/*") if folder.name.isdigit()})

    def events(self) -> list[dict]:
        """What the instance reported so far (see `report`)."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith('{"event"')]

    def restores(self) -> list[dict]:
        """Each time this instance restored state from the changelog: which partitions, how long it took."""
        return [event for event in self.events() if event["event"] == "restored"]

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last commit, as when a machine dies. A LearnerError if it has ended already:
        the cell that kills it ran before, and running on would send the rest of the readings twice."""
        if not self.running:
            raise LearnerError(
                f"Instance {self.name} has ended already (exit code {self.process.returncode}): this cell ran "
                "before. To see a kill again, run the cells again from the one that makes the pair's topics."
            )
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM: Quix stops gracefully (commits, leaves the group); the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def wait(self, timeout_s: float) -> int:
        """Wait until the instance stops by itself (it does after its idle timeout); its exit code."""
        return self.process.wait(timeout=timeout_s)


_started: dict[str, Instance] = {}  # the latest instance of each name, for start_instance's clean-up


def start_instance(
    name: str,
    group: str,
    work_dir: Path,
    rule: DailyMeanRule,
    alert_topic: str,
    idle_timeout_s: float = 10.0,
    env: dict[str, str] | None = None,
    exactly_once: bool = False,
) -> Instance:
    """Start `python -m pm25.streaming.stream_processor` for one instance: state in work_dir/name, log in
    work_dir/name.log. An instance of this name started earlier and still running (its cell was stopped or
    run again) is stopped first, so that no forgotten process keeps working."""
    if (earlier := _started.get(name)) is not None and earlier.running:
        print(f"Stopped instance {name} of an earlier run (exit code {earlier.stop()}).")
    work_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pm25.streaming.stream_processor",
        "--group",
        group,
        "--state-dir",
        str(work_dir / name),
        "--alert-topic",
        alert_topic,
        "--threshold",
        str(rule.threshold),
        "--window-hours",
        str(rule.window_hours),
        "--min-hours",
        str(rule.min_hours),
        "--idle-timeout-s",
        str(idle_timeout_s),
        *(["--exactly-once"] if exactly_once else []),  # transactions: needs a real Kafka
    ]
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    log = work_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    _started[name] = Instance(name, process, log, work_dir / name)
    return _started[name]


def check_unused(kafka_options: dict, group: str, topic: str) -> None:
    """A LearnerError if `group` has committed on `topic` already: the cell that starts the pair ran before
    (stopped or run twice), and a pair that starts half-way through proves nothing."""
    if any(committed(kafka_options, group, topic).values()):
        raise LearnerError(
            f"Group {group!r} has read {topic!r} before: this cell ran already. Run the cell that makes the "
            "pair's topics again (it makes new ones and a new group), then this cell."
        )


def read_topic(kafka_options: dict, topic: str, quiet_s: float = 2.0, deadline_s: float = 120.0) -> list:
    """Every record of a topic, from the start until nothing new comes for `quiet_s` seconds; none if it is missing."""
    # read_committed: with exactly-once, what a killed instance's open transaction wrote is never shown.
    with KafkaConsumer(**kafka_options, enable_auto_commit=False, isolation_level="read_committed") as consumer:
        partitions = [TopicPartition(topic, number) for number in consumer.partitions_for_topic(topic)]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records, deadline = [], time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=int(quiet_s * 1000))
            if not batch:
                break
            records += [record for part in batch.values() for record in part]
    return records


def read_alerts(kafka_options: dict, topic: str) -> pd.DataFrame:
    """The alerts topic as a table, in the order of each partition."""
    rows = [json.loads(record.value) for record in read_topic(kafka_options, topic)]
    return pd.DataFrame(rows, columns=ALERT_FIELDS)


@dataclass
class CutTopic:
    """A topic's records per partition, in offset order, cut in three parts for the kill demo of step 4.

    Each partition is cut at its first reading that decided an alert (half-way if none did): `early` and
    `middle` are the two halves before that cut, `after_kill` the rest. Sent in this order into a fresh topic
    of as many partitions (`early` before the first instance starts, `middle` once the second has joined, so
    both write state, `after_kill` once one was killed), they give the same alerts as the original, and the
    readings that decide them are still ahead of the instance that dies: the survivor must decide them."""

    early: dict[int, list]
    middle: dict[int, list]
    after_kill: dict[int, list]
    # (boxId, alert timestamp H) -> (boxId, timestamp) of the reading that decided it: the box's first in hour H.
    deciding: dict[tuple[str, str], tuple[str, str]]

    def __len__(self) -> int:
        return sum(len(records) for part in (self.early, self.middle, self.after_kill) for records in part.values())

    @classmethod
    def at_first_alerts(cls, records: list, alerts: pd.DataFrame) -> CutTopic:
        """The records of a topic cut where each partition's first reading that decided one of `alerts` is."""
        by_partition: dict[int, list] = {}
        first_in_hour: dict[tuple[str, str], tuple[str, str]] = {}
        for record in sorted(records, key=lambda record: (record.partition, record.offset)):
            by_partition.setdefault(record.partition, []).append(record)
            if key := _box_and_time(record):
                first_in_hour.setdefault((key[0], _clock_hour(key[1])), key)
        wanted = set(zip(alerts["boxId"], alerts["timestamp"], strict=True))
        deciding = {alert: first_in_hour[alert] for alert in wanted if alert in first_in_hour}
        decided_by = set(deciding.values())
        early, middle, after_kill = {}, {}, {}
        for number, mine in by_partition.items():
            cut = next((at for at, record in enumerate(mine) if _box_and_time(record) in decided_by), len(mine) // 2)
            half = max(cut // 2, 1)  # every partition gets readings before the second instance joins: state
            cut = max(cut, half)
            early[number], middle[number], after_kill[number] = mine[:half], mine[half:cut], mine[cut:]
        return cls(early, middle, after_kill, deciding)

    def before_kill(self) -> dict[int, int]:
        """Per partition, how many readings are sent before the kill (the offset the rest starts at)."""
        return {number: len(self.early[number]) + len(self.middle[number]) for number in self.early}

    def left_over(self, committed: dict[int, int], partitions: list[int]) -> list[tuple[str, str]]:
        """(boxId, timestamp) of each reading on `partitions` at or after the group's committed offset there
        (offsets of the fresh topic the parts were sent into, in order)."""
        every = {number: self.early[number] + self.middle[number] + self.after_kill[number] for number in partitions}
        left = [every[number][committed[number] :] for number in partitions]
        return [key for records in left for record in records if (key := _box_and_time(record))]

    def decide(self, alerts: pd.DataFrame, readings: list[tuple[str, str]]) -> pd.DataFrame:
        """The alerts that these readings decided (each alert once)."""
        wanted = set(readings)
        keys = zip(alerts["boxId"], alerts["timestamp"], strict=True)
        decided = [self.deciding.get(key) in wanted for key in keys]
        return alerts[decided].drop_duplicates(["boxId", "event", "timestamp"])


def _clock_hour(timestamp: str) -> str:
    """The start of the clock hour of a timestamp the project wrote, written the same way (an alert's time)."""
    return format_timestamp(parse_timestamp(timestamp).replace(minute=0, second=0, microsecond=0))


def _box_and_time(record) -> tuple[str, str] | None:
    try:
        reading = decode(record.value)
    except InvalidMessage:
        return None
    return reading.box_id, format_timestamp(reading.timestamp)


def send_records(kafka_options: dict, topic: str, parts: dict[int, list]) -> int:
    """Send the records to the same partitions of `topic`, in order; how many. A LearnerError if any failed."""
    records = [record for number in sorted(parts) for record in parts[number]]
    with KafkaProducer(**kafka_options, max_in_flight_requests_per_connection=1) as producer:  # 1: order kept
        futures = [
            producer.send(
                topic, key=record.key, value=record.value, partition=record.partition, timestamp_ms=record.timestamp
            )
            for record in records
        ]
        producer.flush(timeout=60)
    if failed := sum(not future.succeeded() for future in futures):
        raise LearnerError(f"{failed} of {len(records)} readings were not acknowledged by the broker: is it running?")
    return len(records)


def changelog_topics(kafka_options: dict, group: str) -> pd.DataFrame:
    """The changelog topics Quix made for this group's state: the state store each keeps, messages and bytes."""
    with KafkaAdminClient(**kafka_options) as admin:
        names = sorted(name for name in admin.list_topics() if name.startswith("changelog__") and group in name)
    rows = []
    for name in names:
        records = read_topic(kafka_options, name, quiet_s=1.0)
        size = sum(len(record.key or b"") + len(record.value or b"") for record in records)
        rows.append({"store": changelog_store(name), "messages": len(records), "bytes": size, "topic": name})
    return pd.DataFrame(rows, columns=["store", "messages", "bytes", "topic"])


def committed(kafka_options: dict, group: str, topic: str) -> dict[int, int]:
    """Per partition of the topic, how many messages the group has committed as processed."""
    with KafkaConsumer(**kafka_options, group_id=group, enable_auto_commit=False) as consumer:
        partitions = sorted(consumer.partitions_for_topic(topic) or [])
        return {number: consumer.committed(TopicPartition(topic, number)) or 0 for number in partitions}


def compare_with_step3(quix: pd.DataFrame, step3_csv: Path) -> pd.DataFrame:
    """Both runs' alerts side by side, matched on (boxId, event, timestamp); `same` says whether they agree."""
    if not step3_csv.exists():
        raise LearnerError(f"{step3_csv} does not exist yet: run step 3 first, then compare.")
    step3 = pd.read_csv(step3_csv, dtype={"timestamp": str})
    keys = ["boxId", "event", "timestamp"]
    table = step3[[*keys, "mean"]].merge(
        quix[[*keys, "mean"]].drop_duplicates(keys), on=keys, how="outer", suffixes=("_step3", "_quix"), indicator=True
    )
    table["same"] = (table["_merge"] == "both") & ((table["mean_step3"] - table["mean_quix"]).abs() <= 1e-9)
    return table.drop(columns="_merge")
