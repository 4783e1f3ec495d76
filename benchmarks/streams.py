"""Raw-rate readings for the benchmarks: the bundled real Berlin recording.

The recording (48 boxes, every raw measurement of three days, ~106,500 rows) is repeated, each pass three
days later than the one before, so a stream of any length keeps its real rates, gaps and values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd

from pm25.data import contract

RECORDING = Path(__file__).resolve().parents[1] / "data" / "berlin_pm25_raw_2023-02-26.csv.gz"


def describe() -> str:
    return f"the real recording {RECORDING.name} (repeated)"


def raw_readings(count: int) -> Iterator[contract.Reading]:
    """`count` readings in event-time order, one at a time."""
    for _, reading in zip(range(count), _repeated(_recorded(RECORDING)), strict=False):
        yield reading


def _recorded(path: Path) -> list[contract.Reading]:
    table = pd.read_csv(path, usecols=["boxId", "boxName", "sensorId", "lat", "lon", "createdAt", "value"])
    table = table[table["value"] < contract.VALUE_LIMIT].sort_values("createdAt", kind="stable")
    readings = []
    for row in table.itertuples(index=False):
        try:
            readings.append(
                contract.Reading(
                    row.boxId,
                    row.boxName,
                    row.sensorId,
                    row.lat,
                    row.lon,
                    contract.parse_timestamp(row.createdAt),
                    row.value,
                )
            )
        except contract.InvalidMessage:
            continue  # a row the contract refuses is not part of a stream either
    return readings


def _repeated(readings: list[contract.Reading]) -> Iterator[contract.Reading]:
    span = readings[-1].timestamp - readings[0].timestamp + timedelta(minutes=1)
    shift = timedelta(0)
    while True:
        for reading in readings:
            yield contract.Reading(
                reading.box_id,
                reading.box_name,
                reading.sensor_id,
                reading.lat,
                reading.lon,
                reading.timestamp + shift,
                reading.value,
            )
        shift += span
