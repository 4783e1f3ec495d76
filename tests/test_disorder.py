"""Disorder on purpose: readings sent late and twice move the detector's counters, never its alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from pm25 import config, consuming, contract, producing, topics
from pm25.broker import EmbeddedBroker
from pm25.detector import Detector

START = datetime(2024, 1, 15, tzinfo=UTC)


def stream(boxes: int = 4, days: int = 4) -> list[contract.Reading]:
    """Readings every 20 minutes in time order; box i's air turns bad on day 1 and clean again on day 3."""
    readings = []
    for step in range(days * 24 * 3):
        moment = START + timedelta(minutes=20 * step)
        for box in range(boxes):
            bad = 24 * (1 + box % 2) <= step / 3 < 72
            value = 30.0 + box if bad else 5.0 + box
            readings.append(contract.Reading(f"{box:024x}", f"Box {box}", "b" * 24, 52.5, 13.4, moment, value))
    return readings


def run(readings) -> tuple[list, dict]:
    detector = Detector()
    return [alert for alert in map(detector.process, readings) if alert], detector.counts


def test_late_and_duplicate_copies_move_the_counters_and_leave_the_alerts_unchanged():
    readings = stream()
    orderly_alerts, orderly_counts = run(readings)
    disorder = producing.Disorder(late_share=0.1, duplicate_share=0.1)
    disordered_alerts, counts = run(list(disorder.apply(readings)))

    assert len(orderly_alerts) == 8  # each box: exceeded, then resolved
    assert disordered_alerts == orderly_alerts
    assert orderly_counts["late"] == orderly_counts["duplicates"] == 0
    assert counts["late"] == disorder.late > 0
    assert counts["duplicates"] == disorder.duplicates > 0
    assert counts["processed"] == orderly_counts["processed"] == len(readings)


def test_a_late_copy_comes_after_a_newer_reading_of_its_box():
    readings = stream(boxes=2, days=1)
    sent = list(producing.Disorder(late_share=0.3).apply(readings))
    newest = {}
    late = 0
    for reading in sent:
        if reading.timestamp < newest.get(reading.box_id, reading.timestamp):
            late += 1
        newest[reading.box_id] = max(reading.timestamp, newest.get(reading.box_id, reading.timestamp))
    assert late == len(sent) - len(readings) > 0


def test_the_same_seed_gives_the_same_disorder_and_no_shares_give_none():
    readings = stream(boxes=2, days=1)
    seeded = list(producing.Disorder(0.2, 0.2).apply(readings))
    assert list(producing.Disorder(0.2, 0.2).apply(readings)) == seeded
    assert list(producing.Disorder(0.2, 0.2, seed=1).apply(readings)) != seeded
    assert list(producing.Disorder().apply(readings)) == readings


def test_the_shares_come_from_the_environment_and_default_to_none():
    assert config.Settings.from_env({}).late_share == config.Settings.from_env({}).duplicate_share == 0
    settings = config.Settings.from_env({"PM25_LATE_SHARE": "0.05", "PM25_DUPLICATE_SHARE": "0.1"})
    assert producing.Disorder.from_settings(settings) == producing.Disorder(0.05, 0.1)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PM25_LATE_SHARE": "1.5"}, "PM25_LATE_SHARE='1.5' cannot be used: expected a number >= 0 and <= 1"),
        ({"PM25_DUPLICATE_SHARE": "nan"}, "PM25_DUPLICATE_SHARE='nan'"),
        ({"PM25_LATE_SHARE": "0.6", "PM25_DUPLICATE_SHARE": "0.6"}, "add up to at most 1"),
    ],
)
def test_a_share_that_cannot_be_used_is_named(env, named):
    with pytest.raises(config.ConfigError, match=named.replace("(", r"\(").replace(".", r"\.")):
        config.Settings.from_env(env)


def test_read_clocks_gives_each_reading_its_arrival_and_its_event_time():
    readings = stream(boxes=3, days=1)
    topic = f"clocks-{uuid.uuid4().hex[:8]}"
    with EmbeddedBroker() as broker:
        with KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers) as admin:
            topics.ensure_topic(admin, topic)
        sent_from = datetime.now(UTC) - timedelta(seconds=1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        for reading in readings:
            producer.send(topic, key=reading.box_id.encode(), value=contract.encode(reading))
        producer.send(topic, key=b"x", value=b"not json")  # left out, not fatal
        producer.flush(timeout=10)
        producer.close()
        clocks = consuming.read_clocks({"bootstrap_servers": broker.bootstrap_servers}, topic, timeout_s=30)
    assert sorted(clocks["event"]) == sorted(reading.timestamp for reading in readings)
    assert (clocks["arrival"] >= sent_from).all()
    assert (clocks["arrival"] - clocks["event"]).min() > timedelta(days=300)  # two clocks, far apart
