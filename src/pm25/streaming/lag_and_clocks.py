"""Looks at a topic from outside the group, committing nothing: lag_table() compares a group's committed
offsets with the newest ones, read_clocks() reads every reading's two clocks (arrival and event time)."""

from __future__ import annotations

import contextlib
import time

import pandas as pd
from kafka import KafkaConsumer, TopicPartition

from pm25.data import contract
from pm25.streaming.codec import decode


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
            {
                "partition": p.partition,
                "committed": committed[p],
                "newest": consumer.highwater(p),
                "lag": consumer.highwater(p) - committed[p],
            }
            for p in partitions
        ]
    return pd.DataFrame(rows, columns=["partition", "committed", "newest", "lag"])


def read_clocks(kafka_options: dict, topic: str, timeout_s: float = 60.0) -> pd.DataFrame:
    """Every reading on the topic with its two clocks: `arrival`, when Kafka got the message (the record's
    timestamp), and `event`, when the sensor measured it (the reading's timestamp). Messages that break the
    contract are left out. Reads without a group, so nothing is committed; stops at the newest offset."""
    arrival, event = [], []
    with KafkaConsumer(**kafka_options, enable_auto_commit=False, fetch_max_wait_ms=100) as consumer:
        partitions = [TopicPartition(topic, number) for number in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        deadline, complete = time.monotonic() + timeout_s, False
        while not complete and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    with contextlib.suppress(contract.InvalidMessage):
                        event.append(decode(record).timestamp)
                        arrival.append(record.timestamp)
            complete = all(
                consumer.highwater(p) is not None and consumer.position(p) >= consumer.highwater(p) for p in partitions
            )
    if not complete:
        print(f"Read {len(event):,} readings of {topic!r} in {timeout_s:g} s; the topic holds more.")
    elif not event:
        print(f"The topic {topic!r} holds no reading that keeps the contract: nothing to count.")
    arrival_times = pd.to_datetime(arrival, unit="ms", utc=True)
    return pd.DataFrame({"arrival": arrival_times, "event": pd.to_datetime(event, utc=True, format="ISO8601")})
