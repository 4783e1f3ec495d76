"""Daily means per senseBox: the days (UTC) that count for the WHO and EU daily limits.

A day's mean is the mean of its hourly means (each clock hour's mean of its readings), valid with
data in at least `min_hours` of its 24 hours (18: the usual 75% data capture), as in pm25.rules.detector.
Each valid day is compared with two limits for a daily mean:
  above_who      above 15 µg/m³, the WHO 2021 24-hour guideline (a few such days a year at most);
  above_eu_2030  above 25 µg/m³, the EU daily limit from 2030 (Directive (EU) 2024/2881; at most
                 18 such days a year).
Comparisons are exact, in hundredths of a µg/m³ as in the detector: 15.00 is not above 15.
Memory per box is constant besides the table's rows: the open day's running sums only.
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pandas as pd

from pm25.rules.detector import clock_hour, hundredths, is_valid_value

WHO_24H = 15.0
EU_DAILY_2030 = 25.0
COLUMNS = ["boxId", "boxName", "date", "n_hours", "mean", "above_who", "above_eu_2030"]
_DAY_ZERO = date(1970, 1, 1)  # clock_hour counts from its midnight


class _Day:
    """One box's open day and open hour, in hundredths: sums and counts, nothing per reading."""

    __slots__ = ("count", "day", "hour", "hour_sum", "n_hours", "name", "newest", "sum_of_means")

    def __init__(self, name: str, hour: int):
        self.name, self.newest = name, None
        self.day, self.sum_of_means, self.n_hours = hour // 24, Fraction(0), 0
        self.hour, self.hour_sum, self.count = hour, 0, 0

    def close_hour(self) -> None:
        if self.count:
            self.sum_of_means += Fraction(self.hour_sum, self.count)
            self.n_hours += 1
        self.hour_sum = self.count = 0


class DailyMeans:
    """Feed it accepted readings (each box in time order); table() lists every box's valid days."""

    def __init__(self, min_hours: int = 18):
        if int(min_hours) != min_hours or not 1 <= min_hours <= 24:
            raise ValueError(f"min_hours must be a whole number from 1 to 24, got {min_hours!r}")
        self.min_hours = int(min_hours)
        self._open: dict[str, _Day] = {}
        self._rows: dict[str, list[list]] = {}  # per box, its finished valid days

    def update(self, reading) -> None:
        """Take one reading (box_id, box_name, timestamp, value); older or invalid ones are ignored."""
        if not is_valid_value(reading.value):
            return
        hour = clock_hour(reading.timestamp)
        box = self._open.get(reading.box_id)
        if box is None:
            box = self._open[reading.box_id] = _Day(reading.box_name, hour)
        elif reading.timestamp <= box.newest:
            return
        elif hour != box.hour:
            box.close_hour()
            if hour // 24 != box.day:
                self._finish(reading.box_id, box)
                box.day, box.sum_of_means, box.n_hours = hour // 24, Fraction(0), 0
            box.hour = hour
        box.newest, box.name = reading.timestamp, reading.box_name
        box.hour_sum += hundredths(reading.value)
        box.count += 1

    def _finish(self, box_id: str, box: _Day) -> None:
        row = self._row(box_id, box, box.sum_of_means, box.n_hours)
        if row:
            self._rows.setdefault(box_id, []).append(row)

    def _row(self, box_id: str, box: _Day, sum_of_means: Fraction, n_hours: int) -> list | None:
        if n_hours < self.min_hours:
            return None
        mean = sum_of_means / n_hours / 100  # exact, in µg/m³
        day = _DAY_ZERO + timedelta(days=box.day)
        return [box_id, box.name, day.isoformat(), n_hours, float(mean), mean > WHO_24H, mean > EU_DAILY_2030]

    def forget(self, box_ids) -> None:
        """Drop these boxes' days (a consumer lost the partition they are on)."""
        for box_id in box_ids:
            self._open.pop(box_id, None)
            self._rows.pop(box_id, None)

    def days(self, box_id: str) -> list[list]:
        """The box's valid days as table rows, the day in progress included once it has enough hours."""
        box = self._open.get(box_id)
        if box is None:
            return []
        open_hour = Fraction(box.hour_sum, box.count) if box.count else Fraction(0)
        current = self._row(box_id, box, box.sum_of_means + open_hour, box.n_hours + bool(box.count))
        return self._rows.get(box_id, []) + ([current] if current else [])

    def table(self) -> pd.DataFrame:
        """One row per box and valid day."""
        rows = [row for box_id in self._open for row in self.days(box_id)]
        table = pd.DataFrame(rows, columns=COLUMNS)
        return table.astype({"n_hours": int, "mean": float, "above_who": bool, "above_eu_2030": bool})

    def summary(self, box_id: str) -> tuple[int, int, int]:
        """(valid days, days above the WHO guideline, days above the EU 2030 limit) of one box."""
        days = self.days(box_id)
        return (len(days), sum(row[5] for row in days), sum(row[6] for row in days))
