"""Step 4 with processing_guarantee="exactly-once" on real Kafka: one instance SIGKILLed mid-stream, the
alerts read with read_committed are exactly those of one uninterrupted instance, none twice."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from pm25.polling import wait_until
from pm25.streaming.quix_instances import Instance, committed, start_instance
from pm25.streaming.stream_processor import DailyMeanRule, prepare_readings_topic
from tests.faults.support import committed_total, create_topic, produce, random_walk_stream

pytestmark = pytest.mark.realkafka

# 24 boxes, one reading every 5 minutes for 2 days: 13,824 readings.
BOXES, STEPS, EVERY = 24, 2 * 24 * 12, timedelta(minutes=5)


def start_exactly_once(name: str, group: str, work_dir: Path, alert_topic: str, env: dict[str, str]) -> Instance:
    """`start_instance` with --exactly-once (transactions) and a 20 s idle time-out."""
    return start_instance(name, group, work_dir, DailyMeanRule(), alert_topic, 20, env, exactly_once=True)


def create_alert_topic(bootstrap_servers: str, name: str) -> None:
    """Kept for good: the alerts carry the readings' 2024 timestamps, which a real broker deletes after
    retention.ms (7 days by default) at its next retention check, the embedded broker never."""
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics([NewTopic(name, 1, 1, topic_configs={"retention.ms": "-1"})])


def committed_alerts(bootstrap_servers: str, topic: str) -> list[dict]:
    """Every committed alert, read up to each partition's end (not until a quiet spell)."""
    with KafkaConsumer(
        bootstrap_servers=bootstrap_servers, isolation_level="read_committed", enable_auto_commit=False
    ) as consumer:
        numbers = wait_until(lambda: consumer.partitions_for_topic(topic), 30, f"topic {topic} to exist")
        partitions = [TopicPartition(topic, number) for number in numbers]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends, records, deadline = consumer.end_offsets(partitions), [], time.monotonic() + 60
        while any(consumer.position(p) < ends[p] for p in partitions):
            assert time.monotonic() < deadline, f"{topic}: read {len(records)} alerts, not to the end {ends}"
            records += [record for batch in consumer.poll(timeout_ms=1000).values() for record in batch]
    return [json.loads(record.value) for record in records]


def keys(messages: list[dict]) -> list[tuple]:
    return [(m["boxId"], m["event"], m["timestamp"]) for m in messages]


def test_exactly_once_a_killed_instance_gives_no_duplicate_and_no_missing_alert(
    bootstrap_servers, topic, tmp_path, report
):
    create_topic(bootstrap_servers, topic)
    readings = random_walk_stream(BOXES, STEPS, seed=16, every=EVERY)
    produce(bootstrap_servers, topic, readings)
    prepare_readings_topic({"bootstrap_servers": bootstrap_servers}, topic)
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "PM25_TOPIC": topic}
    kafka = {"bootstrap_servers": bootstrap_servers}
    for alert_topic in (f"{topic}_single", f"{topic}_pair"):
        create_alert_topic(bootstrap_servers, alert_topic)
    started = []
    try:
        began = time.monotonic()
        single = start_exactly_once("single", f"{topic}_single", tmp_path, f"{topic}_single", env)
        started.append(single)
        assert single.wait(timeout_s=300) == 0, single.log.read_text()[-3000:]
        single_s = time.monotonic() - began  # includes the 20 s idle time-out at the end
        expected = keys(committed_alerts(bootstrap_servers, f"{topic}_single"))
        assert len(expected) > 20 and len(expected) == len(set(expected))

        group = f"{topic}_pair"
        killed = start_exactly_once("first", group, tmp_path, f"{topic}_pair", env)
        started.append(killed)
        wait_until(lambda: all(committed(kafka, group, topic).values()), 120, "the first instance to commit everywhere")
        survivor = start_exactly_once("second", group, tmp_path, f"{topic}_pair", env)
        started.append(survivor)
        wait_until(survivor.restores, 120, "the second instance to take partitions over")
        assert killed.running, "the first instance finished before it could be killed: make the stream longer"
        killed.kill()
        assert survivor.wait(timeout_s=300) == 0, survivor.log.read_text()[-3000:]
    finally:
        for instance in started:
            if instance.running:
                instance.kill()
    published = keys(committed_alerts(bootstrap_servers, f"{topic}_pair"))
    duplicates = len(published) - len(set(published))
    missing = set(expected) - set(published)
    report(
        f"[realkafka exactly-once] readings {len(readings)}, alerts expected {len(expected)}, "
        f"read_committed {len(published)}: duplicates {duplicates}, missing {len(missing)}, "
        f"extra {len(set(published) - set(expected))}; one instance took {single_s:.0f} s "
        f"({len(readings) / max(single_s - 20, 1):.0f} readings/s without its 20 s idle time-out)"
    )
    assert duplicates == 0 and not missing and set(published) == set(expected)
    assert committed_total(bootstrap_servers, group, topic) == len(readings)
