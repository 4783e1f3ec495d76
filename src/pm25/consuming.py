"""What step 3's consumer loop needs besides Kafka itself: rebuilding state from the log,
knowing which readings were already acted on, and keeping alerts and rejected messages as data."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.serializer import Serializer

from pm25.detector import Alert
from pm25.errors import LearnerError
from pm25.files import write_csv

ALERT_COLUMNS = ["boxId", "boxName", "event", "timestamp", "mean", "n_hours"]
REJECTED_COLUMNS = ["topic", "partition", "offset", "reason", "value"]


class ReplayFromStart(ConsumerRebalanceListener):
    """Rebuild state by re-reading assigned partitions from their start; act only on what is new.

    The detector's windows are rebuilt by re-reading each partition from offset 0, so a restarted
    consumer knows the window of every box. Records below the group's committed offset were
    acted on (their alerts published) before the restart: `is_new` tells them apart, and `commit`
    never moves the committed offset back while the consumer re-reads what it already had.
    """

    def __init__(self, consumer: KafkaConsumer):
        self.consumer = consumer
        self._committed: dict[TopicPartition, int] = {}

    def on_partitions_assigned(self, assigned):
        # Runs on the consumer's network thread: no blocking calls here, so offsets are looked up later.
        self._committed.clear()
        self.consumer.seek_to_beginning(*assigned)

    def on_partitions_revoked(self, revoked):
        pass

    def committed(self, partition: TopicPartition) -> int:
        """The group's committed offset when the partition was assigned (0 for a new group)."""
        if partition not in self._committed:
            self._committed[partition] = self.consumer.committed(partition) or 0
        return self._committed[partition]

    def is_new(self, partition: TopicPartition, offset: int) -> bool:
        return offset >= self.committed(partition)

    def commit(self) -> None:
        """Commit how far we have read, but never less than what the group had committed already."""
        offsets = {
            partition: OffsetAndMetadata(max(self.consumer.position(partition), self.committed(partition)))
            for partition in self.consumer.assignment()
        }
        self.consumer.commit(offsets)


class IdleTimer:
    """Stop a poll loop after `seconds` without a new message, so the notebook ends by itself.

    The clock starts once the group has given the consumer its partitions: joining a group takes
    a few seconds, and that is not idleness. No partitions at all within `join_timeout_s` is an error.
    """

    def __init__(self, seconds: float, join_timeout_s: float = 60.0):
        self.seconds = seconds
        self.join_timeout_s = join_timeout_s
        self._started = self._last = time.monotonic()
        self._joined = False

    def observe(self, got_messages: bool, assigned: bool) -> None:
        """Call after every poll."""
        now = time.monotonic()
        if got_messages or not self._joined:
            self._last = now
        self._joined = self._joined or assigned
        if not self._joined and now - self._started > self.join_timeout_s:
            raise LearnerError(
                f"The consumer got no partitions within {self.join_timeout_s:.0f} s. "
                "Does the topic exist (run step 2 first), and is the broker running?"
            )

    @property
    def expired(self) -> bool:
        return self._joined and time.monotonic() - self._last > self.seconds


class AlertSerializer(Serializer):
    """value_serializer for the alerts topic: an Alert becomes its JSON object."""

    def serialize(self, topic, headers, data: Alert) -> bytes:
        return json.dumps(data.as_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Rejected:
    """Messages that break the contract, kept with the reason instead of stopping the consumer."""

    rows: list[dict] = field(default_factory=list)

    def add(self, record, reason: str) -> None:
        raw = record.value or b""
        self.rows.append(
            {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
                "value": raw[:200].decode("utf-8", errors="replace"),
            }
        )

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=REJECTED_COLUMNS)


def alerts_table(alerts: list[Alert]) -> pd.DataFrame:
    return pd.DataFrame([alert.as_dict() for alert in alerts], columns=ALERT_COLUMNS)


def write_outputs(output_dir: Path, alerts: list[Alert], rejected: Rejected, status: pd.DataFrame) -> list[Path]:
    """alerts.csv, rejected.csv and sensor_status.csv, each replaced in one step."""
    paths = [output_dir / "alerts.csv", output_dir / "rejected.csv", output_dir / "sensor_status.csv"]
    for path, table in zip(paths, (alerts_table(alerts), rejected.table(), status), strict=True):
        write_csv(path, table)
    return paths


def lag_table(kafka_options: dict, group_id: str, topic: str, timeout_s: float = 10.0) -> pd.DataFrame:
    """Per partition: the group's committed offset, the newest offset, and the lag between them.

    A consumer of its own reads the group's commits without joining the group, then fetches once from
    each committed offset: a fetch answer carries the partition's high watermark (the newest offset),
    which every broker reports exactly (the embedded broker's end_offsets() does not). Nothing is committed.
    """
    with KafkaConsumer(**kafka_options, group_id=group_id, enable_auto_commit=False) as consumer:
        partitions = [TopicPartition(topic, number) for number in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        committed = {partition: consumer.committed(partition) or 0 for partition in partitions}
        for partition, offset in committed.items():
            consumer.seek(partition, offset)
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(p) is None for p in partitions) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1)
        rows = [
            {"partition": p.partition, "committed": committed[p], "newest": consumer.highwater(p),
             "lag": consumer.highwater(p) - committed[p]}
            for p in partitions
        ]  # fmt: skip
    return pd.DataFrame(rows, columns=["partition", "committed", "newest", "lag"])
