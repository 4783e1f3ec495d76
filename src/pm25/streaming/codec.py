"""The messages in and out of step 3's loop: decode() turns a message into a reading or says why it breaks the
contract, Rejected keeps those that do as rows instead of stopping the consumer, and AlertSerializer turns an
alert into the message sent to the alerts topic."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
from kafka.serializer import Serializer

from pm25.data import contract
from pm25.data.contract import Reading
from pm25.rules.detector import Alert

REJECTED_COLUMNS = ["topic", "partition", "offset", "reason", "value"]


FUTURE_TOLERANCE = timedelta(minutes=5)  # sensor clocks drift; more than this ahead is a wrong clock


def decode(record, future_tolerance: timedelta = FUTURE_TOLERANCE) -> Reading:
    """The reading in a message, or InvalidMessage with the reason; see contract.decode.

    Two more checks need the message itself:
    - its key must be the boxId: the key decides the partition, so a box's reading under another key
      (or none) lands apart from the box's other readings, out of their order, and in a group two
      members would judge one box;
    - a reading observed (event time) more than the tolerance after Kafka got the message (its record
      timestamp) comes from a wrong clock. Accepted, a reading from 2099 would make every later reading
      of its box "late", for good.
    """
    reading = contract.decode(record.value)
    if record.key != reading.box_id.encode("utf-8"):
        key = "no key" if record.key is None else f"key {contract.show(record.key.decode('utf-8', 'replace'))}"
        raise contract.InvalidMessage(
            f"{key} is not the boxId {reading.box_id}: each reading is sent with its box's id as key, "
            "so that a box's readings stay in order on one partition"
        )
    if record.timestamp is not None and record.timestamp >= 0:
        received = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        if reading.timestamp - received > future_tolerance:
            raise contract.InvalidMessage(
                f"timestamp {contract.format_timestamp(reading.timestamp)} is later than the message reached "
                f"Kafka ({contract.format_timestamp(received)}): a sensor clock in the future"
            )
    return reading


class AlertSerializer(Serializer):
    """value_serializer for the alerts topic: an Alert becomes its JSON object."""

    def serialize(self, topic, headers, data: Alert) -> bytes:
        return json.dumps(data.as_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Rejected:
    """Messages that break the contract, kept with the reason instead of stopping the consumer.

    One row per message, however often it is read (a rebuild after a rebalance reads it again).
    """

    _rows: dict[tuple[str, int, int], dict] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict]:
        return list(self._rows.values())

    def add(self, record, reason: str) -> None:
        raw = record.value or b""
        self._rows[record.topic, record.partition, record.offset] = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason,
            "value": raw[:200].decode("utf-8", errors="replace"),
        }

    def table(self, partitions: tuple[int, ...] | None = None) -> pd.DataFrame:
        """All rows, or those of the given partitions."""
        rows = [row for row in self.rows if partitions is None or row["partition"] in partitions]
        return pd.DataFrame(rows, columns=REJECTED_COLUMNS)
