"""What step 2's producer loop needs besides Kafka itself: topic set-up, a delivery report,
event-time pacing for `replay`, and new measurements from openSenseMap for `live`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pm25.contract import InvalidMessage, Reading, parse_timestamp
from pm25.geo import Aoi
from pm25.opensensemap import OpenSenseMapClient, OpenSenseMapError, is_pm25

HOW_TO_START_A_BROKER = (
    "Start one with `docker compose up -d` (the Docker stack) or `make lab` (no Docker), "
    "or point KAFKA_BOOTSTRAP_SERVERS at your broker."
)


def no_broker_message(bootstrap_servers: str) -> str:
    return f"No Kafka broker answers at {bootstrap_servers}. {HOW_TO_START_A_BROKER}"


def ensure_topic(admin: KafkaAdminClient, name: str, partitions: int = 3, replication_factor: int = 1) -> str:
    """Create the topic, or accept it as it is when it exists already. Says which it was."""
    try:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": replication_factor}})
    except TopicAlreadyExistsError:
        existing = admin.describe_topics([name])[0]["partitions"]
        return f"Topic {name!r} exists already, with {len(existing)} partitions."
    except KafkaError as error:
        raise RuntimeError(
            f"Kafka could not create the topic {name!r}: {error}. Check the name (letters, digits, '.', '_', '-') "
            f"and that replication factor {replication_factor} is not more than the number of brokers."
        ) from error
    return f"Created topic {name!r} with {partitions} partitions (replication factor {replication_factor})."


@dataclass
class DeliveryReport:
    """Counts what the broker acknowledged and what failed, from the producer's callbacks.

    Callbacks run on the producer's network thread; the lock keeps the counts consistent
    for a notebook cell that reads them meanwhile.
    """

    show_first: int = 5
    sent: int = 0
    acknowledged: int = 0
    failures: list[tuple[Reading, str]] = field(default_factory=list)
    partitions_by_box: dict[str, set[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def track(self, future, reading: Reading) -> None:
        """Register a send: `future` is what producer.send() returned."""
        self.sent += 1
        future.add_callback(self._acknowledged, reading)
        future.add_errback(self._failed, reading)

    def _acknowledged(self, reading: Reading, metadata) -> None:
        with self._lock:
            self.acknowledged += 1
            self.partitions_by_box.setdefault(reading.box_name, set()).add(metadata.partition)
            if self.acknowledged <= self.show_first:
                print(
                    f"  acknowledged: {reading.box_name[:24]:24} {reading.timestamp:%Y-%m-%d %H:%M} "
                    f"-> partition {metadata.partition}, offset {metadata.offset}"
                )

    def _failed(self, reading: Reading, error: Exception) -> None:
        with self._lock:
            self.failures.append((reading, f"{type(error).__name__}: {error}"))

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def pending(self) -> int:
        return self.sent - self.acknowledged - self.failed

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


def live_readings(
    client: OpenSenseMapClient,
    aoi: Aoi,
    every_s: float,
    duration_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Reading]:
    """Poll openSenseMap for the AOI's latest PM2.5 measurements and yield each one once."""
    seen: set[tuple[str, str]] = set()
    end = clock() + duration_s
    while True:
        try:
            boxes = client.get_json("/boxes", {"bbox": aoi.api_bbox(), "full": "true", "format": "json"})
        except OpenSenseMapError as error:
            print(f"This poll failed, trying again at the next one: {error}")
            boxes = []
        for box in boxes:
            for reading in _latest_pm25(box, aoi):
                if (reading.box_id, reading.timestamp.isoformat()) not in seen:
                    seen.add((reading.box_id, reading.timestamp.isoformat()))
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
                Reading(box["_id"], box["name"], sensor["_id"], lat, lon,
                        parse_timestamp(latest["createdAt"]), float(latest["value"]))
            )  # fmt: skip
        except (InvalidMessage, KeyError, TypeError, ValueError):
            continue  # a measurement that breaks the contract is not sent (e.g. 999.9, saturated)
    return found
