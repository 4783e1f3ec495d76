"""Readings sent at the pace of their timestamps (paced), with disorder on purpose (Disorder), and step 2's
replay run from step 3 in a thread into a fresh topic (BackgroundReplay, start_live_replay)."""

from __future__ import annotations

import dataclasses
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaTimeoutError

from pm25.data.contract import KeySerializer, Reading, ReadingSerializer
from pm25.streaming import topics
from pm25.streaming.delivery import DeliveryReport, describe_error, flush_and_close
from pm25.streaming.sending import PRODUCER_SETTINGS, NoBroker


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
        state = (
            f"failed: {describe_error(self.error)}" if self.error else "done" if self.finished.is_set() else "sending"
        )
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
