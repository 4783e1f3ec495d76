"""Raw-rate readings for the benchmarks: the real Berlin recording when it is there, generated ones otherwise.

The recording (48 boxes, every raw measurement of three days, ~106,500 rows) is repeated, each pass three
days later than the one before, so a stream of any length keeps its real rates, gaps and values.
Without it, BOXES boxes send every ~150 s (the recording's most common rate) with values that wander.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from pm25 import contract  # the scripts put src/ on sys.path before importing this module

RECORDING_NAME = "berlin_pm25_raw_2023-02-26.csv.gz"
RECORDING_PLACES = (Path(__file__).resolve().parents[1] / "data", Path("/work/shared/data"))
BOXES = 48
START = datetime(2023, 2, 26, 8, 24, tzinfo=UTC)


def recording() -> Path | None:
    return next((place / RECORDING_NAME for place in RECORDING_PLACES if (place / RECORDING_NAME).exists()), None)


def describe() -> str:
    path = recording()
    return f"the real recording {path} (repeated)" if path else f"generated raw-rate readings ({BOXES} boxes)"


def raw_readings(count: int) -> Iterator[contract.Reading]:
    """`count` readings in event-time order, one at a time."""
    path = recording()
    made = _repeated(_recorded(path)) if path else _generated()
    for _, reading in zip(range(count), made, strict=False):
        yield reading


def _recorded(path: Path) -> list[contract.Reading]:
    table = pd.read_csv(path, usecols=["boxId", "boxName", "sensorId", "lat", "lon", "createdAt", "value"])
    table = table[table["value"] < contract.VALUE_LIMIT].sort_values("createdAt", kind="stable")
    readings = []
    for row in table.itertuples(index=False):
        try:
            readings.append(contract.Reading(row.boxId, row.boxName, row.sensorId, row.lat, row.lon,
                                             contract.parse_timestamp(row.createdAt), row.value))  # fmt: skip
        except contract.InvalidMessage:
            continue  # a row the contract refuses is not part of a stream either
    return readings


def _repeated(readings: list[contract.Reading]) -> Iterator[contract.Reading]:
    span = readings[-1].timestamp - readings[0].timestamp + timedelta(minutes=1)
    shift = timedelta(0)
    while True:
        for reading in readings:
            yield contract.Reading(reading.box_id, reading.box_name, reading.sensor_id, reading.lat, reading.lon,
                                   reading.timestamp + shift, reading.value)  # fmt: skip
        shift += span


def _generated(seed: int = 2023) -> Iterator[contract.Reading]:
    rng = random.Random(seed)
    boxes = [
        (f"{index:024x}", f"Box {index} Berlin", f"{index + 10**6:024x}",
         round(rng.uniform(52.45, 52.57), 4), round(rng.uniform(13.25, 13.55), 4))
        for index in range(BOXES)
    ]  # fmt: skip
    step = timedelta(seconds=150 / BOXES)
    moment, level = START, [rng.uniform(2, 20) for _ in boxes]
    while True:
        for index, (box_id, name, sensor_id, lat, lon) in enumerate(boxes):
            level[index] = min(max(0.0, level[index] + rng.gauss(0, 1.5)), 400.0)
            moment += step
            yield contract.Reading(box_id, name, sensor_id, lat, lon, moment, round(level[index], 2))
