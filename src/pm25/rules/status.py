"""Which senseBoxes are reporting, and does what they report look like a working sensor?

status, judged against stream time (the newest timestamp seen, not the wall clock, so a replay of
2023 reads the same as a live stream):
  "active"    the box's last reading lies within active_hours before stream time;
  "stale"     it has readings, but none that recent;
  "inactive"  no reading at all (a box of the map that never appeared in the stream).
quality:
  "suspect"   in the 24 clock hours up to its own last reading, the box sent readings in at least
              suspect_min_hours different hours, and all of them lie within suspect_range (1 µg/m³)
              of each other: a stuck, dead or saturated sensor does that;
  "ok"        otherwise;
  "no data"   an inactive box: there is nothing to judge.

Why a range and not "all readings identical" (the rule before): real broken sensors are not
perfectly constant. In the Berlin recording (data/berlin_pm25_raw_2023-02-26.csv.gz) one box
reports 0.0 with an occasional 0.1 for three days and another ~0.2 for 22 hours: "all identical"
never fires on them. Outdoor air is never that flat for a day: every other box there spans at
least 1.9 µg/m³ in every 24 hours, and an SDS011's own noise is about that size. Requiring some
hours with data keeps a box with a handful of readings from being judged.

With a detector, table() adds its window mean (mean_24h for a 24-hour window), n_hours and
alert_state ("exceeded", "ok", or "not enough data" while fewer than min_hours hours have data;
the detector then keeps its last decision). Every table also counts each box's valid days and how
many of them are above the WHO and EU daily limits (see pm25.rules.daily).
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta

import pandas as pd

from pm25.data.contract import format_timestamp
from pm25.rules.daily import DailyMeans
from pm25.rules.detector import Detector, clock_hour, hundredths

COLUMNS = [
    "boxId",
    "boxName",
    "lat",
    "lon",
    "status",
    "quality",
    "last_seen",
    "last_value",
    "days_valid",
    "days_above_who",
    "days_above_eu_2030",
]
SUSPECT_HOURS = 24
NOT_ENOUGH_DATA = "not enough data"


class _BoxStatus:
    """What one box needs for its status: its last reading and at most 24 hourly (hour, min, max)."""

    __slots__ = ("hours", "last_seen", "last_value", "lat", "lon", "name")

    def __init__(self, name: str, lat: float, lon: float):
        self.name, self.lat, self.lon = name, lat, lon
        self.last_seen: datetime | None = None
        self.last_value = math.nan
        self.hours: deque[list] = deque()  # [clock hour, lowest value, highest value], oldest first


class StatusTracker:
    """Feed it the readings the detector accepted; table() then tells the state of every box."""

    def __init__(
        self, active_hours: float = 24.0, suspect_range: float = 1.0, suspect_min_hours: int = 6, min_hours: int = 18
    ):
        if not active_hours > 0:
            raise ValueError(f"active_hours must be > 0, got {active_hours!r}")
        if not suspect_range > 0:
            raise ValueError(f"suspect_range must be > 0 µg/m³, got {suspect_range!r}")
        if int(suspect_min_hours) != suspect_min_hours or not 1 <= suspect_min_hours <= SUSPECT_HOURS:
            raise ValueError(f"suspect_min_hours must be a whole number from 1 to 24, got {suspect_min_hours!r}")
        self.active_hours = float(active_hours)
        self.suspect_range = float(suspect_range)
        self.suspect_min_hours = int(suspect_min_hours)
        self._period = timedelta(hours=active_hours)
        self._boxes: dict[str, _BoxStatus] = {}
        self.daily = DailyMeans(min_hours)
        self.stream_time: datetime | None = None

    def update(self, reading) -> None:
        """Take one reading (box_id, box_name, timestamp, value; lat and lon if it has them).

        A reading not newer than the box's last one is ignored: the detector drops those as
        duplicate or late, and the hourly buckets below need readings in time order.
        """
        box = self._boxes.get(reading.box_id)
        if box is None:
            lat, lon = getattr(reading, "lat", math.nan), getattr(reading, "lon", math.nan)
            box = self._boxes[reading.box_id] = _BoxStatus(reading.box_name, lat, lon)
        elif reading.timestamp <= box.last_seen:
            return
        hour, value = clock_hour(reading.timestamp), reading.value
        if box.hours and box.hours[-1][0] == hour:
            bucket = box.hours[-1]
            bucket[1], bucket[2] = min(bucket[1], value), max(bucket[2], value)
        else:
            box.hours.append([hour, value, value])
            while box.hours[0][0] <= hour - SUSPECT_HOURS:
                box.hours.popleft()
        box.name = reading.box_name
        box.last_seen, box.last_value = reading.timestamp, value
        self.daily.update(reading)
        if self.stream_time is None or reading.timestamp > self.stream_time:
            self.stream_time = reading.timestamp

    def forget(self, box_ids) -> None:
        """Drop these boxes (a consumer lost the partition they are on); they become inactive."""
        for box_id in box_ids:
            self._boxes.pop(box_id, None)
        self.daily.forget(box_ids)

    def _is_suspect(self, box: _BoxStatus) -> bool:
        # The deque holds only hours of the 24 up to the last reading's, so all of them count.
        lowest = min(low for _, low, _ in box.hours)
        highest = max(high for _, _, high in box.hours)
        spread = hundredths(highest) - hundredths(lowest)  # exact, as the detector: 1.00 is not below 1
        return len(box.hours) >= self.suspect_min_hours and spread < hundredths(self.suspect_range)

    def _status(self, box: _BoxStatus | None) -> tuple[str, str]:
        if box is None:
            return "inactive", "no data"
        assert box.last_seen is not None and self.stream_time is not None  # a box is made by its first reading
        active = box.last_seen > self.stream_time - self._period
        return ("active" if active else "stale"), ("suspect" if self._is_suspect(box) else "ok")

    def table(self, boxes: list[dict], detector: Detector | None = None) -> pd.DataFrame:
        """One row per box: the GeoJSON Point features of the map first, then boxes seen only in the stream.

        With a detector, three more columns: the mean of the window the box was last decided on, named
        after its window (mean_24h by default), n_hours (hours of that window with data) and alert_state.
        """
        if isinstance(boxes, dict):  # a whole FeatureCollection will do too
            boxes = boxes.get("features", [])
        rows, listed = [], set()
        for feature in boxes:
            properties = feature.get("properties") or {}
            box_id = properties.get("boxId") or properties.get("_id")
            if box_id is None or box_id in listed:
                continue
            listed.add(box_id)
            seen = self._boxes.get(box_id)
            coordinates = (feature.get("geometry") or {}).get("coordinates") or [math.nan, math.nan]
            name = properties.get("name") or (seen.name if seen else box_id)
            rows.append(self._row(box_id, name, coordinates[1], coordinates[0], seen))
        for box_id, seen in self._boxes.items():
            if box_id not in listed:
                rows.append(self._row(box_id, seen.name, seen.lat, seen.lon, seen))

        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame = frame.astype(
            {
                "lat": float,
                "lon": float,
                "last_value": float,
                "days_valid": int,
                "days_above_who": int,
                "days_above_eu_2030": int,
            }
        )
        # ISO8601: the texts mix forms with and without milliseconds, and pandas would guess one from the first
        frame["last_seen"] = pd.to_datetime(frame["last_seen"], utc=True, format="ISO8601")
        if detector is not None:
            windows = [detector.window(box_id) for box_id in frame["boxId"]]
            frame[mean_column(detector.window_hours)] = pd.Series([mean for mean, _ in windows], dtype=float)
            frame["n_hours"] = pd.Series([n for _, n in windows], dtype=int)
            frame["alert_state"] = [
                detector.state(box_id) if n >= detector.min_hours else NOT_ENOUGH_DATA
                for box_id, (_, n) in zip(frame["boxId"], windows, strict=True)
            ]
        return frame

    def _row(self, box_id, name, lat, lon, seen: _BoxStatus | None) -> list:
        status, quality = self._status(seen)
        last_seen = format_timestamp(seen.last_seen) if seen and seen.last_seen else None
        last_value = seen.last_value if seen else math.nan
        return [box_id, name, lat, lon, status, quality, last_seen, last_value, *self.daily.summary(box_id)]


def mean_column(window_hours: float) -> str:
    """The status table's column for a window's mean: mean_24h, mean_72h, ..."""
    return f"mean_{window_hours:g}h"
