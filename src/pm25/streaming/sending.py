"""Step 2's producer: its settings (chosen by a benchmark), NoBroker when no broker answers, serializers for
the learner's key and to_json, and GuardedProducer, what production adds around the learner's own send loop
(a delivery report, Ctrl+C between sends, a stop when the broker stops acknowledging)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, nullcontext

from kafka import KafkaProducer
from kafka.errors import IllegalStateError, KafkaError
from kafka.future import Future
from kafka.serializer import Serializer

from pm25.data.contract import Reading
from pm25.errors import LearnerError
from pm25.streaming import refused_logins
from pm25.streaming.delivery import DeliveryReport, flush_and_close, flush_within
from pm25.streaming.interrupts import ctrl_c_between_sends

HOW_TO_START_A_BROKER = (
    "Start one with `docker compose up -d` (the Docker stack) or `make lab` (no Docker), "
    "or point KAFKA_BOOTSTRAP_SERVERS at your broker."
)


# Batching, chosen from `benchmarks/bench_producer.py --sweep` (linger_ms 5/20/50 x batch_size 16 KiB..1 MiB):
# batches of 64 KiB and more cut the client's CPU per message by ~15 % against Kafka's 16 KiB default, and a
# longer linger made sending slower, not faster (a batch that is not full waits for it, in bulk and replay alike).
# Bulk alone does not need its own linger either: 5, 20, 50 and 100 ms (256 KiB to 1 MiB) cost the same CPU per
# message within 1 µs. 256 KiB stays far below the 1 MiB that an Apache Kafka broker accepts in one request.
LINGER_MS = 5
BATCH_SIZE = 256 * 1024

# Step 2's producer, and the benchmark that measures it: stored on every in-sync replica, retries without
# duplicates, batched as above, and an error within seconds rather than a hang when no broker answers.
PRODUCER_SETTINGS = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": LINGER_MS,
    "batch_size": BATCH_SIZE,
    "bootstrap_timeout_ms": 10_000,
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 20_000,
}


class NoBroker(LearnerError):
    """No Kafka broker answered at the bootstrap address, or one refused the login (kafka-python raises the
    same time-out for both)."""

    def __init__(self, bootstrap_servers: str):
        if refusal := refused_logins.last_refusal():
            super().__init__(
                f"The Kafka broker at {bootstrap_servers} refused the login ({refusal}): "
                "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (and KAFKA_SASL_MECHANISM)."
            )
        else:
            super().__init__(f"No Kafka broker answers at {bootstrap_servers}. {HOW_TO_START_A_BROKER}")


class FunctionSerializer(Serializer):
    """A plain function, such as the learner's `to_json`, as a serializer (kafka-python warns about bare functions)."""

    def __init__(self, function: Callable[[object], bytes]):
        self.function = function

    def serialize(self, topic, headers, data):
        return self.function(data)


class TextKey(Serializer):
    """Any key as UTF-8 text: a key that is not the box id arrives in the topic as it is, to be seen there."""

    def serialize(self, topic, headers, data):
        return None if data is None else str(data).encode("utf-8")


class Message(dict):
    """A reading's message (the dict the learner's code sends) that remembers its Reading for the report."""

    __slots__ = ("reading",)

    def __init__(self, reading: Reading):
        super().__init__(reading.as_message())
        self.reading = reading


class BrokerStopped(LearnerError):
    """The broker stopped acknowledging during a send."""


class GuardedProducer:
    """What production adds around the learner's own send loop: hand it to `send_readings` instead of the producer.

    Every send() is counted in `report`; a Ctrl+C waits until the message is handed over and counted; once sends
    fail after the broker took them, the loop stops with BrokerStopped (checked every `check_every` sends, as
    counting costs); flush() gives up after 40 s (longer than delivery_timeout_ms) without a traceback. Leaving
    the `with` block flushes and closes the producer, however the loop ended.
    """

    def __init__(self, producer: KafkaProducer, report: DeliveryReport, check_every: int = 500):
        self._producer, self.report, self.check_every = producer, report, check_every
        self._ctrl_c, self._held = ExitStack(), nullcontext()
        self._last: Reading | None = None  # the reading of the message handed out last

    def __enter__(self) -> GuardedProducer:
        self._held = self._ctrl_c.enter_context(ctrl_c_between_sends())
        return self

    def __exit__(self, *exception) -> None:
        try:
            flush_and_close(self._producer)
        finally:
            self._ctrl_c.close()  # Ctrl+C acts at once again

    def messages(self, readings: Iterable[Reading]) -> Iterator[Message]:
        """The readings as the messages the learner's loop sends: dicts, each knowing its reading."""
        for reading in readings:
            self._last = reading
            yield Message(reading)

    def send(self, topic: str, key=None, value=None, **options) -> Future:
        reading = value.reading if isinstance(value, Message) else self._last  # a copy of a message: its reading
        if reading is None:
            raise TypeError("GuardedProducer.send() sends the messages of GuardedProducer.messages(readings)")
        with self._held:  # a Ctrl+C here waits until this message is counted
            try:
                future = self._producer.send(topic, key=key, value=value, **options)
            except IllegalStateError:  # the send cell ran before and closed the producer
                raise LearnerError("The producer is closed: run the producer cell, then this one.") from None
            except KafkaError as error:  # refused at once, e.g. larger than the broker accepts
                self.report.refused(reading, error)
                return Future().failure(error)
            self.report.track(future, reading)
        if self.report.sent % self.check_every == 0 and self.report.delivery_failures:
            servers = self._producer.config["bootstrap_servers"]
            raise BrokerStopped(
                f"The broker at {servers if isinstance(servers, str) else ','.join(servers)} stopped acknowledging: "
                f"sending stopped after {self.report.sent} messages; the report below lists what failed. "
                "Is the broker still running?"
            )
        return future

    def flush(self, timeout: float | None = None) -> None:
        flush_within(self._producer, 40 if timeout is None else timeout)  # 40 s: as flush_and_close

    def __getattr__(self, name):
        return getattr(self._producer, name)
