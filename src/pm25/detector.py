"""Sliding-window PM2.5 alerts per senseBox: the WHO 24-h guideline checked over a time window.

The rule, per box, in arrival order:

* a reading is valid if its value is a finite number with 0 <= value < 999.9 (999.9 is what the
  SDS011 reports when saturated); invalid readings are counted and otherwise ignored;
* a reading whose timestamp was already seen for that box is a duplicate, one older than the
  newest seen is late; both are counted and ignored. (Timestamps are remembered as long as they
  are in the window: a repeat of an older one is counted as late.)
* the window of a valid reading at time t holds the box's valid readings in (t - window_hours, t];
* a box starts "ok"; with at least min_readings in the window, a mean above the threshold raises
  an "exceeded" alert and a later mean at or below it a "resolved" alert. Nothing is re-emitted.

Each reading costs the same however long the stream has run: a box keeps a deque of its window
and a running sum, so a reading adds one value and evicts the ones that fell out of the window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from pm25.contract import VALUE_LIMIT, format_timestamp

EXCEEDED = "exceeded"
RESOLVED = "resolved"
OK = "ok"

# A running sum picks up rounding error with every addition and eviction. The sum is recomputed
# exactly (math.fsum) once the worst-case error could exceed this fraction of the sum, so the mean
# always agrees with the exact one to ~1e-12, also after a spike of 900 leaves a window of 2s.
_SUM_TOLERANCE = 1e-12
_EPSILON = 2.0**-52  # twice the unit roundoff of a float: a safe bound per addition


def is_valid_value(value) -> bool:
    """True for a finite PM2.5 value the sensor can actually measure: 0 <= value < 999.9."""
    try:
        return 0.0 <= value < VALUE_LIMIT  # NaN fails every comparison, inf the upper bound
    except TypeError:  # None, text: not a number at all
        return False


@dataclass(frozen=True)
class Alert:
    """A box crossed the threshold: its window mean went above it, or came back to it or below."""

    box_id: str
    box_name: str
    event: str  # "exceeded" | "resolved"
    timestamp: datetime
    mean: float
    n_readings: int
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
            "n_readings": self.n_readings,
            "threshold": self.threshold,
            "window_hours": self.window_hours,
        }


class _Box:
    """One box's window: its timestamps and values, oldest first, and their running sum."""

    __slots__ = ("error", "name", "state", "times", "total", "values")

    def __init__(self, name: str):
        self.name = name
        self.state = OK
        self.times: deque[datetime] = deque()
        self.values: deque[float] = deque()
        self.total = 0.0
        self.error = 0.0  # sum of |partial sums| since the last exact sum: bounds the rounding error

    def is_duplicate(self, moment: datetime) -> bool:
        """Whether an older timestamp is one still held in the window (else it is merely late)."""
        # Rare (only for out-of-order readings), so a linear scan of at most one window is fine.
        return moment >= self.times[0] and moment in self.times


class Detector:
    """Feed readings one at a time with process(); it answers with an Alert when a box changes state."""

    def __init__(self, threshold: float = 15.0, window_hours: float = 72.0, min_readings: int = 3):
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        if not window_hours > 0:
            raise ValueError(f"window_hours must be > 0, got {window_hours!r}")
        if int(min_readings) != min_readings or min_readings < 1:
            raise ValueError(f"min_readings must be a whole number >= 1, got {min_readings!r}")
        self.threshold = float(threshold)
        self.window_hours = float(window_hours)
        self.min_readings = int(min_readings)
        self._window = timedelta(hours=window_hours)
        self._boxes: dict[str, _Box] = {}
        self._processed = self._invalid = self._duplicates = self._late = 0

    @property
    def counts(self) -> dict:
        """How many readings were accepted into a window (processed), and how many were ignored why."""
        return {
            "processed": self._processed,
            "invalid": self._invalid,
            "duplicates": self._duplicates,
            "late": self._late,
        }

    def process(self, reading) -> Alert | None:
        """Take one reading (box_id, box_name, timestamp, value); return an Alert if the box changed state."""
        value = reading.value
        if not is_valid_value(value):
            self._invalid += 1
            return None
        moment = reading.timestamp
        if moment.tzinfo is None:
            raise ValueError(f"reading of box {reading.box_id} has a timestamp without time zone: {moment}")
        box = self._boxes.get(reading.box_id)
        if box is None:
            box = self._boxes[reading.box_id] = _Box(reading.box_name)
        elif moment <= box.times[-1]:  # a box's window always holds its newest reading
            if moment == box.times[-1] or box.is_duplicate(moment):
                self._duplicates += 1
            else:
                self._late += 1
            return None
        self._processed += 1
        box.name = reading.box_name

        times, values = box.times, box.values
        times.append(moment)
        values.append(value)
        total = box.total + value
        error = box.error + abs(total)
        cutoff = moment - self._window  # a reading exactly window_hours old is outside
        while times[0] <= cutoff:
            times.popleft()
            total -= values.popleft()
            error += abs(total)
        n = len(values)
        # Recompute exactly when drift could matter: the bound got large against the sum, or the
        # mean is so close to the threshold that rounding could decide the comparison.
        if error * _EPSILON > _SUM_TOLERANCE * abs(total) or (
            error and abs(total - n * self.threshold) <= 1e-9 * abs(total)
        ):
            total = math.fsum(values)
            error = 0.0
        box.total, box.error = total, error

        if n < self.min_readings:
            return None
        mean = total / n
        if box.state == OK and mean > self.threshold:
            box.state = event = EXCEEDED
        elif box.state == EXCEEDED and mean <= self.threshold:
            box.state, event = OK, RESOLVED
        else:
            return None
        return Alert(reading.box_id, box.name, event, moment, mean, n, self.threshold, self.window_hours)

    def window(self, box_id: str) -> tuple[float, int]:
        """The (mean, n) of the box's window as of its newest reading; (nan, 0) for an unknown box."""
        box = self._boxes.get(box_id)
        if box is None or not box.values:
            return (math.nan, 0)
        return (box.total / len(box.values), len(box.values))

    def state(self, box_id: str) -> str:
        """ "ok" or "exceeded"; a box not seen yet is "ok", as every box starts."""
        box = self._boxes.get(box_id)
        return OK if box is None else box.state

    def box_ids(self) -> list[str]:
        """Boxes with at least one accepted reading, in the order they first appeared."""
        return list(self._boxes)


def naive_last_rows_alerts(readings, threshold: float = 15.0, rows: int = 3) -> list[Alert]:
    """The tempting but WRONG rule: alert on the mean of each box's last `rows` rows.

    Kept to compare against Detector on the real sample. It uses the same exceeded/resolved
    transitions, so every difference comes from the window: rows instead of hours (three rows may
    span two hours or ten days), and no filtering of saturated values, duplicates or late rows.
    An alert's window_hours is the time its `rows` rows actually spanned, to make that visible.
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
        alerts.append(
            Alert(reading.box_id, reading.box_name, event, reading.timestamp, mean, rows, threshold, span_hours)
        )
    return alerts
