"""Disorder on purpose: readings sent late and twice move the detector's counters, never its alerts."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from pm25 import config
from pm25.brokers.embedded import EmbeddedBroker
from pm25.data import contract
from pm25.rules.detector import Detector
from pm25.streaming import codec, lag_and_clocks, topics
from pm25.streaming.replay import Disorder, start_live_replay
from pm25.views.live_map import LiveMap
from tests.notebooks import execute_notebook, small_readings, stream_text

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
    disorder = Disorder(late_share=0.1, duplicate_share=0.1)
    disordered_alerts, counts = run(list(disorder.apply(readings)))

    assert len(orderly_alerts) == 8  # each box: exceeded, then resolved
    assert disordered_alerts == orderly_alerts
    assert orderly_counts["late"] == orderly_counts["duplicates"] == 0
    assert counts["late"] == disorder.late > 0
    assert counts["duplicates"] == disorder.duplicates > 0
    assert counts["processed"] == orderly_counts["processed"] == len(readings)


def test_a_late_copy_comes_after_a_newer_reading_of_its_box():
    readings = stream(boxes=2, days=1)
    sent = list(Disorder(late_share=0.3).apply(readings))
    newest = {}
    late = 0
    for reading in sent:
        if reading.timestamp < newest.get(reading.box_id, reading.timestamp):
            late += 1
        newest[reading.box_id] = max(reading.timestamp, newest.get(reading.box_id, reading.timestamp))
    assert late == len(sent) - len(readings) > 0


def test_the_same_seed_gives_the_same_disorder_and_no_shares_give_none():
    readings = stream(boxes=2, days=1)
    seeded = list(Disorder(0.2, 0.2).apply(readings))
    assert list(Disorder(0.2, 0.2).apply(readings)) == seeded
    assert list(Disorder(0.2, 0.2, seed=1).apply(readings)) != seeded
    assert list(Disorder().apply(readings)) == readings


def test_the_shares_come_from_the_environment_and_default_to_none():
    assert config.Settings.from_env({}).late_share == config.Settings.from_env({}).duplicate_share == 0
    settings = config.Settings.from_env({"PM25_LATE_SHARE": "0.05", "PM25_DUPLICATE_SHARE": "0.1"})
    assert Disorder.from_settings(settings) == Disorder(0.05, 0.1)


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
        clocks = lag_and_clocks.read_clocks({"bootstrap_servers": broker.bootstrap_servers}, topic, timeout_s=30)
    assert sorted(clocks["event"]) == sorted(reading.timestamp for reading in readings)
    assert (clocks["arrival"] >= sent_from).all()
    assert (clocks["arrival"] - clocks["event"]).min() > timedelta(days=300)  # two clocks, far apart


def test_a_live_replay_from_step_3_changes_the_map_while_it_runs_and_nothing_is_late(tmp_path):
    readings = stream(boxes=3, days=2)  # 48 hours of sensor time in about 20 s
    boxes = [
        {"geometry": {"coordinates": [13.4, 52.5]}, "properties": {"boxId": f"{box:024x}", "name": f"Box {box}"}}
        for box in range(3)
    ]
    with EmbeddedBroker() as broker:
        settings = config.Settings(bootstrap_servers=broker.bootstrap_servers, topic="pm25_stream")
        live, replay = start_live_replay(settings, readings, speedup=8_640)
        assert live.topic.startswith("pm25_stream_live_")
        detector, live_map, states = Detector(), LiveMap(boxes), []
        options = {
            "group_id": live.topic,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 2000,
        }  # as step 3's: the embedded broker then forms the group at once
        with KafkaConsumer(**live.kafka_options(), **options) as consumer:
            consumer.subscribe([live.topic])
            deadline = time.monotonic() + 60
            while detector.counts["processed"] < len(readings) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        reading = codec.decode(record)
                        detector.process(reading)
                        live_map.update(reading, detector.window(reading.box_id)[0], False)
                colours = [marker.fill_color for marker in live_map.markers.values()]
                if not states or colours != states[-1][1]:
                    states.append((replay.finished.is_set(), colours))
        replay.stop()
    assert replay.summary() == f"Replay into {live.topic!r}: {len(readings)} sent, done."
    assert detector.counts["processed"] == len(readings)
    assert detector.counts["late"] == detector.counts["duplicates"] == 0
    drawn_while_sending = [colours for finished, colours in states if not finished]
    assert len(drawn_while_sending) >= 2  # the map changed while the replay was still sending: live, not backlog
    assert drawn_while_sending[0] != states[-1][1]


def test_step_3_replays_the_readings_itself_into_a_fresh_topic_and_nothing_is_late(topic, tmp_path):
    small_readings(tmp_path)  # three boxes, three days: about 7 s at this speed
    env = {
        "PM25_TOPIC": topic,
        "PM25_ALERT_TOPIC": f"{topic}_alerts",
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_LIVE_SPEEDUP": "36000",
        "PM25_IDLE_TIMEOUT_S": "3",
    }
    printed = stream_text(execute_notebook("step_3_event_processing.ipynb", env))  # no topic from step 2
    assert f"Replaying into '{topic}_live_" in printed
    assert "'duplicates': 0, 'late': 0}" in printed
    assert re.search(r"latency of the [\d,]+ readings sent while this consumer ran: median \d+ ms", printed)


def test_starting_the_live_replay_again_stops_the_earlier_one_and_takes_another_fresh_topic(capsys):
    readings = stream(boxes=1, days=2)
    with EmbeddedBroker() as broker:
        settings = config.Settings(bootstrap_servers=broker.bootstrap_servers, topic="pm25_stream")
        first_settings, first = start_live_replay(settings, readings, speedup=60)  # hours to send
        second_settings, second = start_live_replay(first_settings, readings, speedup=60)
        assert first.finished.is_set() and not second.finished.is_set()
        assert f"Stopped the earlier replay into {first.topic!r}." in capsys.readouterr().out
        assert second_settings.topic.startswith("pm25_stream_live_") and second.topic != first.topic
        assert second_settings.topic.count("_live_") == 1
        second.stop()
    assert second.finished.is_set() and second.report.sent < len(readings)
