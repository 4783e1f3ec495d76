"""PM2.5 alerts per senseBox: a rolling 24-hour mean of hourly means, decided on closed hours in event time.

The rule, per box, for each reading in arrival order:

* a reading is valid if its value is a finite number with 0 <= value < 999.9. A value of 999.9 or
  more is what an SDS011 reports when saturated: it is rejected with the reason "sensor saturated"
  (SATURATED) and counted as such; any other invalid value is counted as invalid;
* a reading with the same timestamp as the box's newest is a duplicate, one older than the newest
  is late; both are counted and ignored. So a reading for an hour that is already closed (below) is
  always late: a decision, once made, never changes behind the alerts that were sent;
* each UTC clock hour of a box has an hourly mean: the mean of the valid readings in that hour;
* when the box's first reading of a new clock hour H arrives, the hours before H are closed and the
  box is decided once, on the `window_hours` clock hours H-24 ... H-1 (with the default 24): their
  mean of hourly means, valid when at least `min_hours` of them have data (18 of 24: the usual 75%
  data capture). Hours without readings do not count. Nothing is decided inside an hour, so one
  reading can never make a half-finished hour count as a whole one, and alerts do not flap;
* a box starts "ok"; a valid mean above the threshold raises an "exceeded" alert, a later valid mean
  at or below it a "resolved" alert. With too few hours nothing is decided: the state stays. An
  alert's timestamp is H, the end of the window it is about (a full hour, UTC).

The threshold defaults to 15 µg/m³, the WHO 2021 guideline *level* for a 24-hour mean. A rolling mean at one
low-cost sensor is a screening indicator: not the WHO guideline itself (the 99th percentile of a year's daily
means), not the EU limit (calendar days, 18 a year), not an official measurement. pm25.rules.review checks each alert
against the other boxes.

Exact at ties: openSenseMap and the message contract carry two decimals, so each value is held as
an integer number of hundredths of a µg/m³ and each hourly mean as the exact fraction sum/count, so
a 24-hour mean of exactly 15.00 is never "exceeded", whatever the order of the readings.

Each reading costs the same however long the stream has run: a box keeps its open hour's sum and
count, a deque of at most `window_hours` closed hourly means and their exact sum.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from pm25.data.contract import SATURATED, VALUE_LIMIT, format_timestamp

EXCEEDED = "exceeded"
RESOLVED = "resolved"
OK = "ok"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)

__all__ = [
    "SATURATED",
    "Alert",
    "Detector",
    "clock_hour",
    "hour_start",
    "hundredths",
    "is_valid_value",
    "naive_last_rows_alerts",
]


def is_valid_value(value) -> bool:
    """True for a finite PM2.5 value the sensor can actually measure: 0 <= value < 999.9."""
    try:
        return 0.0 <= value < VALUE_LIMIT  # NaN fails every comparison, inf the upper bound
    except TypeError:  # None, text: not a number at all
        return False


def is_saturated(value) -> bool:
    """True for a finite value at or above the SDS011's ceiling of 999.9."""
    try:
        return VALUE_LIMIT <= value < math.inf
    except TypeError:
        return False


def hundredths(value: float) -> int:
    """A value in whole hundredths of a µg/m³, the precision of openSenseMap and of the contract."""
    return round(value * 100)


def clock_hour(moment: datetime) -> int:
    """The UTC clock hour a moment falls in, counted in whole hours since 1970 (exact, no float)."""
    return (moment - _EPOCH) // _HOUR


def hour_start(hour: int) -> datetime:
    """The inverse of clock_hour: the moment a clock hour begins (UTC)."""
    return _EPOCH + hour * _HOUR


@dataclass(frozen=True)
class Alert:
    """A box crossed the threshold: its 24-hour mean went above it, or came back to it or below.

    `timestamp` is the end of the window decided on (a full hour, UTC): the window is the
    `window_hours` clock hours before it."""

    box_id: str
    box_name: str
    event: str  # "exceeded" | "resolved"
    timestamp: datetime
    mean: float  # µg/m³, the 24-hour mean (window_hours) that decided
    n_hours: int  # how many hours of the window had data
    threshold: float
    window_hours: float

    def as_dict(self) -> dict:
        """JSON-ready, with the field names of the alert topic's messages."""
        return {
            "boxId": self.box_id,
            "boxName": self.box_name,
            "event": self.event,
            "timestamp": format_timestamp(self.timestamp),
            "mean": self.mean,
            "n_hours": self.n_hours,
            "threshold": self.threshold,
            "window_hours": self.window_hours,
        }


class _Box:
    """One box: its open hour's sum and count (in hundredths), and the closed hours of the current window
    as (hour, exact mean) with the exact sum of those means."""

    __slots__ = ("closed", "closed_sum", "count", "hour", "name", "newest", "state", "sum")

    def __init__(self, name: str, moment: datetime, hour: int):
        self.name = name
        self.state = OK
        self.newest = moment
        self.hour, self.sum, self.count = hour, 0, 0
        self.closed: deque[tuple[int, Fraction]] = deque()
        self.closed_sum = Fraction(0)

    def close_hour(self, hour: int, window_hours: int) -> None:
        """Close the open hour; keep the closed hours of the window that ends where `hour` begins."""
        mean = Fraction(self.sum, self.count)
        self.closed.append((self.hour, mean))
        self.closed_sum += mean
        while self.closed and self.closed[0][0] < hour - window_hours:
            self.closed_sum -= self.closed.popleft()[1]
        self.hour, self.sum, self.count = hour, 0, 0

    def window_mean(self) -> Fraction:
        """The closed window's mean in hundredths, exactly (it has at least one hour)."""
        return self.closed_sum / len(self.closed)


class Detector:
    """Feed readings one at a time with process(); it answers with an Alert when a box changes state."""

    def __init__(self, threshold: float = 15.0, window_hours: int = 24, min_hours: int = 18):
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        if int(window_hours) != window_hours or window_hours < 1:
            raise ValueError(f"window_hours must be a whole number of hours >= 1, got {window_hours!r}")
        if int(min_hours) != min_hours or not 1 <= min_hours <= window_hours:
            raise ValueError(
                f"min_hours must be a whole number from 1 to window_hours ({window_hours:g}), got {min_hours!r}"
            )
        self.threshold = float(threshold)
        self.window_hours = int(window_hours)
        self.min_hours = int(min_hours)
        # In hundredths, like the values; from the decimal the threshold is written as (15.1), not from
        # its binary float (15.0999...96), which a mean of exactly 15.10 would exceed.
        self._threshold_exact = Fraction(str(self.threshold)) * 100
        self._boxes: dict[str, _Box] = {}
        self._counts = dict.fromkeys(("processed", "invalid", "saturated", "duplicates", "late"), 0)
        self.last_accepted = False  # whether the last reading given to process() entered its box's window

    @property
    def counts(self) -> dict:
        """How many readings entered a window (processed), and how many were ignored, and why."""
        return dict(self._counts)

    def process(self, reading) -> Alert | None:
        """Take one reading (box_id, box_name, timestamp, value); return an Alert if the box changed state.

        Only a box's first reading of a new clock hour can: it closes the hours before it."""
        self.last_accepted = False
        value = reading.value
        if not is_valid_value(value):
            self._counts["saturated" if is_saturated(value) else "invalid"] += 1
            return None
        moment = reading.timestamp
        if moment.tzinfo is None:
            raise ValueError(f"reading of box {reading.box_id} has a timestamp without time zone: {moment}")
        alert = None
        box = self._boxes.get(reading.box_id)
        if box is None:
            box = self._boxes[reading.box_id] = _Box(reading.box_name, moment, clock_hour(moment))
        elif moment <= box.newest:
            self._counts["duplicates" if moment == box.newest else "late"] += 1
            return None
        else:
            box.name, box.newest = reading.box_name, moment
            hour = clock_hour(moment)
            if hour != box.hour:
                box.close_hour(hour, self.window_hours)
                alert = self._decide(reading.box_id, box)
        self._counts["processed"] += 1
        self.last_accepted = True
        box.sum += hundredths(value)
        box.count += 1
        return alert

    def _decide(self, box_id: str, box: _Box) -> Alert | None:
        """The one decision on the closed window that ends where the box's open hour begins."""
        n_hours = len(box.closed)
        if n_hours < self.min_hours:
            return None
        above = box.window_mean() > self._threshold_exact
        if box.state == OK and above:
            box.state = event = EXCEEDED
        elif box.state == EXCEEDED and not above:
            box.state, event = OK, RESOLVED
        else:
            return None
        end = hour_start(box.hour)
        mean = float(box.window_mean() / 100)
        return Alert(box_id, box.name, event, end, mean, n_hours, self.threshold, self.window_hours)

    def window(self, box_id: str) -> tuple[float, int]:
        """The mean (µg/m³) of the box's last closed window, the one its state was decided on, and how many
        hours have data; (nan, 0) before its first hour closed. It changes only when an hour closes."""
        box = self._boxes.get(box_id)
        if box is None or not box.closed:
            return (math.nan, 0)
        return (float(box.window_mean() / 100), len(box.closed))

    def provisional(self, box_id: str) -> tuple[float, int]:
        """The box's running window up to its newest reading: its last `window_hours` clock hours, the open one
        included with its mean so far. Provisional: what the next decision may say, not what it decided."""
        box = self._boxes.get(box_id)
        if box is None:
            return (math.nan, 0)
        kept = [mean for hour, mean in box.closed if hour > box.hour - self.window_hours]
        total = math.fsum(map(float, kept)) + box.sum / box.count
        return (total / (len(kept) + 1) / 100, len(kept) + 1)

    def state(self, box_id: str) -> str:
        """ "ok" or "exceeded"; a box not seen yet is "ok", as every box starts."""
        box = self._boxes.get(box_id)
        return OK if box is None else box.state

    def box_ids(self) -> list[str]:
        """Boxes with at least one accepted reading, in the order they first appeared."""
        return list(self._boxes)

    def forget(self, box_ids) -> None:
        """Drop these boxes' windows and states (a consumer lost the partition they are on)."""
        for box_id in box_ids:
            self._boxes.pop(box_id, None)


def naive_last_rows_alerts(readings, threshold: float = 15.0, rows: int = 3) -> list[Alert]:
    """The tempting but WRONG rule: alert on the mean of each box's last `rows` rows.

    Kept to compare against Detector on the same readings. It uses the same exceeded/resolved
    transitions, so every difference comes from the window: rows instead of clock hours (three raw
    rows span a few minutes, three daily rows three days), and no filtering of saturated values,
    duplicates or late rows. An alert's n_hours is how many clock hours its rows touched and its
    window_hours the time they actually spanned, to make that visible.
    """
    recent: dict[str, deque] = {}
    exceeded: set[str] = set()
    alerts = []
    for reading in readings:
        last_rows = recent.setdefault(reading.box_id, deque(maxlen=rows))
        last_rows.append(reading)
        if len(last_rows) < rows:
            continue
        mean = math.fsum(row.value for row in last_rows) / rows
        if reading.box_id not in exceeded and mean > threshold:
            exceeded.add(reading.box_id)
            event = EXCEEDED
        elif reading.box_id in exceeded and mean <= threshold:
            exceeded.discard(reading.box_id)
            event = RESOLVED
        else:
            continue
        timestamps = [row.timestamp for row in last_rows]
        span_hours = (max(timestamps) - min(timestamps)).total_seconds() / 3600
        hours = len({clock_hour(moment) for moment in timestamps})
        alert = Alert(reading.box_id, reading.box_name, event, reading.timestamp, mean, hours, threshold, span_hours)
        alerts.append(alert)
    return alerts
