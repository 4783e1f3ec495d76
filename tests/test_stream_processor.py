"""Step 4's Quix Streams pipeline: the rule on hand-made streams, checked against a small independent reference."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from pm25.config import Settings
from pm25.data.contract import Reading, encode
from pm25.errors import LearnerError
from pm25.rules.detector import Detector
from pm25.streaming.quix_instances import changelog_topics, committed, describe, read_alerts
from pm25.streaming.stream_processor import (
    NEWEST_MS,
    DailyMeanRule,
    RecoveryTimer,
    build_application,
    prepare_readings_topic,
    signal_handlers_restored,
)
from tests.faults.support import create_topic

START = datetime(2023, 2, 26, tzinfo=UTC)
SENSOR = "f" * 24


def reading(box: str, hours: float, value: float) -> Reading:
    return Reading(box * 24, f"Box {box}", SENSOR, 52.5, 13.4, START + timedelta(hours=hours), value)


def reference_alerts(readings, threshold=15.0, window_hours=24, min_hours=18) -> list[tuple]:
    """Decision 2 written as plainly as possible: (boxId, event, timestamp, mean, n_hours) per state change,
    decided when a box's first reading of a new clock hour H arrives, on the hours H - window_hours ... H - 1."""
    threshold = Fraction(str(threshold))  # the decimal as written: 15.1, not the float 15.0999...96
    newest, hours, exceeded, alerts = {}, defaultdict(dict), set(), []
    for r in readings:
        if r.value >= 999.9 or (r.box_id in newest and r.timestamp <= newest[r.box_id]):
            continue
        hour = r.timestamp.replace(minute=0, second=0, microsecond=0)
        new_hour = r.box_id in newest and hour > max(hours[r.box_id])
        newest[r.box_id] = r.timestamp
        if new_hour:
            closed = hours[r.box_id].items()
            means = [sum(v) / len(v) for h, v in closed if hour - h <= timedelta(hours=window_hours)]
            mean = sum(means) / len(means) if len(means) >= min_hours else None  # exact fractions: ties are ties
            if mean is not None and r.box_id not in exceeded and mean > threshold:
                exceeded.add(r.box_id)
                alerts.append((r.box_id, "exceeded", hour, float(mean), len(means)))
            elif mean is not None and r.box_id in exceeded and mean <= threshold:
                exceeded.discard(r.box_id)
                alerts.append((r.box_id, "resolved", hour, float(mean), len(means)))
        hours[r.box_id].setdefault(hour, []).append(Fraction(round(r.value * 100), 100))
    return alerts


def hand_made_stream() -> tuple[list[Reading], list[tuple[bytes, bytes]]]:
    """One box per case; messages that are not readings come as raw (key, value)."""
    readings = []
    # a: 17 hours of 40 then nothing: coverage never reaches 18, no decision.
    readings += [reading("a", h, 40.0) for h in range(17)]
    # b: 18 hours, then a gap: hour 20's first reading closes them and raises the alert; many readings in hour 20
    #    count as one hourly mean.
    readings += [reading("b", h, 20.0) for h in range(18)]
    readings += [reading("b", 20 + m / 60, 0.0 if m else 400.0) for m in range(0, 60, 2)]
    # c: 14.99 and 15.01 in turn: the 24-hour mean is exactly 15.00, a tie, which is not exceeded.
    readings += [reading("c", h, 15.01 if h % 2 else 14.99) for h in range(30)]
    # d: high for a day, pauses for a day (old hours leave the window), comes back low; hour 71 is never closed.
    readings += [reading("d", h, 30.0) for h in range(24)] + [reading("d", h, 2.0) for h in range(48, 72)]
    # e: duplicates, late readings and saturated values change nothing.
    readings += [reading("e", h, 16.0) for h in range(20)]
    readings += [reading("e", 19, 900.0), reading("e", 3.5, 900.0), reading("e", 20, 999.9 - 1e-9)]
    readings += [reading("e", 21 + h, 10.0) for h in range(20)]
    raw = [
        b"not JSON",
        json.dumps({"boxId": "e" * 24, "value": 999.9}).encode(),
        encode(reading("e", 22.5, 5.0)).replace(b'"value":5.0', b'"value":999.9'),
    ]
    raw = [(b"e" * 24, value) for value in raw]
    # Readings under a key that is not their boxId: not UTF-8, and box c's reading under box f's key.
    raw += [(b"\xff\xfe", encode(reading("e", 40.5, 5.0))), (b"f" * 24, encode(reading("c", 30.5, 500.0)))]
    return readings, raw


def produce(bootstrap_servers: str, topic: str, readings: list[Reading], raw: list[tuple[bytes, bytes]] = ()) -> None:
    with KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20) as producer:
        futures = [producer.send(topic, key=r.box_id.encode(), value=encode(r)) for r in readings]
        futures += [producer.send(topic, key=key, value=value) for key, value in raw]
        producer.flush()
    assert all(future.succeeded() for future in futures)


def run_once(bootstrap_servers: str, topic: str, state_dir, rule: DailyMeanRule):
    """One instance in this process until the topic runs dry; its alerts and counts."""
    settings = Settings(bootstrap_servers=bootstrap_servers, topic=topic)
    prepare_readings_topic(settings.kafka_options(), topic)
    app, gate = build_application(settings, f"{topic}_group", state_dir, f"{topic}_alerts", rule)
    with signal_handlers_restored():
        app.run(timeout=5, collect=False)
    return read_alerts(settings.kafka_options(), f"{topic}_alerts"), gate.counts


def as_keys(alerts) -> list[tuple]:
    return [(a[0], a[1], a[2].isoformat().replace("+00:00", "Z"), a[4]) for a in alerts]


@pytest.fixture(scope="module")
def hand_made_run(bootstrap_servers, tmp_path_factory):
    topic = f"test_quix_{datetime.now(UTC):%H%M%S%f}"
    readings, raw = hand_made_stream()
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, readings, raw)
    alerts, counts = run_once(bootstrap_servers, topic, tmp_path_factory.mktemp("state"), DailyMeanRule())
    return readings, alerts, counts, topic


def test_the_alert_topic_keeps_alerts_whose_timestamps_are_days_old(hand_made_run, bootstrap_servers):
    # An alert's record timestamp is its window's event time: with time-based retention a real broker deletes
    # a recording's alerts at its next retention check. The pipeline creates its alert topic without it.
    *_, topic = hand_made_run
    alert_topic = f"{topic}_alerts"
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, alert_topic)], config_filter="all")
    configs = described["topic"][alert_topic]
    assert configs["retention.ms"]["value"] == "-1", configs


def test_pipeline_alerts_equal_step_3s_detector(hand_made_run):
    readings, alerts, *_ = hand_made_run
    detector = Detector()
    expected = [alert.as_dict() for alert in map(detector.process, readings) if alert]
    assert len(expected) >= 3

    def rounded(rows) -> list[dict]:  # the same decision, whatever the order of a float sum
        return sorted(({**row, "mean": round(row["mean"], 9)} for row in rows), key=str)

    assert rounded(alerts.to_dict("records")) == rounded(expected)


def test_pipeline_alerts_equal_the_reference_rule(hand_made_run):
    readings, alerts, *_ = hand_made_run
    expected = reference_alerts(readings)
    got = sorted(zip(alerts.boxId, alerts.event, alerts.timestamp, alerts.n_hours, strict=True))
    want = sorted((box, event, moment.strftime("%Y-%m-%dT%H:%M:%SZ"), n) for box, event, moment, _, n in expected)
    assert got == want
    means = dict(zip(zip(alerts.boxId, alerts.timestamp, strict=True), alerts["mean"], strict=True))
    for box, _, moment, mean, _ in expected:
        assert means[(box, moment.strftime("%Y-%m-%dT%H:%M:%SZ"))] == pytest.approx(mean, abs=1e-9)


def test_pipeline_decides_only_with_18_covered_hours_and_not_at_a_tie(hand_made_run):
    _, alerts, *_ = hand_made_run
    first = alerts.groupby("boxId").first()
    assert "a" * 24 not in first.index  # 17 hours of 40 µg/m³: not enough data
    assert "c" * 24 not in first.index  # 15.00 is not above 15
    # Decided when hour 20 began, on hours 0..17 (18 of the 24 before it): the window's end is the timestamp.
    assert first.loc["b" * 24, ["event", "timestamp", "n_hours"]].tolist() == ["exceeded", "2023-02-26T20:00:00Z", 18]


def test_pipeline_resolves_after_a_pause_once_the_old_hours_left_the_window(hand_made_run):
    _, alerts, *_ = hand_made_run
    box_d = alerts[alerts.boxId == "d" * 24]
    assert box_d[["event", "timestamp"]].values.tolist() == [
        ["exceeded", "2023-02-26T18:00:00Z"],
        ["resolved", "2023-02-28T18:00:00Z"],  # 18 closed low hours after the pause; the high day has left the window
    ]


def test_the_changelog_table_names_each_topics_state_store(hand_made_run, bootstrap_servers):
    # Step 4's text explains the changelogs by store; the topic names are too long to show whole.
    *_, topic = hand_made_run
    table = changelog_topics({"bootstrap_servers": bootstrap_servers}, f"{topic}_group")
    assert len(table) == 2 and "default" in set(table["store"]), table
    assert all(name.endswith(f"--{store}") for name, store in zip(table["topic"], table["store"], strict=True))
    assert (table["messages"] > 0).all()


def test_pipeline_counts_what_it_ignores(hand_made_run):
    _, _, counts, _ = hand_made_run
    assert {key: counts[key] for key in ("invalid", "saturated", "duplicates", "late")} == {
        "invalid": 4,
        "saturated": 1,
        "duplicates": 1,
        "late": 1,
    }  # (999.9 without the other fields is invalid: the contract reports missing fields first;
    #   a reading whose key is not its boxId is invalid: its box's readings would be split between partitions)


def test_after_the_application_ran_ctrl_c_interrupts_the_kernel_again(bootstrap_servers, topic, tmp_path):
    # Quix installs its own SIGINT and SIGTERM handlers in run() and leaves them behind: a later ■ in the
    # notebook would only stop the application that already ended, and not interrupt the cell.
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    create_topic(bootstrap_servers, topic)
    run_once(bootstrap_servers, topic, tmp_path, DailyMeanRule(15.0, 24, 18))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert before[0] is signal.default_int_handler  # what raises KeyboardInterrupt in a kernel


def test_step4_before_step2_says_to_run_step2_first(bootstrap_servers, topic):
    with pytest.raises(LearnerError, match="does not exist yet: run step 2 first"):
        prepare_readings_topic({"bootstrap_servers": bootstrap_servers}, topic)


def test_reading_a_topic_that_does_not_exist_gives_nothing_and_creates_nothing(bootstrap_servers, topic):
    # e.g. a typo in the alert topic's name, or a broker restarted since the application ran
    kafka_options = {"bootstrap_servers": bootstrap_servers}
    assert read_alerts(kafka_options, topic).empty
    assert committed(kafka_options, "a-group", topic) == {}
    with KafkaAdminClient(**kafka_options) as admin:
        assert topic not in admin.list_topics()


def test_importing_the_processor_shows_no_authlib_httpx_warning(tmp_path):
    shown = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import pm25.streaming.stream_processor"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    assert "httpx module is deprecated" not in shown


def test_recovery_report_names_the_restored_partitions_and_stores(capsys):
    timer, logger = RecoveryTimer(), logging.getLogger("test_recovery_report")
    logger.addHandler(timer)
    logger.setLevel(logging.INFO)
    logger.info("Beginning recovery check...")
    for partition in (2, 0):
        for store in ("default", "tumbling_window_3600000_agg"):
            logger.info(
                f'Recovery successful for <RecoveryPartition "changelog__g--pm25_readings--{store}[{partition}]">'
            )
    logger.info("Recovery process complete! Resuming normal processing...")
    logger.removeHandler(timer)
    event = json.loads(capsys.readouterr().out)
    assert (event["partitions"], event["stores"]) == ([0, 2], ["default", "tumbling_window_3600000_agg"])
    assert describe(event).startswith("restored the state of partition(s) [0, 2] from the changelog (2 state stores)")


class _State:
    """The two methods of a Quix state store that DailyMeanRule uses."""

    def __init__(self):
        self.values = {}

    def get(self, key, default=None):
        return self.values.get(key, default)

    def set(self, key, value):
        self.values[key] = value


@pytest.mark.parametrize("threshold", [15.1, 12.3, 0.7])
def test_rule_is_exact_at_a_tie_with_a_threshold_of_one_decimal(threshold):
    """A 24-hour mean of exactly the threshold (15.10 with threshold 15.1) is not above it, as in Detector:
    the threshold is the decimal the learner wrote, not its binary float (15.0999...96)."""
    rule, state = DailyMeanRule(threshold=threshold), _State()
    value = round(threshold * 100)  # hundredths
    hours = [
        {"start": h * 3_600_000, "total": value + (h == 24), "count": 1, "boxId": "a" * 24, "boxName": "Box a"}
        for h in range(25)
    ]
    decided = []
    for hour in hours:
        state.set(NEWEST_MS, hour["start"] + 3_600_000)  # the reading that closed the hour, at the next one
        decided += [alert] if (alert := rule(hour, state)) else []
    # Hours 0..23 are a tie; one hundredth more in hour 24 puts the window before 25:00 above it.
    assert [(alert["event"], alert["timestamp"]) for alert in decided] == [("exceeded", "1970-01-02T01:00:00Z")]
    assert reference_alerts([reading("a", h, threshold) for h in range(25)], threshold=threshold) == []
