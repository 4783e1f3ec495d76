"""An exact, deliberately plain implementation of the rule (decision 2) with Detector's interface.

Used by the self-check tests until pm25.detector.Detector speaks that interface: every mean is
recomputed from all values with math.fsum, so there is no running sum that could drift.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta
from types import SimpleNamespace


class ReferenceDetector:
    def __init__(self, threshold: float = 15.0, window_hours: int = 24, min_hours: int = 18):
        self.threshold, self.window_hours, self.min_hours = threshold, window_hours, min_hours
        self._values = defaultdict(lambda: defaultdict(list))  # box -> clock hour -> values
        self._newest = {}
        self._exceeded = set()
        self.last_accepted = False

    def process(self, reading):
        newest = self._newest.get(reading.box_id)
        self.last_accepted = reading.value < 999.9 and (newest is None or reading.timestamp > newest)
        if not self.last_accepted:
            return None
        self._newest[reading.box_id] = reading.timestamp
        hour = reading.timestamp.replace(minute=0, second=0, microsecond=0)
        self._values[reading.box_id][hour].append(reading.value)
        mean, n_hours = self.window(reading.box_id)
        if n_hours < self.min_hours:
            return None
        if mean > self.threshold and reading.box_id not in self._exceeded:
            self._exceeded.add(reading.box_id)
            return SimpleNamespace(event="exceeded", mean=mean, n_hours=n_hours)
        if mean <= self.threshold and reading.box_id in self._exceeded:
            self._exceeded.discard(reading.box_id)
            return SimpleNamespace(event="resolved", mean=mean, n_hours=n_hours)
        return None

    def window(self, box_id):
        if box_id not in self._newest:
            return (math.nan, 0)
        newest_hour = self._newest[box_id].replace(minute=0, second=0, microsecond=0)
        start = newest_hour - timedelta(hours=self.window_hours)
        hourly = [math.fsum(values) / len(values) for hour, values in self._values[box_id].items() if hour > start]
        return (math.fsum(hourly) / len(hourly), len(hourly))
