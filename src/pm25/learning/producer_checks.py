"""Step 2's self-checks: which field of a reading is the message key, and the learner's producer.

Each `*_check(...)` returns a checker for pm25.learning.tasks.check: it takes the learner's answer, returns a
sentence confirming it, or raises WrongAnswer with the first thing that is wrong and how to fix it.
producer_check runs the learner's `to_json` and `send_readings` on a practice topic of its own, makes one send
fail, and shows the partition each box's readings went to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError
from kafka.producer.future import FutureProduceResult, FutureRecordMetadata

from pm25.data.contract import Reading
from pm25.learning.practice_topic import PRACTICE_PARTITIONS, practice_topic
from pm25.learning.tasks import WrongAnswer
from pm25.streaming.sending import FunctionSerializer, TextKey

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


def _read_back(kafka_options: dict, topic: str, expected: int, timeout_s: float = 20.0) -> list:
    """Every record of `topic`, once `expected` have arrived or the time is up."""
    with KafkaConsumer(**kafka_options, enable_auto_commit=False) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(PRACTICE_PARTITIONS)])
        consumer.seek_to_beginning()
        records: list = []
        deadline = time.monotonic() + timeout_s
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
