"""What step 2's producer loop relies on: the delivery report, replay pacing and live polling."""

from __future__ import annotations

import gc
import json
import os
import signal
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import MessageSizeTooLargeError
from kafka.future import Future

from pm25.brokers.embedded import EmbeddedBroker
from pm25.data import contract, geo
from pm25.data.opensensemap import OpenSenseMapClient
from pm25.streaming import delivery, interrupts, live, replay, sending, topics
from tests.notebooks import cell_by_id
from tests.osem_replay import Fault

REPO = Path(__file__).resolve().parents[1]

BOX = "a" * 24
SENSOR = "b" * 24
START = datetime(2024, 1, 15, tzinfo=UTC)
# The south-east half of the default Berlin area: a triangle, so some boxes are in its bbox but outside it.
SOUTH_EAST = {"type": "Polygon", "coordinates": [[[13.29, 52.44], [13.50, 52.44], [13.50, 52.57], [13.29, 52.44]]]}
BERLINER_ALLEE = "5a7f2eb1398b82001189eb65"  # inside the triangle's bounding box, outside the triangle
TEMPELHOFER_DAMM = "5f19eada586e36001c8ecdd5"  # measured at 22:30:01.108 on 26 February, then not until 03:50


def reading(hours: float, box_id: str = BOX, name: str = "Alpha") -> contract.Reading:
    return contract.Reading(box_id, name, SENSOR, 51.96, 7.62, START + timedelta(hours=hours), 10.0)


class FakeTime:
    """A clock that only moves when slept on (or when `work` is done), recording every sleep."""

    def __init__(self, on_sleep: Callable[[], None] | None = None):
        self.now = 100.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, f"slept {seconds} s"
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep()


def test_no_broker_error_names_the_address_and_both_ways_to_start_one():
    message = str(sending.NoBroker("localhost:9092"))
    assert "localhost:9092" in message
    assert "make lab" in message
    assert "docker compose" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


# --------------------------------------------------------------------------- DeliveryReport


def notebook_producer(bootstrap_servers: str, **overrides) -> KafkaProducer:
    """A producer set up as step 2's, with short time-outs so that a failure shows within seconds."""
    settings = {
        "key_serializer": contract.KeySerializer(),
        "value_serializer": contract.ReadingSerializer(),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "request_timeout_ms": 1000,
        "delivery_timeout_ms": 2000,
        "retry_backoff_ms": 50,
    }
    return KafkaProducer(bootstrap_servers=bootstrap_servers, **settings | overrides)


def test_delivery_report_counts_every_acknowledged_message_and_where_it_went(bootstrap_servers, topic, capsys):
    boxes = [(f"{index:024x}", f"Box {index}") for index in range(6)]
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        topics.ensure_topic(admin, topic)
    producer = notebook_producer(bootstrap_servers)
    report = delivery.DeliveryReport(show_first=2)
    try:
        for hour in range(5):
            for box_id, name in boxes:
                sent = reading(hour, box_id, name)
                report.track(producer.send(topic, key=sent.key, value=sent), sent)
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)

    assert (report.sent, report.acknowledged, report.failed, report.pending) == (30, 30, 0, 0)
    assert set(report.partitions_by_box) == {name for _, name in boxes}
    assert all(len(partitions) == 1 for partitions in report.partitions_by_box.values())  # one box, one partition
    assert capsys.readouterr().out.count("  acknowledged: ") == 2  # only the first `show_first` are shown
    assert report.summary(rows_read=33, rejected=3).splitlines() == [
        "rows read:    33",
        "rejected:     3 (never sent)",
        "sent:         30",
        "acknowledged: 30",
        "failed:       0",
    ]


class TraceableFuture(Future):
    """A Future that a weak reference can follow (kafka-python's has __slots__ without __weakref__)."""


def test_delivery_report_lets_go_of_answered_futures_and_still_counts_them():
    report = delivery.DeliveryReport(show_first=0, settle_every=10)
    answered = [TraceableFuture().success(SimpleNamespace(partition=index % 2, offset=index)) for index in range(20)]
    waiting = [TraceableFuture() for _ in range(5)]
    for index, future in enumerate(answered + waiting):
        report.track(future, reading(index, name="Alpha" if index % 2 else "Beta"))
    answered_refs, waiting_refs = [weakref.ref(f) for f in answered], [weakref.ref(f) for f in waiting]
    del answered, waiting
    gc.collect()
    assert [ref() is None for ref in answered_refs] == [True] * 20  # a long send keeps only what is in flight
    assert all(ref() is not None for ref in waiting_refs)
    assert (report.sent, report.acknowledged, report.pending) == (25, 20, 5)
    assert report.partitions_by_box == {"Alpha": {1}, "Beta": {0}}


@pytest.mark.faults
def test_delivery_report_counts_the_messages_a_vanished_broker_never_acknowledged(topic):
    with EmbeddedBroker() as broker:
        with KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers) as admin:
            topics.ensure_topic(admin, topic)
        producer = notebook_producer(broker.bootstrap_servers)
        report = delivery.DeliveryReport()
        try:
            for hour in range(3):
                report.track(producer.send(topic, key=BOX, value=reading(hour)), reading(hour))
            producer.flush(timeout=10)
            assert report.acknowledged == 3
            broker.stop()
            for hour in range(3, 7):
                report.track(producer.send(topic, key=BOX, value=reading(hour)), reading(hour))
            producer.flush(timeout=10)  # returns once every batch has expired (delivery_timeout_ms)
        finally:
            producer.close(timeout=5)

    assert (report.sent, report.acknowledged, report.failed, report.pending) == (7, 3, 4, 0)
    assert report.delivery_failures == 4  # what step 2's send loop stops on
    assert report.acknowledged == report.sent - report.failed
    assert [failed.timestamp for failed, _ in report.failures] == [START + timedelta(hours=h) for h in range(3, 7)]
    summary = report.summary()
    assert "sent:         7\nacknowledged: 3\nfailed:       4" in summary
    assert "  failed: Alpha 2024-01-15 03:00: KafkaTimeoutError" in summary


def test_a_message_the_producer_refuses_counts_as_failed_not_as_sent_successfully(bootstrap_servers, topic):
    producer = notebook_producer(bootstrap_servers, max_request_size=100)  # smaller than one reading
    report = delivery.DeliveryReport()
    try:
        with pytest.raises(MessageSizeTooLargeError) as raised:
            producer.send(topic, key=BOX, value=reading(0))
        report.refused(reading(0), raised.value)
    finally:
        producer.close(timeout=5)
    assert (report.sent, report.acknowledged, report.failed) == (1, 0, 1)
    assert report.delivery_failures == 0  # one message too large is no reason to stop sending the others
    assert "MessageSizeTooLargeError" in report.summary()


def test_delivery_report_names_the_messages_still_unconfirmed():
    report = delivery.DeliveryReport(show_first=0)
    answered, unanswered, refused = Future(), Future(), Future()
    for hour, future in enumerate((answered, unanswered, refused)):
        report.track(future, reading(hour))

    class Metadata:
        partition, offset = 1, 0

    answered.success(Metadata())
    refused.failure(RuntimeError("no leader"))
    assert (report.sent, report.acknowledged, report.failed, report.pending) == (3, 1, 1, 1)
    summary = report.summary()
    assert "unconfirmed:  1 (the producer was closed before the broker answered)" in summary
    assert "  failed: Alpha 2024-01-15 02:00: RuntimeError: no leader" in summary
    assert report.partitions_by_box == {"Alpha": {1}}


class CtrlCWhileAsked(Future):
    """An answered future that presses Ctrl+C the first time the report asks whether it is done: ■ can land
    at any moment, also while the report counts."""

    @property
    def is_done(self) -> bool:
        if self._answered and not self._pressed:
            self._pressed = True
            signal.raise_signal(signal.SIGINT)
        return self._answered

    @is_done.setter
    def is_done(self, answered: bool) -> None:
        self._answered, self._pressed = answered, getattr(self, "_pressed", False)


def test_a_ctrl_c_while_the_report_counts_neither_counts_a_message_twice_nor_loses_it():
    """Step 2's loop reads report.delivery_failures every 500 sends, outside the held block: a ■ in the middle
    of that count made one fresh-clone CI run report 5597 acknowledged of 5000 sent."""
    report = delivery.DeliveryReport(show_first=0)
    for hour, future in enumerate([Future(), Future(), CtrlCWhileAsked(), Future()]):
        report.track(future.success(SimpleNamespace(partition=0, offset=hour)), reading(hour))
    with pytest.raises(KeyboardInterrupt):
        _ = report.delivery_failures  # what step 2's loop reads every 500 sends
    assert (report.sent, report.acknowledged, report.pending) == (4, 4, 0)


# --------------------------------------------------------------------------- paced


def consume(readings, fake: FakeTime, work_s: float = 0.0) -> list[float]:
    """The fake clock's time at each yield; `work_s` is how long handling one reading takes."""
    times = []
    for _ in readings:
        times.append(fake.now)
        fake.now += work_s
    return times


def test_paced_yields_each_reading_at_its_deadline_from_the_start():
    fake = FakeTime()
    hours = [0, 1, 2.5, 4]
    paced = replay.paced([reading(h) for h in hours], speedup=3600, clock=fake.clock, sleep=fake.sleep)
    assert consume(paced, fake) == [100.0 + h for h in hours]  # one hour of event time per second


def test_paced_does_not_drift_when_handling_a_reading_takes_time():
    fake = FakeTime()
    paced = replay.paced([reading(h) for h in range(5)], speedup=3600, clock=fake.clock, sleep=fake.sleep)
    times = consume(paced, fake, work_s=0.25)
    assert times == pytest.approx([100.0, 101.0, 102.0, 103.0, 104.0])  # not 101.25, 102.5, ...
    assert fake.sleeps == pytest.approx([0.75, 0.75, 0.75, 0.75])


def test_paced_respects_the_speedup():
    fake = FakeTime()
    paced = replay.paced([reading(0), reading(1), reading(3)], speedup=60, clock=fake.clock, sleep=fake.sleep)
    assert consume(paced, fake) == [100.0, 160.0, 280.0]  # one hour of event time in 60 s


def test_paced_does_not_sleep_between_readings_with_the_same_timestamp():
    fake = FakeTime()
    same_hour = [reading(0), reading(1, "c" * 24), reading(1, "d" * 24), reading(1, "e" * 24), reading(2)]
    paced = replay.paced(same_hour, speedup=3600, clock=fake.clock, sleep=fake.sleep)
    assert consume(paced, fake) == [100.0, 101.0, 101.0, 101.0, 102.0]
    assert fake.sleeps == [1.0, 1.0]


def test_paced_catches_up_without_sleeping_when_behind():
    fake = FakeTime()
    paced = replay.paced([reading(h) for h in range(4)], speedup=3600, clock=fake.clock, sleep=fake.sleep)
    times = consume(paced, fake, work_s=2.5)  # slower than the stream: never wait, never fall further behind
    assert fake.sleeps == []
    assert times == [100.0, 102.5, 105.0, 107.5]


# --------------------------------------------------------------------------- live_readings

LIVE_NOW = datetime(2023, 2, 27, 0, 0, tzinfo=UTC)


def latest_pm25_in(aoi: geo.Aoi, boxes: list[dict]) -> set[tuple[str, datetime]]:
    """(boxId, time) of the newest PM2.5 measurement of every box standing in the AOI, per the replay's data."""
    found = set()
    for box in boxes:
        lon, lat = box["currentLocation"]["coordinates"][:2]
        for sensor in box["sensors"]:
            if sensor["title"] == "PM2.5" and "lastMeasurement" in sensor and aoi.contains(lon, lat):
                found.add((box["_id"], contract.parse_timestamp(sensor["lastMeasurement"]["createdAt"])))
    return found


def poll_live(replay_api, client, aoi, nows: list[datetime], every_s=60.0) -> tuple[list[list], FakeTime]:
    """Run live_readings for len(nows) polls; the replay's clock moves to the next of `nows` at each sleep."""
    upcoming = iter(nows[1:])
    polls: list[list] = [[]]

    def next_poll():
        replay_api.now = next(upcoming)
        polls.append([])

    fake = FakeTime(on_sleep=next_poll)
    replay_api.now = nows[0]
    duration_s = every_s * (len(nows) - 1) + every_s / 2  # the loop stops when the next poll would be too late
    for found in live.live_readings(client, aoi, every_s, duration_s, clock=fake.clock, sleep=fake.sleep):
        polls[-1].append(found)
    return polls, fake


def test_live_readings_yields_each_measurement_once_across_polls_and_only_inside_the_area(replay_api, monkeypatch):
    monkeypatch.setattr(replay_api, "now", replay_api.now)  # restored after the test
    aoi = geo.Aoi.from_geojson(SOUTH_EAST, "test area")
    client = OpenSenseMapClient(replay_api.url, backoff_s=0.01)
    nows = [LIVE_NOW, LIVE_NOW, LIVE_NOW + timedelta(minutes=10)]
    polls_before = sum(path.startswith("/boxes") for path in replay_api.requests)

    polls, fake = poll_live(replay_api, client, aoi, nows)

    assert sum(path.startswith("/boxes") for path in replay_api.requests) - polls_before == 3
    assert fake.sleeps == [60.0, 60.0]
    first, same_time, ten_minutes_later = ({(r.box_id, r.timestamp) for r in poll} for poll in polls)
    everything = [(r.box_id, r.timestamp) for poll in polls for r in poll]
    assert len(everything) == len(set(everything))  # nothing twice

    replay_api.now = nows[0]
    assert first == latest_pm25_in(aoi, replay_api.boxes)
    assert len(first) >= 6
    assert same_time == set()  # nothing new since the last poll
    replay_api.now = nows[2]
    assert ten_minutes_later == latest_pm25_in(aoi, replay_api.boxes) - first
    assert ten_minutes_later and all(LIVE_NOW < when <= nows[2] for _, when in ten_minutes_later)
    # a box that fell silent is sent once, not again
    assert (TEMPELHOFER_DAMM, datetime(2023, 2, 26, 22, 30, 1, 108000, tzinfo=UTC)) in first

    assert BERLINER_ALLEE not in {box_id for box_id, _ in everything}
    for poll in polls:
        for found in poll:
            assert contract.decode(contract.encode(found)) == found  # each one a valid message


@pytest.mark.faults
def test_live_readings_reports_a_failed_poll_and_goes_on_polling(replay_api, monkeypatch, capsys):
    monkeypatch.setattr(replay_api, "now", replay_api.now)
    aoi = geo.Aoi.from_geojson(SOUTH_EAST, "test area")
    client = OpenSenseMapClient(replay_api.url, max_attempts=2, backoff_s=0.01)
    replay_api.inject(*[Fault("status", status=503, path_prefix="/boxes")] * client.max_attempts)

    polls, fake = poll_live(replay_api, client, aoi, [LIVE_NOW, LIVE_NOW + timedelta(minutes=10)])

    printed = capsys.readouterr().out
    assert "This poll failed, trying again at the next one:" in printed
    assert "HTTP 503" in printed
    assert polls[0] == []
    assert len(fake.sleeps) == 1
    replay_api.now = LIVE_NOW + timedelta(minutes=10)
    assert {(r.box_id, r.timestamp) for r in polls[1]} == latest_pm25_in(aoi, replay_api.boxes)


# --------------------------------------------------------------------------- batching settings

APACHE_KAFKA_MAX_MESSAGE_BYTES = 1_048_588  # broker default message.max.bytes: a larger batch is refused


def test_the_producer_settings_batch_within_what_apache_kafka_accepts(bootstrap_servers, topic):
    assert sending.PRODUCER_SETTINGS["batch_size"] <= APACHE_KAFKA_MAX_MESSAGE_BYTES
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        topics.ensure_topic(admin, topic)
    sent = [reading(hour) for hour in range(50)]
    serializers = {"key_serializer": contract.KeySerializer(), "value_serializer": contract.ReadingSerializer()}
    with KafkaProducer(bootstrap_servers=bootstrap_servers, **serializers, **sending.PRODUCER_SETTINGS) as producer:
        futures = [producer.send(topic, key=one.key, value=one) for one in sent]
        producer.flush(timeout=30)
    assert all(future.succeeded() for future in futures)


def test_step_2_takes_linger_and_batch_size_from_the_settings_the_benchmark_measures():
    notebook = nbformat.read(REPO / "src" / "step_2_producer.ipynb", as_version=4)
    producer_cell = cell_by_id(notebook, "production-producer").source
    assert "KafkaProducer(" in producer_cell
    assert "sending.LINGER_MS" in producer_cell and "sending.BATCH_SIZE" in producer_cell
    assert "sending.PRODUCER_SETTINGS" in (REPO / "benchmarks" / "bench_producer.py").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- Ctrl+C between sends


def test_a_ctrl_c_inside_a_held_block_is_raised_when_the_block_ends():
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts.ctrl_c_between_sends() as held:
        with held:
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the rest of the block")
        done.append("after the block")
    assert done == ["the rest of the block"]


def test_a_ctrl_c_between_held_blocks_interrupts_at_once():
    with pytest.raises(KeyboardInterrupt), interrupts.ctrl_c_between_sends():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # a pause in replay mode: the Ctrl+C must not wait for it to end


def test_the_ctrl_c_handler_is_restored_after_the_loop():
    before = signal.getsignal(signal.SIGINT)
    with interrupts.ctrl_c_between_sends() as held, held:
        assert signal.getsignal(signal.SIGINT) != before
    assert signal.getsignal(signal.SIGINT) == before


def test_ctrl_c_waits_holds_a_ctrl_c_back_until_its_single_block_is_done():
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts.ctrl_c_waits():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the rest of the block")
    assert done == ["the rest of the block"]


def learners_producer(bootstrap_servers: str, **overrides) -> KafkaProducer:
    """Step 2's producer with the learner's serializers: a plain to_json and the key as text."""
    serializers = {"key_serializer": sending.TextKey(), "value_serializer": sending.FunctionSerializer(to_json)}
    return notebook_producer(bootstrap_servers, **serializers | overrides)


def to_json(message: dict) -> bytes:
    return json.dumps(message).encode("utf-8")


def send_readings(producer, topic, readings):
    """The learner's loop, as the solution writes it."""
    futures = [producer.send(topic, key=reading["boxId"], value=reading) for reading in readings]
    producer.flush()
    return sum(future.failed() for future in futures)


def test_the_guarded_producer_counts_the_learners_sends_and_closes_the_producer(bootstrap_servers, topic):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        topics.ensure_topic(admin, topic)
    producer = learners_producer(bootstrap_servers)
    report = delivery.DeliveryReport(show_first=0)
    boxes = ((BOX, "Alpha"), ("c" * 24, "Gamma"))
    sent = [reading(hours, box_id, name) for hours in range(5) for box_id, name in boxes]
    with sending.GuardedProducer(producer, report) as guarded:
        failed = send_readings(guarded, topic, guarded.messages(sent))
    assert failed == 0
    assert report.sent == report.acknowledged == len(sent)
    assert set(report.partitions_by_box) == {"Alpha", "Gamma"}  # each send was counted for its own reading
    assert all(len(partitions) == 1 for partitions in report.partitions_by_box.values())
    assert producer._closed


def test_a_send_the_producer_refuses_fails_in_the_learners_count_and_in_the_report(bootstrap_servers, topic):
    producer = learners_producer(bootstrap_servers, max_request_size=100)  # smaller than one reading
    report = delivery.DeliveryReport(show_first=0)
    with sending.GuardedProducer(producer, report) as guarded:
        failed = send_readings(guarded, topic, guarded.messages([reading(0), reading(1)]))
    assert failed == 2
    assert (report.sent, report.failed, report.delivery_failures) == (2, 2, 0)


def test_the_guarded_producer_stops_the_learners_loop_once_the_broker_stopped_acknowledging(topic):
    broker = EmbeddedBroker().start()
    try:
        with KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers) as admin:
            topics.ensure_topic(admin, topic)
        producer = learners_producer(broker.bootstrap_servers)
        report = delivery.DeliveryReport(show_first=0)
        first = [reading(hours / 60) for hours in range(10)]
        with sending.GuardedProducer(producer, report, check_every=10) as guarded:
            send_readings(guarded, topic, guarded.messages(first))
            broker.stop()

            def forever():
                for number in range(10**9):
                    yield reading(1 + number / 60)

            with pytest.raises(sending.BrokerStopped, match=f"The broker at {broker.bootstrap_servers} stopped"):
                send_readings(guarded, topic, guarded.messages(forever()))
    finally:
        broker.stop()
    assert report.acknowledged == 10 and report.delivery_failures > 0


def test_disorder_counts_the_copies_of_its_latest_run_only():
    readings = [reading(hours / 6, box_id) for hours in range(60) for box_id in (BOX, "c" * 24)]
    disorder = replay.Disorder(late_share=0.2, duplicate_share=0.2)
    first = list(disorder.apply(readings))
    counted = (disorder.late, disorder.duplicates)
    assert list(disorder.apply(readings)) == first  # the send cell run again sends the same
    assert (disorder.late, disorder.duplicates) == counted
    assert len(first) == len(readings) + sum(counted) and min(counted) > 0
