"""PM2.5 alerts per senseBox: the WHO 2021 guideline for the 24-hour mean, checked in event time.

The rule, per box, for each reading in arrival order:

* a reading is valid if its value is a finite number with 0 <= value < 999.9. A value of 999.9 or
  more is what an SDS011 reports when saturated: it is rejected with the reason "sensor saturated"
  (SATURATED) and counted as such; any other invalid value is counted as invalid;
* a reading with the same timestamp as the box's newest is a duplicate, one older than the newest
  is late; both are counted and ignored. (The box keeps hourly sums, not every timestamp, so an
  old reading that arrives again counts as late.)
* each UTC clock hour of a box has an hourly mean: the mean of the valid readings in that hour;
* the 24-hour mean at a reading is the mean of the hourly means of the last `window_hours` clock
  hours up to and including the reading's hour; hours without readings do not count. It is valid
  when at least `min_hours` of those hours have data (18 of 24: the usual 75% data capture);
* a box starts "ok"; a valid mean above the threshold raises an "exceeded" alert, a later valid
  mean at or below it a "resolved" alert. With too few hours nothing is decided: the state stays.

Exact at ties: openSenseMap and the message contract carry two decimals, so each value is held as
an integer number of hundredths of a µg/m³ and each hourly mean as the exact fraction sum/count.
`mean > threshold` is decided on these exact numbers (a float shortcut decides the clear cases), so
a 24-hour mean of exactly 15.00 is never "exceeded", whatever the order of the readings.

Each reading costs the same however long the stream has run: a box keeps a deque of at most
`window_hours` hour buckets and the exact sum of its closed hours' means, updated when an hour closes
or leaves the window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from pm25.contract import SATURATED, VALUE_LIMIT, format_timestamp

EXCEEDED = "exceeded"
RESOLVED = "resolved"
OK = "ok"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
# Below this distance from the threshold (in hundredths, relative) the float shortcut may be wrong
# by rounding, and the exact fractions decide. Floats here are off by ~1e-15 at most.
_NEAR = 1e-9

__all__ = ["SATURATED", "Alert", "Detector", "clock_hour", "hundredths", "is_valid_value", "naive_last_rows_alerts"]


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


@dataclass(frozen=True)
class Alert:
    """A box crossed the threshold: its 24-hour mean went above it, or came back to it or below."""

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
    """One box's window: closed hours as (hour, sum, count), the open hour's sum and count, and
    the exact sum (in hundredths) of the closed hours' means with its float for the shortcut."""

    __slots__ = ("closed", "closed_float", "closed_sum", "count", "hour", "name", "newest", "state", "sum")

    def __init__(self, name: str, moment: datetime, hour: int):
        self.name = name
        self.state = OK
        self.newest = moment
        self.hour, self.sum, self.count = hour, 0, 0
        self.closed: deque[tuple[int, int, int]] = deque()
        self.closed_sum = Fraction(0)
        self.closed_float = 0.0

    def move_to(self, hour: int, window_hours: int) -> None:
        """Close the open hour and drop the hours that are no longer among the last window_hours."""
        self.closed.append((self.hour, self.sum, self.count))
        self.closed_sum += Fraction(self.sum, self.count)
        first = hour - window_hours + 1
        while self.closed and self.closed[0][0] < first:
            _, old_sum, old_count = self.closed.popleft()
            self.closed_sum -= Fraction(old_sum, old_count)
        self.closed_float = float(self.closed_sum)
        self.hour, self.sum, self.count = hour, 0, 0

    def exact_mean(self) -> Fraction:
        """The window's mean in hundredths, exactly."""
        return (self.closed_sum + Fraction(self.sum, self.count)) / (len(self.closed) + 1)


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
        self._threshold_100 = self.threshold * 100
        self._boxes: dict[str, _Box] = {}
        self._counts = dict.fromkeys(("processed", "invalid", "saturated", "duplicates", "late"), 0)
        self.last_accepted = False  # whether the last reading given to process() entered its box's window

    @property
    def counts(self) -> dict:
        """How many readings entered a window (processed), and how many were ignored, and why."""
        return dict(self._counts)

    def process(self, reading) -> Alert | None:
        """Take one reading (box_id, box_name, timestamp, value); return an Alert if the box changed state."""
        self.last_accepted = False
        value = reading.value
        if not is_valid_value(value):
            self._counts["saturated" if is_saturated(value) else "invalid"] += 1
            return None
        moment = reading.timestamp
        if moment.tzinfo is None:
            raise ValueError(f"reading of box {reading.box_id} has a timestamp without time zone: {moment}")
        box = self._boxes.get(reading.box_id)
        if box is None:
            box = self._boxes[reading.box_id] = _Box(reading.box_name, moment, clock_hour(moment))
        elif moment <= box.newest:
            self._counts["duplicates" if moment == box.newest else "late"] += 1
            return None
        else:
            hour = clock_hour(moment)
            if hour != box.hour:
                box.move_to(hour, self.window_hours)
            box.newest = moment
        self._counts["processed"] += 1
        self.last_accepted = True
        box.name = reading.box_name
        box.sum += hundredths(value)
        box.count += 1

        n_hours = len(box.closed) + 1
        if n_hours < self.min_hours:
            return None
        approximate = (box.closed_float + box.sum / box.count) / n_hours
        if abs(approximate - self._threshold_100) > _NEAR * max(1.0, self._threshold_100):
            above = approximate > self._threshold_100
        else:
            above = box.exact_mean() > self._threshold_exact
        if box.state == OK and above:
            box.state = event = EXCEEDED
        elif box.state == EXCEEDED and not above:
            box.state, event = OK, RESOLVED
        else:
            return None
        mean = float(box.exact_mean() / 100)
        return Alert(reading.box_id, box.name, event, moment, mean, n_hours, self.threshold, self.window_hours)

    def window(self, box_id: str) -> tuple[float, int]:
        """The box's 24-hour mean (µg/m³) as of its newest hour, and how many hours have data; (nan, 0) if unknown."""
        box = self._boxes.get(box_id)
        if box is None:
            return (math.nan, 0)
        return (float(box.exact_mean() / 100), len(box.closed) + 1)

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
