"""Which senseBoxes are reporting, and does what they report look like a working sensor?

status, judged against stream time (the newest timestamp seen, not the wall clock, so a replay of
January 2024 reads the same as a live stream):
  "active"    the box's last reading lies within active_hours before stream time;
  "stale"     it has readings, but none that recent;
  "inactive"  no reading at all (a box of the map that never appeared in the stream).
quality:
  "suspect"   the box's readings in the active_hours up to its own last reading are at least
              suspect_min_readings and all exactly equal: a stuck sensor does that;
  "ok"        otherwise;
  "no data"   an inactive box: there is nothing to judge.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta

import pandas as pd

from pm25.contract import format_timestamp
from pm25.detector import Detector

COLUMNS = ["boxId", "boxName", "lat", "lon", "status", "quality", "last_seen", "last_value"]


class _BoxStatus:
    """What one box needs for its status: constant memory, however many readings it sends."""

    __slots__ = ("last_change", "last_seen", "last_value", "lat", "lon", "name", "recent_times")

    def __init__(self, name: str, lat: float, lon: float, run_length: int):
        self.name, self.lat, self.lon = name, lat, lon
        self.last_seen: datetime | None = None
        self.last_value = math.nan
        # Suspect means: the newest run_length readings lie in the period, and the newest reading
        # with another value than the last one does not. That needs only these two facts.
        self.recent_times: deque[datetime] = deque(maxlen=run_length)
        self.last_change: datetime | None = None


class StatusTracker:
    """Feed it the readings the detector accepted; table() then tells the state of every box."""

    def __init__(self, active_hours: float = 24.0, suspect_min_readings: int = 6):
        if not active_hours > 0:
            raise ValueError(f"active_hours must be > 0, got {active_hours!r}")
        if int(suspect_min_readings) != suspect_min_readings or suspect_min_readings < 2:
            raise ValueError(f"suspect_min_readings must be a whole number >= 2, got {suspect_min_readings!r}")
        self.active_hours = float(active_hours)
        self.suspect_min_readings = int(suspect_min_readings)
        self._period = timedelta(hours=active_hours)
        self._boxes: dict[str, _BoxStatus] = {}
        self.stream_time: datetime | None = None

    def update(self, reading) -> None:
        """Take one reading (box_id, box_name, timestamp, value; lat and lon if it has them).

        A reading not newer than the box's last one is ignored: the detector drops those as
        duplicate or late, and the constant-memory rule below needs readings in time order.
        """
        box = self._boxes.get(reading.box_id)
        if box is None:
            lat, lon = getattr(reading, "lat", math.nan), getattr(reading, "lon", math.nan)
            box = self._boxes[reading.box_id] = _BoxStatus(reading.box_name, lat, lon, self.suspect_min_readings)
        elif reading.timestamp <= box.last_seen:
            return
        if box.last_seen is not None and reading.value != box.last_value:
            box.last_change = box.last_seen
        box.recent_times.append(reading.timestamp)
        box.name = reading.box_name
        box.last_seen, box.last_value = reading.timestamp, reading.value
        if self.stream_time is None or reading.timestamp > self.stream_time:
            self.stream_time = reading.timestamp

    def _is_suspect(self, box: _BoxStatus) -> bool:
        since = box.last_seen - self._period  # the period is (last_seen - active_hours, last_seen]
        enough_readings = len(box.recent_times) == self.suspect_min_readings and box.recent_times[0] > since
        return enough_readings and (box.last_change is None or box.last_change <= since)

    def _status(self, box: _BoxStatus | None) -> tuple[str, str]:
        if box is None:
            return "inactive", "no data"
        active = box.last_seen > self.stream_time - self._period
        return ("active" if active else "stale"), ("suspect" if self._is_suspect(box) else "ok")

    def table(self, boxes: list[dict], detector: Detector | None = None) -> pd.DataFrame:
        """One row per box: the GeoJSON Point features of the map first, then boxes seen only in the stream.

        With a detector, two more columns hold each box's current window mean and reading count,
        named after its window (mean_72h and n_72h by default).
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
        frame["lat"] = frame["lat"].astype(float)
        frame["lon"] = frame["lon"].astype(float)
        frame["last_seen"] = pd.to_datetime(frame["last_seen"], utc=True)
        frame["last_value"] = frame["last_value"].astype(float)
        if detector is not None:
            windows = [detector.window(box_id) for box_id in frame["boxId"]]
            label = f"{detector.window_hours:g}h"
            frame[f"mean_{label}"] = pd.Series([mean for mean, _ in windows], dtype=float)
            frame[f"n_{label}"] = pd.Series([n for _, n in windows], dtype=int)
        return frame

    def _row(self, box_id, name, lat, lon, seen: _BoxStatus | None) -> list:
        status, quality = self._status(seen)
        last_seen = format_timestamp(seen.last_seen) if seen else None
        last_value = seen.last_value if seen else math.nan
        return [box_id, name, lat, lon, status, quality, last_seen, last_value]
