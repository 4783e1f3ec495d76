"""Self-checks for the Kafka code the learner writes: they run it and say, in plain words, what differs.

Each `*_check(...)` returns a checker for pm25.learning.tasks.check: it takes the learner's answer, returns a
sentence confirming it, or raises WrongAnswer with the first thing that is wrong and how to fix it.
The producer and consumer-loop checks run the learner's code on a practice topic of their own
(created with 3 partitions, deleted afterwards), so the tutorial's topics never see practice data.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaTimeoutError
from kafka.producer.future import FutureProduceResult, FutureRecordMetadata

from pm25.data.contract import VALUE_LIMIT, Reading, format_timestamp
from pm25.learning.tasks import WrongAnswer
from pm25.rules.detector import Detector, hundredths
from pm25.streaming.sending import FunctionSerializer, TextKey
from pm25.streaming.topics import ensure_topic

EVENTS = ("exceeded", "resolved", None)
PRACTICE_PARTITIONS = 3
# A group's first join waits for members up to about this long: the smallest a broker allows (kafka-python's
# default is 45 s).
GROUP_SESSION_TIMEOUT_MS = 6000


KEY_FIELDS = ("boxId", "sensorId", "timestamp", "value")


def key_field_check() -> Callable[[str], str]:
    """Which field of a reading is the message key?"""

    def check(key_field: str) -> str:
        hints = {
            "timestamp": "With the time as key, one box's readings spread over all partitions and lose their order.",
            "value": "With the value as key, equal values meet and one box's readings scatter over the partitions.",
            "sensorId": "Close: but the rule and its alerts are per box, so the box is the key.",
            "boxName": "Names are not unique (and can change): the box's id is.",
        }
        if key_field == "boxId":
            return "every reading of a box goes to the same partition, so a box's readings stay in order."
        if key_field in hints:
            raise WrongAnswer(hints[key_field])
        spelt = next((field for field in KEY_FIELDS if str(key_field).lower() == field.lower()), None)
        if spelt:
            raise WrongAnswer(f"{key_field!r} is not a field of a reading: did you mean {spelt!r}? Case counts.")
        raise WrongAnswer(
            f"{key_field!r} is not a field of a reading; the task cell names four: {', '.join(map(repr, KEY_FIELDS))}."
        )

    return check


def practice_sample(readings: Iterable[Reading], boxes: int = 3, per_box: int = 4) -> list[Reading]:
    """The first `per_box` readings of the first `boxes` boxes that have as many, in their order.

    Several readings per box are what show a key at work: each box's readings all land on one
    partition. (The first few readings of a recording usually come from as many different boxes.)
    Boxes with fewer readings stand in when an area has too few boxes."""
    chosen: dict[str, list[tuple[int, Reading]]] = {}
    for number, reading in enumerate(readings):
        taken = chosen.setdefault(reading.box_id, [])
        if len(taken) < per_box:
            taken.append((number, reading))
        if sum(len(taken) == per_box for taken in chosen.values()) == boxes:
            break
    fullest = sorted(chosen.values(), key=len, reverse=True)[:boxes]  # a stable sort: first-filled first
    return [reading for _, reading in sorted(pair for taken in fullest for pair in taken)]


@contextmanager
def practice_topic(kafka_options: dict):
    """A new topic with 3 partitions for one self-check; deleted afterwards."""
    name = f"pm25_practice_{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(**kafka_options) as admin:
        ensure_topic(admin, name, PRACTICE_PARTITIONS)
        try:
            yield name
        finally:
            admin.delete_topics([name])


def _read_back(kafka_options: dict, topic: str, expected: int, timeout_s: float = 20.0) -> list:
    """Every record of `topic`, once `expected` have arrived or the time is up."""
    with KafkaConsumer(**kafka_options, enable_auto_commit=False) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(PRACTICE_PARTITIONS)])
        consumer.seek_to_beginning()
        records, deadline = [], time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            records += [record for batch in consumer.poll(timeout_ms=500).values() for record in batch]
        return records


def key_hint(key: bytes, box_id: str) -> str:
    """Why a message's key is not its box's id."""
    if key == str(box_id.encode()).encode():
        return (
            "Your key arrives as the text of bytes, b'…': the producer's key_serializer already turns the key into "
            "bytes, so send key=reading['boxId'] as it is, without .encode()."
        )
    return (
        f"A message's key is {key!r}, not its box's id: with key=reading['boxId'] all readings of a box go to one "
        "partition and stay in order."
    )


class _WatchedProducer:
    """A KafkaProducer that notes the order of send() and flush() calls, and makes the `failing`-th send fail: it
    never reaches the broker, and its future fails during flush(), as a send the broker never acknowledged."""

    def __init__(self, producer: KafkaProducer, failing: int):
        self._producer = producer
        self.calls: list[str] = []
        self.failing = failing
        self._failed: list[FutureRecordMetadata] = []

    def send(self, topic, *args, **kwargs):
        self.calls.append("send")
        if self.calls.count("send") != self.failing:
            return self._producer.send(topic, *args, **kwargs)
        future = FutureRecordMetadata(FutureProduceResult(TopicPartition(topic, -1)), -1, None, None, -1, -1, -1)
        self._failed.append(future)
        return future

    def flush(self, *args, **kwargs):
        self.calls.append("flush")
        for future in self._failed:
            if not future.is_done:
                future.failure(KafkaTimeoutError("not acknowledged in time (made to fail by the check)"))
        return self._producer.flush(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._producer, name)


def producer_check(kafka_options: dict, readings: Iterable[Reading]) -> Callable[..., str]:
    """Step 2: `to_json(reading_dict) -> bytes` and `send_readings(producer, topic, readings) -> failed sends`.

    The check builds KafkaProducer(value_serializer=to_json, key_serializer=str.encode), lets
    send_readings send the readings (as dicts) to a practice topic, makes one send fail, reads the
    others back, and shows the partition each box's readings went to. send_readings must return 1:
    flush() returns when every send has its answer, failed ones too, so only the futures tell.
    """
    messages = [reading.as_message() for reading in readings]

    def check(to_json, send_readings) -> str:
        encoded = to_json(messages[0])
        if not isinstance(encoded, bytes):
            raise WrongAnswer(
                f"to_json must return bytes, it returned {type(encoded).__name__}: "
                "encode the JSON text, e.g. json.dumps(reading).encode('utf-8')."
            )
        try:
            decoded = json.loads(encoded)
        except ValueError:
            raise WrongAnswer(f"to_json's bytes are not JSON ({encoded[:40]!r}...): use json.dumps(reading).") from None
        if decoded != messages[0]:
            raise WrongAnswer("to_json(reading) does not decode back to the same reading: use json.dumps(reading).")
        with practice_topic(kafka_options) as topic:
            serializers = {"value_serializer": FunctionSerializer(to_json), "key_serializer": TextKey()}
            producer = _WatchedProducer(KafkaProducer(**kafka_options, **serializers), failing=len(messages) // 2 + 1)
            try:
                failed = send_readings(producer, topic, messages)  # an error in it: tasks.check names its line
            finally:
                producer.close()
            calls = producer.calls
            sent = calls.count("send") - (calls.count("send") >= producer.failing)  # one was made to fail
            records = _read_back(kafka_options, topic, sent)
        if calls.count("send") != len(messages):
            raise WrongAnswer(f"send() was called {calls.count('send')} times for {len(messages)} readings.")
        if "flush" not in calls:
            raise WrongAnswer(
                "flush() is missing: send() only puts a message in a buffer. Call producer.flush() once after "
                "the loop, so the function returns when every send has its answer."
            )
        if calls.count("flush") > 1 or calls[-1] != "flush":
            raise WrongAnswer(
                "Call producer.flush() once, after the loop: flushing inside the loop waits for every "
                "message on its own, which makes sending many times slower."
            )
        if len(records) != len(messages) - 1:
            raise WrongAnswer(f"{len(messages) - 1} readings were sent but {len(records)} arrived.")
        keys = {record.key for record in records}
        if keys == {None}:
            raise WrongAnswer("Your messages have no key: send with key=reading['boxId'].")
        partitions: dict[str, list[int]] = {}
        for record in records:
            box_id = json.loads(record.value)["boxId"]
            if record.key != box_id.encode():
                raise WrongAnswer(key_hint(record.key, box_id))
            partitions.setdefault(json.loads(record.value)["boxName"], []).append(record.partition)
        if failed != 1 or isinstance(failed, bool):
            raise WrongAnswer(
                f"send_readings returned {failed!r}: 1 of the {len(messages)} sends failed (the check made it fail). "
                "flush() also returns when sends failed: keep the future that each send() returns, and after "
                "flush() return how many failed (future.failed())."
            )
        lines = [
            f"  {name}: {len(numbers)} readings, on partition{'s' if len(set(numbers)) > 1 else ''} "
            + ", ".join(map(str, sorted(set(numbers))))
            for name, numbers in sorted(partitions.items())
        ]
        return (
            f"{len(records)} readings arrived, each box's on one partition, and the 1 send that failed was "
            "counted:\n" + "\n".join(lines)
        )

    return check


class _WatchedConsumer:
    """A KafkaConsumer that notes what was processed when each commit() was made, whether that commit followed an
    empty poll, and whether it was closed. Its first commit after a batch fails with CommitFailedError, as one
    does when the group rebalances; then it sends the rest, so a loop that goes on has more to process and commit."""

    def __init__(self, consumer: KafkaConsumer, send_rest: Callable[[], None]):
        self._consumer = consumer
        self._send_rest = send_rest
        self.processed: list[tuple[int, int]] = []  # (partition, offset), in processing order
        self.commits = 0  # those that succeeded
        self.commit_failed = False  # the one made to fail has happened
        self.idle_commits = 0  # commits right after a poll that returned nothing
        self.closed = False
        self.polls = 0
        self.polls_since_progress = 0
        self.committed_unprocessed: tuple[int, int] | None = None  # the first record committed unprocessed
        self._last_batch_empty = True
        self.first_half = 0  # records sent before the loop started

    def poll(self, *args, **kwargs):
        batch = self._consumer.poll(*args, **kwargs)
        self.polls += 1
        self._last_batch_empty = not batch
        self.polls_since_progress = 0 if batch else self.polls_since_progress + 1
        if not batch and len(self.processed) >= self.first_half:
            self._send_rest_once()  # a loop that never commits gets the rest too
        return batch

    def _send_rest_once(self):
        if self._send_rest is not None:
            self._send_rest()
            self._send_rest = None

    def commit(self, offsets: dict | None = None):
        if offsets is None:
            offsets = {tp: OffsetAndMetadata(self._consumer.position(tp), "") for tp in self._consumer.assignment()}
        done = set(self.processed)
        for tp, offset in offsets.items():
            start = self._consumer.committed(tp) or 0
            missing = [o for o in range(start, offset.offset) if (tp.partition, o) not in done]
            if missing and self.committed_unprocessed is None:
                self.committed_unprocessed = (tp.partition, missing[0])
        self.idle_commits += self._last_batch_empty
        if not self.commit_failed and not self._last_batch_empty:
            self.commit_failed = True
            self._send_rest_once()
            raise CommitFailedError("the group rebalanced (made to fail by the check)")
        self.commits += 1
        return self._consumer.commit(offsets)

    def close(self, *args, **kwargs):
        self.closed = True
        return self._consumer.close(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._consumer, name)


NO_PROGRESS_POLLS = 10  # polls of 0.5 s with no record, once all were sent: the loop misses records
NO_POLL_S = 5  # stop() asked this long without a poll: the loop never polls


def consumer_loop_check(
    kafka_options: dict, readings: Iterable[Reading], timeout_s: float = 60.0
) -> Callable[..., str]:
    """Step 3: `make_consumer(kafka_options, topic, group_id)` makes a consumer of the group, subscribed to the topic,
    starting at the earliest offset, auto-commit off; `run_loop(consumer, process, stop)` polls, processes every
    record, commits after each batch with records (a failed commit is reported and polling goes on), and closes
    the consumer at the end.

    The check sends half the readings to a practice topic, runs run_loop with make_consumer's consumer of a new
    group, makes its first commit fail and then sends the other half; it stops the loop after a
    poll that found nothing once every record was processed (or after polls that found nothing new), and
    compares what the group committed with what was processed.
    """
    values = [json.dumps(reading.as_message()).encode() for reading in readings]
    half = len(values) // 2

    def check(make_consumer, run_loop) -> str:
        with practice_topic(kafka_options) as topic, KafkaProducer(**kafka_options) as producer:

            def send(numbers: range) -> None:
                for number in numbers:
                    producer.send(topic, value=values[number], partition=number % PRACTICE_PARTITIONS)
                producer.flush()

            send(range(half))
            group = f"pm25_practice_{uuid.uuid4().hex[:8]}"
            group_options = {
                "session_timeout_ms": GROUP_SESSION_TIMEOUT_MS,
                "heartbeat_interval_ms": GROUP_SESSION_TIMEOUT_MS // 3,
            }
            consumer = make_consumer({**kafka_options, **group_options}, topic, group)
            try:
                _judge_consumer(consumer, topic, group)
            except WrongAnswer:
                if isinstance(consumer, KafkaConsumer):
                    consumer.close()
                raise
            watched = _WatchedConsumer(consumer, lambda: send(range(half, len(values))))
            watched.first_half = half
            started = time.monotonic()

            def stop() -> bool:  # a verdict within seconds, not after a minute of silence
                done = len(watched.processed) >= len(values) and watched.polls_since_progress > 0
                stuck = watched.polls_since_progress > NO_PROGRESS_POLLS and bool(consumer.assignment())
                never_polled = watched.polls == 0 and time.monotonic() - started > NO_POLL_S
                return done or stuck or never_polled or time.monotonic() - started > timeout_s

            def process(record) -> None:
                if not hasattr(record, "offset"):
                    raise WrongAnswer(
                        f"process() got {type(record).__name__} {record!r}, not a record. A batch is a dict "
                        "{partition: [records]}: loop over batch.values(), then over the records in each list."
                    )
                watched.processed.append((record.partition, record.offset))

            print(
                "The check makes your loop's first commit fail on purpose, as a rebalance does; your loop "
                "should say so and go on."
            )
            try:
                run_loop(watched, process, stop)
                stopped = None
            except CommitFailedError as error:
                stopped = error
            finally:
                consumer.close()
            committed = _committed(kafka_options, group, topic)
        return _judge_loop(watched, committed, len(values), stopped)

    return check


def _judge_consumer(consumer, topic: str, group: str) -> None:
    """WrongAnswer naming the first setting of the learner's consumer that the loop cannot work with."""
    if not isinstance(consumer, KafkaConsumer):
        raise WrongAnswer(f"make_consumer returned {consumer!r}, not a KafkaConsumer: end it with return consumer.")
    config = consumer.config
    if config["group_id"] is None:
        raise WrongAnswer(
            "Your consumer has no group_id: without a group nothing can be committed. Pass group_id=group_id."
        )
    if config["group_id"] != group:
        raise WrongAnswer(
            f"Your consumer's group_id is {config['group_id']!r}, not the group_id the function was given "
            f"({group!r}): pass group_id=group_id, so that the caller chooses the group."
        )
    if str(config["auto_offset_reset"]).lower() != "earliest":
        raise WrongAnswer(
            f"Your consumer's auto_offset_reset is {config['auto_offset_reset']!r}: a new group then starts after the "
            'newest record and never sees those already in the topic. Use auto_offset_reset="earliest".'
        )
    if config["enable_auto_commit"]:
        raise WrongAnswer(
            "Your consumer commits by itself every few seconds (enable_auto_commit is True), records not processed "
            "yet included: a crash could lose them. Use enable_auto_commit=False; your loop commits after processing."
        )
    if consumer.subscription() != {topic}:
        raise WrongAnswer(
            f"Your consumer is not subscribed to the topic (its subscription: {consumer.subscription() or 'none'}): "
            "call consumer.subscribe([topic])."
        )


def _committed(kafka_options: dict, group: str, topic: str) -> int:
    """The sum of the group's committed offsets (asked without joining the group)."""
    with KafkaConsumer(**kafka_options, group_id=group, enable_auto_commit=False) as reader:
        return sum(reader.committed(TopicPartition(topic, p)) or 0 for p in range(PRACTICE_PARTITIONS))


def _judge_loop(watched: _WatchedConsumer, committed: int, sent: int, stopped: CommitFailedError | None) -> str:
    if watched.committed_unprocessed is not None:
        partition, offset = watched.committed_unprocessed
        raise WrongAnswer(
            f"You committed partition {partition}, offset {offset} before processing it. If the consumer crashed "
            "right after that commit, the record would be lost. consumer.commit() without arguments commits the "
            "position of every partition polled so far, records not processed yet included: call it after the loop "
            "over the batch. (Production code commits exactly what it processed: consumer.commit({TopicPartition("
            "record.topic, record.partition): OffsetAndMetadata(record.offset + 1)}).)"
        )
    if stopped is not None:
        raise WrongAnswer(
            "Your loop stopped with CommitFailedError: the check made one commit fail, as it does when the group "
            "rebalances. That loses nothing (the records are read again), so catch it, print a line, and go on "
            "polling: try: consumer.commit() except CommitFailedError: ..."
        )
    processed = Counter(watched.processed)
    if not watched.polls:
        raise WrongAnswer("consumer.poll() was never called: each round of the loop starts with a poll.")
    if not processed:
        raise WrongAnswer("process(record) was never called: call it for every record of the batch.")
    twice = [record for record, times in processed.items() if times > 1]
    if twice:
        raise WrongAnswer(f"The record at partition {twice[0][0]}, offset {twice[0][1]} was processed twice.")
    if len(processed) < sent:
        raise WrongAnswer(f"{len(processed)} of {sent} records were processed: process every record of every batch.")
    if not watched.commit_failed:
        raise WrongAnswer(
            "Nothing was committed: call consumer.commit() after processing the batch. "
            "Without it, a restarted consumer of this group reads everything again."
        )
    if watched.idle_commits:
        raise WrongAnswer(
            f"Your loop committed {watched.idle_commits} times after a poll that returned nothing. Such a commit "
            "has nothing new to say, and an idle consumer would send two a second: commit only after a batch "
            "with records (if batch: ...)."
        )
    if committed < sent:
        raise WrongAnswer(
            f"{sent} records were processed but only {committed} committed: the last batch was not "
            "committed. Commit after processing each batch, inside the loop."
        )
    if not watched.closed:
        raise WrongAnswer(
            "The consumer was never closed: close it at the end, in a finally: block, so that it leaves its group "
            "at once (its partitions go to the other members) even when the loop stops with an error."
        )
    return (
        f"the loop processed all {sent} records on {PRACTICE_PARTITIONS} partitions, went on after the commit the "
        f"check made fail, committed {watched.commits} time{'s' * (watched.commits != 1)}, each after a batch: the "
        f"group's committed offsets add up to {committed}. It closed the consumer."
    )


def window_detector_check(
    readings: list[Reading],
    threshold: float = 15.0,
    window_hours: int = 24,
    min_hours: int = 18,
    reference: Callable[..., Detector] = Detector,
) -> Callable[..., str]:
    """Step 3: run the learner's WindowDetector and the package's Detector on the same readings.

    Only readings the Detector accepted (`last_accepted`) go to the learner's detector: filtering
    duplicates, late and saturated readings is what the hardened Detector adds, not the exercise.
    First both run on small hand-made boxes, each made so that one typical mistake shows and gets its
    own hint (real data may hide it: a day without a resolved alert, no mean of exactly 15.00); then on
    `readings`, where the first difference is named.
    """
    settings = {"threshold": threshold, "window_hours": window_hours, "min_hours": min_hours}
    cases = [case for case in _hand_made_cases(settings) if case.readings]

    def check(WindowDetector) -> str:  # the name of the learner's class
        for case in cases:
            steps = list(_steps(WindowDetector, reference, case.readings, settings))
            first = next((step for step in steps if step.yours != step.expected), None)
            if first and (hint := case.diagnose(steps, first)):
                raise WrongAnswer(hint)
        events = _compare(WindowDetector, reference, readings, settings)
        for case in cases:  # a difference that no hint names: the first one
            _compare(WindowDetector, reference, case.readings, settings)
        return (
            f"same alerts as pm25.rules.detector.Detector on {len(readings):,} readings: "
            f"{events['exceeded']} exceeded, {events['resolved']} resolved"
            + (
                f", and the same on {len(cases)} hand-made boxes ({', '.join(case.shows for case in cases)})."
                if cases
                else "."
            )
        )

    return check


@dataclass(frozen=True)
class _Step:
    """One accepted reading: what the learner's detector said, what Detector said, and Detector's window."""

    number: int
    reading: Reading
    yours: object
    expected: str | None
    mean: float = math.nan  # the window is looked up only where the two differ: it costs more than the rest
    hours: int = 0


@dataclass(frozen=True)
class _HandMadeCase:
    """A small stream of one box that a typical mistake gets wrong, and the hint that names the mistake."""

    readings: list[Reading]
    shows: str  # what the box has, for the confirmation
    diagnose: Callable[[list[_Step], _Step], str | None]  # (steps, first difference) -> the hint, if it is this mistake


def _steps(WindowDetector, reference, readings: list[Reading], settings: dict) -> Iterator[_Step]:
    yours, theirs = WindowDetector(**settings), reference(**settings)
    for number, reading in enumerate(readings, start=1):
        alert = theirs.process(reading)
        if not theirs.last_accepted:
            continue
        event = yours.process(reading)
        if event not in EVENTS:
            raise WrongAnswer(f'process() must return "exceeded", "resolved" or None; it returned {event!r}.')
        expected = alert.event if alert else None
        yield _Step(number, reading, event, expected, *(theirs.window(reading.box_id) if event != expected else ()))


def _compare(WindowDetector, reference, readings: list[Reading], settings: dict) -> Counter:
    """The events of the learner's detector, or WrongAnswer at the first that differs from the reference's."""
    events: Counter = Counter()
    for step in _steps(WindowDetector, reference, readings, settings):
        if step.yours != step.expected:
            raise WrongAnswer(_first_difference(step, settings))
        events[step.yours] += 1
    return events


BUSY_HOUR_READINGS = 60  # one a minute, as a sensor with a short interval sends
HAND_MADE_BOX = "0" * 23 + "1"
_START = datetime(2024, 1, 15, tzinfo=UTC)


def _reading(after: timedelta, value: float) -> Reading:
    return Reading(HAND_MADE_BOX, "Hand-made box", HAND_MADE_BOX, 0.0, 0.0, _START + after, value)


def _hourly(values: list[float]) -> list[Reading]:
    """The hand-made box with one reading per clock hour, of these values."""
    return [_reading(timedelta(hours=hour), value) for hour, value in enumerate(values)]


def _busy_hour(value: float, readings: int, hour: int = 0) -> list[Reading]:
    """The hand-made box with `readings` readings of `value`, spread over one clock hour."""
    return [_reading(timedelta(hours=hour, seconds=3600 * n // readings), value) for n in range(readings)]


def _at_threshold_box(threshold: float, high: float, low: float, window_hours: int) -> list[Reading]:
    """Windows at exactly the threshold (no alert), then one above it, then one back at exactly it, then below:
    hours at the threshold, an hour of `high` (twice the threshold), an hour of 0, and hours of `low`."""
    return _hourly([threshold] * window_hours + [high, 0.0, low, low])


def _said(event) -> str:
    return "no alert" if event is None else f'"{event}"'


def _hand_made_cases(settings: dict) -> list[_HandMadeCase]:
    """The hand-made boxes in the order they are tried: each hint assumes the mistakes before it are ruled out.
    A case has no readings where the settings allow no such box (e.g. 2 × threshold would be saturated)."""
    threshold, window_hours, min_hours = settings["threshold"], settings["window_hours"], settings["min_hours"]
    low, high = round(threshold / 2, 2), round(2 * threshold, 2)
    possible = window_hours >= 3 and low > 0 and high < VALUE_LIMIT
    # A tie needs a threshold the readings can hold exactly and whose mean of equal values stays exact.
    exact = round(threshold, 2) == threshold and all(
        sum([threshold] * n) / n == threshold == math.fsum([threshold] * n) / n for n in range(1, window_hours + 1)
    )
    falling = _low_without_a_tie(threshold, high, window_hours) if possible else None
    busy_readings = max(BUSY_HOUR_READINGS, window_hours)
    return [
        _HandMadeCase(
            _hourly([high] * (window_hours + 1)) if possible else [],
            "a decision on closed hours only",
            lambda steps, first: _inside_the_hour_hint(steps, first, settings, high),
        ),
        _HandMadeCase(
            [*_busy_hour(high, max(BUSY_HOUR_READINGS, min_hours)), _reading(timedelta(hours=1), high)]
            if possible and min_hours > 1
            else [],
            "too few hours with data",
            lambda steps, first: _too_few_hours_hint(steps, first, settings),
        ),
        _HandMadeCase(
            _at_threshold_box(threshold, high, low, window_hours) if possible and exact else [],
            "a mean of exactly the threshold",
            lambda steps, first: _at_the_threshold_hint(steps, first, settings),
        ),
        _HandMadeCase(
            _hourly([high] * window_hours + [falling] * 3 * window_hours) if falling else [],
            "a mean that falls back",
            lambda steps, first: _resolves_late_hint(steps, first, settings, high, falling),
        ),
        _HandMadeCase(
            _hourly([low] * (window_hours - 1))
            + _busy_hour(high, busy_readings, hour=window_hours - 1)
            + [_reading(timedelta(hours=window_hours), low), _reading(timedelta(hours=window_hours + 1), low)]
            if possible
            else [],
            "one busy hour among quiet ones",
            lambda steps, first: _mean_of_values_hint(steps, first, settings, busy_readings),
        ),
    ]


def _low_without_a_tie(threshold: float, high: float, window_hours: int) -> float | None:
    """About threshold / 2, so that no window of `high` hours followed by hours of it has a mean of exactly the
    threshold: a box that falls back should test the way back, not how a tie is rounded. None if none is > 0."""
    exact_threshold = Fraction(str(threshold)) * 100  # in hundredths, as Detector takes it
    for low in range(hundredths(threshold) // 2, 0, -1):
        means_times_hours = ((window_hours - k) * hundredths(high) + k * low for k in range(window_hours + 1))
        if window_hours * exact_threshold not in means_times_hours:
            return low / 100
    return None


def _resolves_late_hint(steps: list[_Step], first: _Step, settings: dict, high: float, low: float) -> str | None:
    """For a detector with no way back to "resolved", or whose window keeps hours that have left it."""
    resolved = next((step for step in steps if step.expected == "resolved"), None)
    if resolved is None or first is not resolved:
        return None  # it went wrong before: another mistake
    window_hours, threshold = settings["window_hours"], settings["threshold"]
    story = (
        f"On a hand-made box with one reading of {high:g} µg/m³ in each of {window_hours} hours, then one of "
        f'{low:g} µg/m³ in each of {3 * window_hours} hours, Detector says "resolved" at reading {resolved.number}, '
        f"when the {window_hours}-hour mean is back at or below {threshold:g} µg/m³ ({resolved.mean:.2f} µg/m³)"
    )
    later = next((step for step in steps if step.yours == "resolved"), None)
    if later is None:
        return (
            f'Yours never says "resolved". {story}. Add the way back: when a box is exceeded and its mean is at or '
            'below the threshold, return "resolved" (and note that the box is no longer exceeded).'
        )
    return (
        f"{story}; yours says it only at reading {later.number}: your window still counts hours that have left it. "
        f"The window decided when hour H begins holds the {window_hours} hours before it, H − {window_hours} to "
        f"H − 1: drop every hour more than {window_hours} hours before H."
    )


def _inside_the_hour_hint(steps: list[_Step], step: _Step, settings: dict, high: float) -> str | None:
    """For a detector that decides at any reading, on a window that includes the reading's own, open hour."""
    following = next((later for later in steps if later.number > step.number), None)
    if step.yours != "exceeded" or step.expected is not None or not following or following.expected != "exceeded":
        return None  # not one reading early: another mistake
    return (
        f'On a hand-made box with one reading of {high:g} µg/m³ in each hour, yours says "exceeded" at reading '
        f"{step.number} ({step.reading.timestamp:%H:%M}), while its hour is still open; Detector says it at reading "
        f"{following.number} ({following.reading.timestamp:%H:%M}), the box's first reading of a new hour, on the "
        f"{settings['window_hours']} closed hours before it. Decide only when a reading's hour is newer than every "
        "hour of its box, and on the hours before it: an open hour is half-finished."
    )


def _too_few_hours_hint(steps: list[_Step], step: _Step, settings: dict) -> str | None:
    """For a detector that decides before min_hours hours have data (counting readings, or not counting)."""
    min_hours = settings["min_hours"]
    if step.yours != "exceeded" or step.hours >= min_hours:
        return None
    busy = len(steps) - 1  # all but the last reading, in the next hour
    return (
        f"On a hand-made box with {busy} readings of {step.reading.value:g} µg/m³, all in one hour, then one in "
        f'the next hour, yours says "exceeded" at reading {step.number}: the window then has {step.hours} closed '
        f"hour{'' if step.hours == 1 else 's'} with data, fewer than {min_hours}. With fewer than {min_hours} hours "
        "with data the rule decides nothing: count the hours with data (not the readings) and decide only when "
        "there are enough. Is your `hour` the clock hour, the timestamp without minutes, seconds and microseconds?"
    )


def _at_the_threshold_hint(steps: list[_Step], step: _Step, settings: dict) -> str | None:
    """For a detector that takes a mean of exactly the threshold as exceeded (>= instead of >, < instead of <=)."""
    threshold = settings["threshold"]
    if step.mean != threshold or step.hours < settings["min_hours"]:
        return None
    resolves_later = any(later.yours == "resolved" for later in steps if later.number > step.number)
    if step.expected == "resolved" and not resolves_later:
        return None  # it never resolves: the next box names that
    return (
        f"On a hand-made box whose {settings['window_hours']}-hour mean is exactly {threshold:g} µg/m³ at reading "
        f"{step.number}, Detector gives {_said(step.expected)}, yours gives {_said(step.yours)}. The threshold itself "
        f'is not exceeded: "exceeded" when the mean is above it (mean > threshold), "resolved" when it is back at '
        "or below it (mean <= threshold)."
    )


def _mean_of_values_hint(steps: list[_Step], step: _Step, settings: dict, busy: int) -> str | None:
    """For a detector that averages every value of the window instead of the hourly means."""
    quiet_hours = settings["window_hours"] - 1
    values = [earlier.reading.value for earlier in steps if earlier.number <= step.number]
    if step.yours != "exceeded" or step.number <= quiet_hours or sum(values) / len(values) <= settings["threshold"]:
        return None  # another mistake: the general message names the first difference
    if any(later.yours == "resolved" for later in steps if later.number > step.number):
        return None  # back to quiet hours, the mean of all values would still be above: another mistake
    low, high = steps[0].reading.value, steps[quiet_hours].reading.value
    hourly = (quiet_hours * low + high) / (quiet_hours + 1)
    return (
        f"On a hand-made box with one reading of {low:g} µg/m³ in each of {quiet_hours} hours, then an hour of "
        f'{busy} readings of {high:g} µg/m³, yours says "exceeded" at reading {step.number}, after '
        f"{min(step.number - quiet_hours, busy)} readings of the busy hour. The mean of all {step.number} values is "
        f"{sum(values) / step.number:.2f} µg/m³, but the rule takes the mean of the hourly means: "
        f"({quiet_hours} × {low:g} + {high:g}) / {quiet_hours + 1} = {hourly:.2f} µg/m³, no alert. "
        "Average each hour first (total / count), then average those hourly means: an hour with many "
        "readings must count as much as an hour with one, no more."
    )


def _first_difference(step: _Step, settings: dict) -> str:
    min_hours, reading = settings["min_hours"], step.reading
    where = (
        f"reading {step.number:,} (box {reading.box_name!r}, {format_timestamp(reading.timestamp)}, "
        f"{reading.value:g} µg/m³)"
    )
    if step.hours < min_hours:
        why = f"the box has only {step.hours} closed hours with data in its window, fewer than {min_hours}"
    else:
        mean_text = "unknown" if math.isnan(step.mean) else f"{step.mean:.2f} µg/m³"
        why = (
            f"the {settings['window_hours']:g} closed hours before this reading's hour have a mean of {mean_text} "
            f"over {step.hours} hours with data"
        )
    return (
        f"The first difference is at {where}: Detector gives {_said(step.expected)} ({why}), "
        f"yours gives {_said(step.yours)}."
    )
