"""Step 3's self-check of the learner's WindowDetector: it runs beside pm25.rules.detector.Detector.

window_detector_check returns a checker for pm25.learning.tasks.check. Both detectors first run on small
hand-made boxes, each made so that one typical mistake shows and gets a hint of its own, then on the stream's
readings, where the first difference is named.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from pm25.data.contract import VALUE_LIMIT, Reading, format_timestamp
from pm25.learning.tasks import WrongAnswer
from pm25.rules.detector import Detector, clock_hour, hundredths

EVENTS = ("exceeded", "resolved", None)


def window_detector_check(
    readings: list[Reading],
    threshold: float = 15.0,
    window_hours: int = 24,
    min_hours: int = 18,
    reference: Callable[..., Detector] = Detector,
) -> Callable[..., str]:
    """Step 3: run the learner's WindowDetector and the package's Detector on the same readings.

    Only readings the Detector accepted (`last_accepted`) go to the learner's detector: filtering
    duplicates, late and saturated readings is what the hardened Detector adds, not the exercise.
    First both run on small hand-made boxes, each made so that one typical mistake shows and gets its
    own hint (real data may hide it: a day without a resolved alert, no mean of exactly 15.00); then on
    `readings`, where the first difference is named.
    """
    settings = {"threshold": threshold, "window_hours": window_hours, "min_hours": min_hours}
    cases = [case for case in _hand_made_cases(settings) if case.readings]

    def check(WindowDetector) -> str:  # the name of the learner's class
        for case in cases:
            steps = list(_steps(WindowDetector, reference, case.readings, settings))
            first = next((step for step in steps if step.yours != step.expected), None)
            if first and (hint := case.diagnose(steps, first)):
                raise WrongAnswer(hint)
        events = _compare(WindowDetector, reference, readings, settings)
        for case in cases:  # a difference that no hint names: the first one
            _compare(WindowDetector, reference, case.readings, settings)
        return (
            f"same alerts as pm25.rules.detector.Detector on {len(readings):,} readings: "
            f"{events['exceeded']} exceeded, {events['resolved']} resolved"
            + (
                f", and the same on {len(cases)} hand-made boxes ({', '.join(case.shows for case in cases)})."
                if cases
                else "."
            )
        )

    return check


@dataclass(frozen=True)
class _Step:
    """One accepted reading: what the learner's detector said, what Detector said, and Detector's window."""

    number: int
    reading: Reading
    yours: object
    expected: str | None
    mean: float = math.nan  # the window is looked up only where the two differ: it costs more than the rest
    hours: int = 0


@dataclass(frozen=True)
class _HandMadeCase:
    """A small stream of one box that a typical mistake gets wrong, and the hint that names the mistake."""

    readings: list[Reading]
    shows: str  # what the box has, for the confirmation
    diagnose: Callable[[list[_Step], _Step], str | None]  # (steps, first difference) -> the hint, if it is this mistake


def _steps(WindowDetector, reference, readings: list[Reading], settings: dict) -> Iterator[_Step]:
    yours, theirs = WindowDetector(**settings), reference(**settings)
    for number, reading in enumerate(readings, start=1):
        alert = theirs.process(reading)
        if not theirs.last_accepted:
            continue
        event = yours.process(reading)
        if event not in EVENTS:
            raise WrongAnswer(f'process() must return "exceeded", "resolved" or None; it returned {event!r}.')
        expected = alert.event if alert else None
        yield _Step(number, reading, event, expected, *(theirs.window(reading.box_id) if event != expected else ()))


def _compare(WindowDetector, reference, readings: list[Reading], settings: dict) -> Counter:
    """The events of the learner's detector, or WrongAnswer at the first that differs from the reference's."""
    events: Counter = Counter()
    for step in _steps(WindowDetector, reference, readings, settings):
        if step.yours != step.expected:
            raise WrongAnswer(_first_difference(step, settings))
        events[step.yours] += 1
    return events


BUSY_HOUR_READINGS = 60  # one a minute, as a sensor with a short interval sends
HAND_MADE_BOX = "0" * 23 + "1"
_START = datetime(2024, 1, 15, tzinfo=UTC)


def _reading(after: timedelta, value: float) -> Reading:
    return Reading(HAND_MADE_BOX, "Hand-made box", HAND_MADE_BOX, 0.0, 0.0, _START + after, value)


def _hourly(values: list[float]) -> list[Reading]:
    """The hand-made box with one reading per clock hour, of these values."""
    return [_reading(timedelta(hours=hour), value) for hour, value in enumerate(values)]


def _twice_hourly(values: list[float]) -> list[Reading]:
    """The hand-made box with two readings per clock hour, at :00 and :30, both of that hour's value."""
    return [
        _reading(timedelta(hours=hour, minutes=minute), value)
        for hour, value in enumerate(values)
        for minute in (0, 30)
    ]


def _busy_hour(value: float, readings: int, hour: int = 0) -> list[Reading]:
    """The hand-made box with `readings` readings of `value`, spread over one clock hour."""
    return [_reading(timedelta(hours=hour, seconds=3600 * n // readings), value) for n in range(readings)]


def _at_threshold_box(threshold: float, high: float, low: float, window_hours: int) -> list[Reading]:
    """Windows at exactly the threshold (no alert), then one above it, then one back at exactly it, then below:
    hours at the threshold, an hour of `high` (twice the threshold), an hour of 0, and hours of `low`."""
    return _hourly([threshold] * window_hours + [high, 0.0, low, low])


def _said(event) -> str:
    return "no alert" if event is None else f'"{event}"'


def _hand_made_cases(settings: dict) -> list[_HandMadeCase]:
    """The hand-made boxes in the order they are tried: each hint assumes the mistakes before it are ruled out.
    A case has no readings where the settings allow no such box (e.g. 2 × threshold would be saturated)."""
    threshold, window_hours, min_hours = settings["threshold"], settings["window_hours"], settings["min_hours"]
    low, high = round(threshold / 2, 2), round(2 * threshold, 2)
    possible = window_hours >= 3 and low > 0 and high < VALUE_LIMIT
    # A tie needs a threshold the readings can hold exactly and whose mean of equal values stays exact.
    exact = round(threshold, 2) == threshold and all(
        sum([threshold] * n) / n == threshold == math.fsum([threshold] * n) / n for n in range(1, window_hours + 1)
    )
    falling = _low_without_a_tie(threshold, high, window_hours) if possible else 0.0
    busy_readings = max(BUSY_HOUR_READINGS, window_hours)
    return [
        _HandMadeCase(
            _hourly([high] * (window_hours + 1)) if possible else [],
            "a decision on closed hours only",
            lambda steps, first: _inside_the_hour_hint(steps, first, settings, high, per_hour=1),
        ),
        _HandMadeCase(
            [*_busy_hour(high, max(BUSY_HOUR_READINGS, min_hours)), _reading(timedelta(hours=1), high)]
            if possible and min_hours > 1
            else [],
            "too few hours with data",
            lambda steps, first: _too_few_hours_hint(steps, first, settings),
        ),
        _HandMadeCase(
            _twice_hourly([high] * (window_hours + 1)) if possible else [],
            "two readings in each hour",
            lambda steps, first: _inside_the_hour_hint(steps, first, settings, high, per_hour=2),
        ),
        _HandMadeCase(
            _at_threshold_box(threshold, high, low, window_hours) if possible and exact else [],
            "a mean of exactly the threshold",
            lambda steps, first: _at_the_threshold_hint(steps, first, settings),
        ),
        _HandMadeCase(
            _hourly([high] * window_hours + [falling] * 3 * window_hours) if falling else [],
            "a mean that falls back",
            lambda steps, first: _resolves_late_hint(steps, first, settings, high, falling),
        ),
        _HandMadeCase(
            _hourly([low] * (window_hours - 1))
            + _busy_hour(high, busy_readings, hour=window_hours - 1)
            + [_reading(timedelta(hours=window_hours), low), _reading(timedelta(hours=window_hours + 1), low)]
            if possible
            else [],
            "one busy hour among quiet ones",
            lambda steps, first: _mean_of_values_hint(steps, first, settings, busy_readings),
        ),
    ]


def _low_without_a_tie(threshold: float, high: float, window_hours: int) -> float:
    """About threshold / 2, so that no window of `high` hours followed by hours of it has a mean of exactly the
    threshold: a box that falls back should test the way back, not how a tie is rounded. 0 if none is > 0."""
    exact_threshold = Fraction(str(threshold)) * 100  # in hundredths, as Detector takes it
    for low in range(hundredths(threshold) // 2, 0, -1):
        means_times_hours = {(window_hours - k) * hundredths(high) + k * low for k in range(window_hours + 1)}
        if window_hours * exact_threshold not in means_times_hours:
            return low / 100
    return 0.0


def _resolves_late_hint(steps: list[_Step], first: _Step, settings: dict, high: float, low: float) -> str | None:
    """For a detector with no way back to "resolved", or whose window keeps hours that have left it."""
    resolved = next((step for step in steps if step.expected == "resolved"), None)
    if resolved is None or first is not resolved:
        return None  # it went wrong before: another mistake
    window_hours, threshold = settings["window_hours"], settings["threshold"]
    story = (
        f"On a hand-made box with one reading of {high:g} µg/m³ in each of {window_hours} hours, then one of "
        f'{low:g} µg/m³ in each of {3 * window_hours} hours, Detector says "resolved" at reading {resolved.number}, '
        f"when the {window_hours}-hour mean is back at or below {threshold:g} µg/m³ ({resolved.mean:.2f} µg/m³)"
    )
    later = next((step for step in steps if step.yours == "resolved"), None)
    if later is None:
        return (
            f'Yours never says "resolved". {story}. Add the way back: when a box is exceeded and its mean is at or '
            'below the threshold, return "resolved" (and note that the box is no longer exceeded).'
        )
    return (
        'Yours says "resolved" too late: your window keeps hours that have left it. '
        f"{story}; yours says it only at reading {later.number}. "
        f"The window decided when hour H begins holds the {window_hours} hours before it, H − {window_hours} to "
        f"H − 1: drop every hour more than {window_hours} hours before H."
    )


def _inside_the_hour_hint(steps: list[_Step], step: _Step, settings: dict, high: float, per_hour: int) -> str | None:
    """For a detector that decides at any reading, on a window that includes the reading's own, open hour."""
    hour = clock_hour(step.reading.timestamp)
    following = next((later for later in steps if clock_hour(later.reading.timestamp) > hour), None)
    if step.yours != "exceeded" or step.expected is not None or not following or following.expected != "exceeded":
        return None  # not one reading early: another mistake
    return (
        "Yours decides while a reading's hour is still open. "
        f"On a hand-made box with {'one reading' if per_hour == 1 else f'{per_hour} readings'} of {high:g} µg/m³ in "
        f'each hour, yours says "exceeded" at reading {step.number} ({step.reading.timestamp:%H:%M}), while its hour '
        f"is still open; Detector says it at reading {following.number} ({following.reading.timestamp:%H:%M}), the "
        "box's first reading of a new hour, on the closed hours before it. Decide only when a reading's hour is newer "
        "than every hour of its box, and on the hours before it: an open hour is half-finished."
    )


def _too_few_hours_hint(steps: list[_Step], step: _Step, settings: dict) -> str | None:
    """For a detector that decides before min_hours hours have data (counting readings, or not counting)."""
    min_hours = settings["min_hours"]
    if step.yours != "exceeded" or step.hours >= min_hours:
        return None
    busy = len(steps) - 1  # all but the last reading, in the next hour
    return (
        f"Yours decides with fewer than {min_hours} hours with data. "
        f"On a hand-made box with {busy} readings of {step.reading.value:g} µg/m³, all in one hour, then one in "
        f'the next hour, yours says "exceeded" at reading {step.number}: the window then has {step.hours} closed '
        f"hour{'' if step.hours == 1 else 's'} with data, fewer than {min_hours}. With fewer than {min_hours} hours "
        "with data the rule decides nothing: count the hours with data (not the readings) and decide only when "
        "there are enough. Is your `hour` the clock hour, the timestamp without minutes, seconds and microseconds?"
    )


def _at_the_threshold_hint(steps: list[_Step], step: _Step, settings: dict) -> str | None:
    """For a detector that takes a mean of exactly the threshold as exceeded (>= instead of >, < instead of <=)."""
    threshold = settings["threshold"]
    if step.mean != threshold or step.hours < settings["min_hours"]:
        return None
    resolves_later = any(later.yours == "resolved" for later in steps if later.number > step.number)
    if step.expected == "resolved" and not resolves_later:
        return None  # it never resolves: the next box names that
    return (
        "Yours decides wrongly when the mean is exactly the threshold. "
        f"On a hand-made box whose {settings['window_hours']}-hour mean is exactly {threshold:g} µg/m³ at reading "
        f"{step.number}, Detector gives {_said(step.expected)}, yours gives {_said(step.yours)}. The threshold itself "
        f'is not exceeded: "exceeded" when the mean is above it (mean > threshold), "resolved" when it is back at '
        "or below it (mean <= threshold)."
    )


def _mean_of_values_hint(steps: list[_Step], step: _Step, settings: dict, busy: int) -> str | None:
    """For a detector that averages every value of the window instead of the hourly means."""
    quiet_hours = settings["window_hours"] - 1
    values = [earlier.reading.value for earlier in steps if earlier.number <= step.number]
    if step.yours != "exceeded" or step.number <= quiet_hours or sum(values) / len(values) <= settings["threshold"]:
        return None  # another mistake: the general message names the first difference
    if any(later.yours == "resolved" for later in steps if later.number > step.number):
        return None  # back to quiet hours, the mean of all values would still be above: another mistake
    low, high = steps[0].reading.value, steps[quiet_hours].reading.value
    hourly = (quiet_hours * low + high) / (quiet_hours + 1)
    return (
        "Yours averages the readings; the rule averages the hourly means. "
        f"On a hand-made box with one reading of {low:g} µg/m³ in each of {quiet_hours} hours, then an hour of "
        f'{busy} readings of {high:g} µg/m³, yours says "exceeded" at reading {step.number}, after '
        f"{min(step.number - quiet_hours, busy)} readings of the busy hour. The mean of all {step.number} values is "
        f"{sum(values) / step.number:.2f} µg/m³, but the rule takes the mean of the hourly means: "
        f"({quiet_hours} × {low:g} + {high:g}) / {quiet_hours + 1} = {hourly:.2f} µg/m³, no alert. "
        "Average each hour first (total / count), then average those hourly means: an hour with many "
        "readings must count as much as an hour with one, no more."
    )


def _first_difference(step: _Step, settings: dict) -> str:
    min_hours, reading = settings["min_hours"], step.reading
    where = (
        f"reading {step.number:,} (box {reading.box_name!r}, {format_timestamp(reading.timestamp)}, "
        f"{reading.value:g} µg/m³)"
    )
    if step.hours < min_hours:
        why = f"the box has only {step.hours} closed hours with data in its window, fewer than {min_hours}"
    else:
        mean_text = "unknown" if math.isnan(step.mean) else f"{step.mean:.2f} µg/m³"
        why = (
            f"the {settings['window_hours']:g} closed hours before this reading's hour have a mean of {mean_text} "
            f"over {step.hours} hours with data"
        )
    return (
        f"The first difference is at {where}: Detector gives {_said(step.expected)} ({why}), "
        f"yours gives {_said(step.yours)}."
    )
