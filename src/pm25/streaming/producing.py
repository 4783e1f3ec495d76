"""What step 2's producer loop needs besides Kafka itself: what production adds around the learner's send loop
(a delivery report, Ctrl+C between sends, a stop when the broker stops acknowledging), event-time pacing for
`replay`, disorder on purpose, and new measurements from openSenseMap for `live`."""

from __future__ import annotations

import dataclasses
import random
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import IllegalStateError, KafkaError, KafkaTimeoutError
from kafka.future import Future
from kafka.serializer import Serializer

from pm25.data.contract import InvalidMessage, KeySerializer, Reading, ReadingSerializer, parse_timestamp
from pm25.data.geo import Aoi
from pm25.data.opensensemap import OpenSenseMapClient, OpenSenseMapError, is_pm25
from pm25.errors import LearnerError
from pm25.streaming import refused_logins, topics

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


@dataclass
class DeliveryReport:
    """What the broker acknowledged and what failed, read from the futures that send() returns.

    Only the first few sends get a callback (to print them as they are acknowledged); the rest
    are counted from their futures, which costs far less than a callback per message. Every
    `settle_every` sends, the answered futures are folded into counts and let go, so a long send
    keeps only the futures still in flight (fewer live objects also means shorter garbage collections).
    """

    show_first: int = 5
    settle_every: int = 10_000
    sent: int = field(default=0, init=False)
    _acknowledged: int = field(default=0, init=False, repr=False)
    _waiting: list[tuple[Future, Reading]] = field(default_factory=list, init=False, repr=False)
    _failures: list[tuple[Reading, str]] = field(default_factory=list, init=False, repr=False)
    _refused: int = field(default=0, init=False, repr=False)
    _partitions: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)

    def track(self, future: Future, reading: Reading) -> None:
        """Register a send: `future` is what producer.send() returned."""
        self.sent += 1
        self._waiting.append((future, reading))
        if self.sent <= self.show_first:
            future.add_callback(self._print_acknowledged, reading)
        if len(self._waiting) >= self.settle_every:
            self._settle()

    def refused(self, reading: Reading, error: Exception) -> None:
        """Register a send that the producer refused at once (e.g. a message larger than allowed)."""
        self.sent += 1
        self._refused += 1
        self._failures.append((reading, _describe(error)))

    @staticmethod
    def _print_acknowledged(reading: Reading, metadata) -> None:
        print(
            f"  acknowledged: {reading.box_name[:24]:24} {reading.timestamp:%Y-%m-%d %H:%M} "
            f"-> partition {metadata.partition}, offset {metadata.offset}"
        )

    def _settle(self) -> None:
        """Count the sends the broker has answered and keep only those it has not.

        A Ctrl+C waits until the count is done: half-way, the counted futures would still be waiting and
        counted again."""
        with ctrl_c_waits():
            waiting = []
            for future, reading in self._waiting:
                if not future.is_done:
                    waiting.append((future, reading))
                elif future.succeeded():
                    self._acknowledged += 1
                    self._partitions.setdefault(reading.box_name, set()).add(future.value.partition)
                else:
                    self._failures.append((reading, _describe(future.exception)))
            self._waiting = waiting

    @property
    def acknowledged(self) -> int:
        self._settle()
        return self._acknowledged

    @property
    def failures(self) -> list[tuple[Reading, str]]:
        self._settle()
        return list(self._failures)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def delivery_failures(self) -> int:
        """Failed after the producer took them (e.g. the broker stopped answering), unlike those refused at once."""
        return self.failed - self._refused

    @property
    def pending(self) -> int:
        self._settle()
        return len(self._waiting)

    @property
    def partitions_by_box(self) -> dict[str, set[int]]:
        self._settle()
        return {box: set(partitions) for box, partitions in self._partitions.items()}

    def summary(self, rows_read: int | None = None, rejected: int | None = None) -> str:
        lines = []
        if rows_read is not None:
            lines.append(f"rows read:    {rows_read}")
        if rejected is not None:
            lines.append(f"rejected:     {rejected} (never sent)")
        lines += [
            f"sent:         {self.sent}",
            f"acknowledged: {self.acknowledged}",
            f"failed:       {self.failed}",
        ]
        if self.pending:
            lines.append(f"unconfirmed:  {self.pending} (the producer was closed before the broker answered)")
        lines += [
            f"  failed: {reading.box_name} {reading.timestamp:%Y-%m-%d %H:%M}: {why}"
            for reading, why in self.failures[:10]
        ]
        return "\n".join(lines)


def _describe(error: BaseException) -> str:
    text = str(error)
    return text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"


def flush_and_close(producer, timeout_s: float = 40) -> None:
    """The end of a send: wait until every message is acknowledged or failed, then close the producer.

    `timeout_s` is longer than the producer's delivery_timeout_ms, so normally nothing is left by then. What
    is left anyway fails as "closed forcefully" in the DeliveryReport, instead of a KafkaTimeoutError
    traceback: kafka-python 3.0.12's idempotent producer can leave messages unanswered for good once its
    broker is gone (a batch that expires after it was sent makes it fetch a new producer id, and while it
    waits for one it stops expiring the other batches).
    """
    _flush_within(producer, timeout_s)
    producer.close(timeout=15)  # more than request_timeout_ms: the sender may be waiting on a connection


def _flush_within(producer, timeout_s: float) -> None:
    """flush(), but what is unanswered after `timeout_s` fails (see flush_and_close) instead of raising."""
    try:
        producer.flush(timeout=timeout_s)
    except KafkaTimeoutError:
        # kafka-python's close() flushes first, so it would raise the same before reaching its own force
        # close; left open, the producer raises again from __del__ and at exit. So force it here.
        producer._sender.force_close()  # fails what is unanswered and ends the sender thread


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
        _flush_within(self._producer, 40 if timeout is None else timeout)  # 40 s: as flush_and_close

    def __getattr__(self, name):
        return getattr(self._producer, name)


class HeldCtrlC:
    """Inside `with held:` a Ctrl+C (SIGINT, Jupyter's interrupt) waits until the block is done; outside, it acts
    as it always does. Made by ctrl_c_between_sends(), which installs its handler once for a whole loop."""

    __slots__ = ("arrived", "inside", "previous")

    def __init__(self, previous):
        self.previous, self.inside, self.arrived = previous, False, None

    def on_sigint(self, number, frame) -> None:
        if self.inside:
            self.arrived = frame
        else:
            self._pass_on(frame)

    def _pass_on(self, frame) -> None:
        if callable(self.previous):
            self.previous(signal.SIGINT, frame)
        elif self.previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    def __enter__(self) -> HeldCtrlC:
        self.inside = True
        return self

    def __exit__(self, *exception) -> None:
        self.inside = False
        if self.arrived is not None:
            frame, self.arrived = self.arrived, None
            self._pass_on(frame)


@contextmanager
def ctrl_c_between_sends():
    """Around a send loop: yields `held`; a Ctrl+C that arrives inside `with held:` waits until that block is done.

    Around producer.send() and report.track(), it makes sure no message reaches the broker uncounted.
    The handler is installed once for the loop: swapping it per message would cost two system calls each.
    """
    if threading.current_thread() is not threading.main_thread():
        yield nullcontext()  # signal handlers belong to the main thread; elsewhere there is nothing to defer
        return
    held = HeldCtrlC(signal.getsignal(signal.SIGINT))
    signal.signal(signal.SIGINT, held.on_sigint)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, held.previous)


@contextmanager
def ctrl_c_waits():
    """Hold back a Ctrl+C until this one block is done, then raise it. Around a loop's every message,
    ctrl_c_between_sends() is cheaper: it installs the handler once, not twice per message."""
    with ctrl_c_between_sends() as held, held:
        yield


def paced(
    readings: Iterable[Reading],
    speedup: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Reading]:
    """Yield readings at the pace of their timestamps, `speedup` times faster than real time.

    Each reading has its own deadline measured from the start, so pauses do not add up to drift.
    """
    started, first = clock(), None
    for reading in readings:
        first = first or reading.timestamp
        deadline = started + (reading.timestamp - first).total_seconds() / speedup
        pause = deadline - clock()
        if pause > 0:
            sleep(pause)
        yield reading


@dataclass
class Disorder:
    """Disorder on purpose, as a real stream has it: `apply()` sends a share of the readings late and a share twice.

    Late: a copy re-sent after a newer reading of its box (a retry that arrives after the box has moved on);
    twice: a copy right after the reading (at-least-once delivery). Both are copies, so a detector that ignores
    late and duplicate readings raises the same alerts as without them. Seeded: the same readings get the same
    disorder, and `late` and `duplicates` count the copies sent. A late copy whose box sends nothing newer is
    never sent.
    """

    late_share: float = 0.0
    duplicate_share: float = 0.0
    seed: int = 25
    late: int = field(default=0, init=False)
    duplicates: int = field(default=0, init=False)

    def __post_init__(self):
        shares = (self.late_share, self.duplicate_share)
        if not all(0 <= share <= 1 for share in shares) or sum(shares) > 1:
            raise ValueError(f"late_share and duplicate_share must lie in 0..1 and add up to at most 1, got {shares}")

    @classmethod
    def from_settings(cls, settings) -> Disorder:
        """PM25_LATE_SHARE and PM25_DUPLICATE_SHARE (0 unless set: no disorder)."""
        return cls(settings.late_share, settings.duplicate_share)

    def apply(self, readings: Iterable[Reading]) -> Iterator[Reading]:
        """The readings, each once and in their order, with the copies in between."""
        draw = random.Random(self.seed).random
        self.late = self.duplicates = 0  # the copies of this run: a send run again starts afresh
        held: dict[str, Reading] = {}  # per box, the copy to re-send after the box's next, newer reading
        for reading in readings:
            yield reading
            copy = held.get(reading.box_id)
            if copy is not None and copy.timestamp < reading.timestamp:
                del held[reading.box_id]
                self.late += 1
                yield copy
            chance = draw()
            if chance < self.late_share:
                held.setdefault(reading.box_id, reading)
            elif chance < self.late_share + self.duplicate_share:
                self.duplicates += 1
                yield reading


class BackgroundReplay:
    """Step 2's replay, run from step 3 in a thread: the readings paced by their timestamps, `speedup` times
    real time, with `disorder`, into a topic of their own. A consumer that starts meanwhile sees them arrive."""

    def __init__(
        self, kafka_options: dict, topic: str, readings: list[Reading], speedup: float, disorder: Disorder | None = None
    ):
        self.topic, self.report, self.error = topic, DeliveryReport(show_first=0), None
        self.finished, self._stopping = threading.Event(), threading.Event()
        self._producer = KafkaProducer(
            **kafka_options, key_serializer=KeySerializer(), value_serializer=ReadingSerializer(), **PRODUCER_SETTINGS
        )
        sending = (disorder or Disorder()).apply(paced(readings, speedup, sleep=self._stopping.wait))
        self._thread = threading.Thread(target=self._send, args=(sending,), name="pm25-replay", daemon=True)
        self._thread.start()

    def _send(self, readings: Iterable[Reading]) -> None:
        try:
            for reading in readings:
                if self._stopping.is_set():
                    break
                self.report.track(self._producer.send(self.topic, key=reading.box_id, value=reading), reading)
        except Exception as error:  # kept for summary(): a thread's exception would vanish unseen
            self.error = error
        finally:
            flush_and_close(self._producer)
            self.finished.set()

    def stop(self, timeout_s: float = 60) -> None:
        """Stop sending and wait until what was sent is acknowledged or failed."""
        self._stopping.set()
        self.finished.wait(timeout_s)

    def summary(self) -> str:
        state = f"failed: {_describe(self.error)}" if self.error else "done" if self.finished.is_set() else "sending"
        return f"Replay into {self.topic!r}: {self.report.sent} sent, {state}."


_replays: list[BackgroundReplay] = []  # the one started last, to stop when its cell runs again


def start_live_replay(settings, readings: list[Reading], speedup: float) -> tuple[object, BackgroundReplay]:
    """A BackgroundReplay at `speedup` into a fresh topic, and the settings that name that topic.

    Fresh, so that nothing in it was sent before: a reading counts as late only if the replay made it late
    (PM25_LATE_SHARE), and the latency is measured on readings that arrive while the consumer runs.
    A replay started earlier in this process is stopped first."""
    while _replays:
        earlier = _replays.pop()
        if not earlier.finished.is_set():
            earlier.stop()
            print(f"Stopped the earlier replay into {earlier.topic!r}.")
    topic = f"{re.sub(r'_live_[0-9a-f]{8}$', '', settings.topic)}_live_{uuid.uuid4().hex[:8]}"
    try:
        admin = KafkaAdminClient(**settings.kafka_options(), bootstrap_timeout_ms=10_000)
    except KafkaTimeoutError:
        raise NoBroker(settings.bootstrap_servers) from None
    try:
        topics.ensure_topic(admin, topic)
    finally:
        admin.close()
    replay = BackgroundReplay(settings.kafka_options(), topic, readings, speedup, Disorder.from_settings(settings))
    _replays.append(replay)
    return dataclasses.replace(settings, topic=topic), replay


def live_readings(
    client: OpenSenseMapClient,
    aoi: Aoi,
    every_s: float,
    duration_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Reading]:
    """Poll openSenseMap for the AOI's latest PM2.5 measurements and yield each one once."""
    seen: set[tuple[str, datetime]] = set()
    end = clock() + duration_s
    while True:
        try:
            boxes = client.find_boxes(aoi.api_bbox(), full=True)
        except OpenSenseMapError as error:
            print(f"This poll failed, trying again at the next one: {error}")
            boxes = []
        for box in boxes:
            for reading in _latest_pm25(box, aoi):
                if (reading.box_id, reading.timestamp) not in seen:
                    seen.add((reading.box_id, reading.timestamp))
                    yield reading
        if clock() + every_s > end:
            return
        sleep(every_s)


def _latest_pm25(box: dict, aoi: Aoi) -> list[Reading]:
    lon, lat = box.get("currentLocation", {}).get("coordinates", [None, None])[:2]
    if lon is None or not aoi.contains(lon, lat):
        return []
    found = []
    for sensor in box.get("sensors", []):
        latest = sensor.get("lastMeasurement")
        if not is_pm25(sensor) or not isinstance(latest, dict):
            continue
        try:
            found.append(
                Reading(
                    box["_id"],
                    box["name"],
                    sensor["_id"],
                    lat,
                    lon,
                    parse_timestamp(latest["createdAt"]),
                    float(latest["value"]),
                )
            )
        except (InvalidMessage, KeyError, TypeError, ValueError):
            continue  # a measurement that breaks the contract is not sent (e.g. 999.9, saturated)
    return found
