"""The learner's window detector on the stream, with the package's Detector beside it (step 3).

`Hardened` gives the learner's class only the readings Detector accepts (duplicates, late and saturated readings
stop at Detector, counted), raises the learner's alerts with Detector's window figures, and compares the two
detectors' alerts in one line. A fix to the learner's class made after an error goes on with the windows so far.
"""

from __future__ import annotations

import itertools

from pm25.rules.detector import EXCEEDED, OK, Alert, Detector, clock_hour, hour_start


class Hardened:
    """The learner's WindowDetector on the stream, the package's Detector beside it, with Detector's interface.

    Detector takes each reading first: duplicates, late and saturated readings, which the learner's class does not
    handle, stop there (counted). Each reading it accepts goes on to the learner's detector, whose answer is the
    alert: its event, at the window's end, with Detector's mean and hours of that window. `window`, `counts` and
    `box_ids` are Detector's; `state` follows the learner's alerts. compare() says whether the two agreed."""

    def __init__(self, yours):
        self.yours = yours
        self.package = Detector(yours.threshold, yours.window_hours, yours.min_hours)
        self.threshold, self.window_hours, self.min_hours = (
            self.package.threshold,
            self.package.window_hours,
            self.package.min_hours,
        )
        self.your_alerts: list[Alert] = []
        self.package_alerts: list[Alert] = []
        self._exceeded: set[str] = set()
        self._failed: tuple | None = None  # (reading, package's alert): Detector took it, yours raised on it

    def process(self, reading) -> Alert | None:
        failed, self._failed = self._failed, None
        if failed is not None and failed[0] == reading:  # given again after yours raised on it
            package_alert = failed[1]
        else:
            self._failed = failed  # kept until that reading comes again
            package_alert = self.package.process(reading)
            if not self.package.last_accepted:
                return None
        try:
            event = self.yours.process(reading)
        except Exception:
            self._failed = (reading, package_alert)  # so that the reading is not a duplicate when it comes again
            raise
        if package_alert:
            self.package_alerts.append(package_alert)
        if event is None:
            return None
        if package_alert and package_alert.event == event:
            alert = package_alert
        else:
            mean, n_hours = self.package.window(reading.box_id)
            end = hour_start(clock_hour(reading.timestamp))
            alert = Alert(
                reading.box_id, reading.box_name, event, end, mean, n_hours, self.threshold, self.window_hours
            )
        if event == EXCEEDED:
            self._exceeded.add(reading.box_id)
        else:
            self._exceeded.discard(reading.box_id)
        self.your_alerts.append(alert)
        return alert

    def follow(self, cls: type) -> None:
        """Run the learner's class as last defined: a fix made after an error goes on with the windows so far."""
        if type(self.yours) is not cls:
            self.yours.__class__ = cls

    @property
    def last_accepted(self) -> bool:
        return self.package.last_accepted

    @property
    def counts(self) -> dict:
        return self.package.counts

    def window(self, box_id: str) -> tuple[float, int]:
        return self.package.window(box_id)

    def provisional(self, box_id: str) -> tuple[float, int]:
        return self.package.provisional(box_id)

    def state(self, box_id: str) -> str:
        return EXCEEDED if box_id in self._exceeded else OK

    def box_ids(self) -> list[str]:
        return self.package.box_ids()

    def forget(self, box_ids) -> None:
        """Both detectors drop these boxes (the skeleton's `hours` and `exceeded` hold the learner's state)."""
        box_ids = set(box_ids)
        self.package.forget(box_ids)
        for box_id in box_ids:
            self.yours.hours.pop(box_id, None)
            self.yours.exceeded.discard(box_id)
        self._exceeded -= box_ids
        self.your_alerts[:] = [alert for alert in self.your_alerts if alert.box_id not in box_ids]
        self.package_alerts[:] = [alert for alert in self.package_alerts if alert.box_id not in box_ids]

    def compare(self) -> str:
        """One line: how many alerts each raised, and the first that differs."""
        counted = f"yours: {len(self.your_alerts)} alerts, package: {len(self.package_alerts)} alerts"
        pairs = list(itertools.zip_longest(map(_said, self.your_alerts), map(_said, self.package_alerts)))
        differing = [(number, pair) for number, pair in enumerate(pairs, 1) if pair[0] != pair[1]]
        if not differing:
            return f"Alerts: {counted}, the same."
        number, (yours, package) = differing[0]
        return (
            f"❗ Alerts: {counted}. They differ from alert {number} on: yours {yours or 'none'}, "
            f"package {package or 'none'}."
        )


def _said(alert: Alert) -> str:
    return f"{alert.event.upper()} {alert.box_name} at {alert.timestamp:%a %d %b %H:%M}"
