"""The sliding-window alert rule of pm25.detector, pinned case by case and against a brute-force oracle."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pm25.detector import Alert, Detector, is_valid_value, naive_last_rows_alerts

T0 = datetime(2024, 1, 15, tzinfo=UTC)


def reading(hours: float, value, box: str = "a", name: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        box_id=box, box_name=name or f"Box {box}", timestamp=T0 + timedelta(hours=hours), value=value
    )


def feed(detector: Detector, readings) -> list[Alert]:
    return [alert for alert in map(detector.process, readings) if alert is not None]


def events(alerts: list[Alert]) -> list[tuple[str, str, float]]:
    """(box, event, hours after T0) of each alert: what a reader of the alert topic sees."""
    return [(a.box_id, a.event, (a.timestamp - T0).total_seconds() / 3600) for a in alerts]


def test_detector_exceeds_when_window_mean_rises_above_threshold():
    alerts = feed(Detector(), [reading(0, 10), reading(1, 20), reading(2, 20)])
    assert events(alerts) == [("a", "exceeded", 2)]
    assert alerts[0].mean == pytest.approx(50 / 3)
    assert alerts[0].n_readings == 3
    assert (alerts[0].threshold, alerts[0].window_hours) == (15.0, 72.0)


def test_detector_resolves_after_mean_drops():
    detector = Detector()
    alerts = feed(detector, [reading(0, 30), reading(1, 30), reading(2, 30), reading(3, 0), reading(4, 0)])
    assert events(alerts) == [("a", "exceeded", 2)]  # the mean fell to 22.5, then 18: still above 15
    alerts += feed(detector, [reading(5, 0)])
    assert events(alerts) == [("a", "exceeded", 2), ("a", "resolved", 5)]
    assert alerts[1].mean == 15.0  # back at the threshold counts as resolved
    assert detector.state("a") == "ok"


def test_detector_does_not_reemit_while_exceeded():
    detector = Detector()
    alerts = feed(detector, [reading(hour, 40) for hour in range(50)])
    assert events(alerts) == [("a", "exceeded", 2)]
    assert detector.state("a") == "exceeded"


def test_detector_can_exceed_again_after_resolving():
    values = [20, 20, 20, 0, 0, 0, 0, 0, 50, 50]
    alerts = feed(Detector(min_readings=1, window_hours=2), [reading(h, v) for h, v in enumerate(values)])
    assert [a.event for a in alerts] == ["exceeded", "resolved", "exceeded"]


def test_reading_exactly_window_hours_older_is_outside_window():
    detector = Detector(min_readings=1)
    detector.process(reading(0, 100))
    detector.process(reading(72, 10))
    assert detector.window("a") == (10, 1)
    assert detector.state("a") == "ok"  # the 100 left the window: 10 alone is below 15


def test_reading_one_second_less_than_window_hours_older_is_inside_window():
    detector = Detector(min_readings=1)
    alerts = feed(detector, [reading(0, 12), reading(72 - 1 / 3600, 20)])
    assert detector.window("a") == (16, 2)
    assert events(alerts) == [("a", "exceeded", 72 - 1 / 3600)]


def test_fewer_than_min_readings_emit_nothing_even_if_mean_high():
    detector = Detector()
    assert feed(detector, [reading(0, 500), reading(1, 500)]) == []
    assert detector.window("a") == (500, 2)
    assert detector.state("a") == "ok"


def test_old_readings_leaving_the_window_can_drop_n_below_min_readings():
    # Three readings exceed; then a lone reading 80 h later has a window of one: no resolve, no alert.
    detector = Detector()
    alerts = feed(detector, [reading(0, 50), reading(1, 50), reading(2, 50), reading(82, 0)])
    assert [a.event for a in alerts] == ["exceeded"]
    assert detector.window("a") == (0, 1)
    assert detector.state("a") == "exceeded"


def test_mean_exactly_at_threshold_is_not_exceeded():
    detector = Detector()
    assert feed(detector, [reading(0, 10), reading(1, 15), reading(2, 20)]) == []
    assert detector.window("a") == (15, 3)


def test_mean_exactly_at_threshold_resolves_even_after_large_values_left_the_window():
    # A plain running sum would end at 45.00000000000034 after the spikes leave: "still exceeded".
    detector = Detector(window_hours=3)
    spikes = [reading(0, 998.1), reading(1, 998.1), reading(2, 998.1)]
    level = [reading(3, 15.1), reading(4, 14.9), reading(5, 15.0)]
    alerts = feed(detector, spikes + level)
    assert [a.event for a in alerts] == ["exceeded", "resolved"]
    assert alerts[-1].mean == 15.0
    assert detector.window("a") == (15.0, 3)


def test_window_mean_matches_exact_mean_over_a_long_stream_with_spikes():
    rng = random.Random(7)
    detector = Detector(window_hours=24)
    kept = []
    for hour in range(20_000):
        value = rng.choice([rng.uniform(0, 1e-3), rng.uniform(0, 30), rng.uniform(900, 999)])
        detector.process(reading(hour, value))
        kept = [*kept[-23:], value]
        mean, n = detector.window("a")
        assert n == len(kept)
        assert mean == pytest.approx(math.fsum(kept) / n, rel=1e-9, abs=0)


def test_duplicate_timestamp_is_counted_and_ignored():
    detector = Detector()
    feed(detector, [reading(0, 10), reading(1, 12), reading(1, 900)])
    assert detector.window("a") == (11, 2)
    assert detector.counts == {"processed": 2, "invalid": 0, "duplicates": 1, "late": 0}


def test_redelivered_older_reading_in_window_is_counted_as_duplicate():
    detector = Detector()
    feed(detector, [reading(0, 10), reading(1, 12), reading(2, 14), reading(0, 10), reading(1, 12)])
    assert detector.counts["duplicates"] == 2
    assert detector.counts["late"] == 0
    assert detector.window("a") == (12, 3)


def test_late_reading_is_counted_and_ignored():
    detector = Detector()
    alerts = feed(detector, [reading(0, 10), reading(2, 10), reading(1, 100), reading(3, 10)])
    assert alerts == []
    assert detector.window("a") == (10, 3)
    assert detector.counts == {"processed": 3, "invalid": 0, "duplicates": 0, "late": 1}


def test_repeat_of_a_timestamp_older_than_the_window_is_counted_as_late():
    # Timestamps are remembered only while in the window, so memory stays bounded per box.
    detector = Detector(window_hours=2)
    feed(detector, [reading(0, 10), reading(5, 10), reading(0, 10)])
    assert (detector.counts["duplicates"], detector.counts["late"]) == (0, 1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.1, 999.9, 1000.0, None, "12"])
def test_invalid_values_are_counted_and_leave_window_untouched(value):
    detector = Detector()
    feed(detector, [reading(0, 20), reading(1, 20), reading(2, value)])
    assert detector.window("a") == (20, 2)
    assert detector.counts == {"processed": 2, "invalid": 1, "duplicates": 0, "late": 0}
    assert detector.state("a") == "ok"


def test_invalid_reading_neither_creates_a_box_nor_marks_its_timestamp_seen():
    detector = Detector(min_readings=1)
    assert detector.process(reading(5, 999.9)) is None
    assert detector.box_ids() == []
    detector.process(reading(5, 20))  # same timestamp, now valid: not a duplicate
    detector.process(reading(4, 20))  # older than the newest *valid* reading: late
    assert detector.counts == {"processed": 1, "invalid": 1, "duplicates": 0, "late": 1}


@pytest.mark.parametrize("value, valid", [(0, True), (0.0, True), (998.9, True), (999.89, True), (999.9, False)])
def test_valid_range_is_zero_inclusive_to_saturation_exclusive(value, valid):
    assert is_valid_value(value) is valid


def test_boxes_interleaved_keep_independent_windows_and_states():
    detector = Detector()
    stream = [
        reading(0, 40, "a"), reading(0, 1, "b"),
        reading(1, 40, "a"), reading(1, 1, "b"),
        reading(2, 1, "b"), reading(2, 40, "a"),
        reading(3, 1, "a"), reading(3, 40, "b"),
    ]  # fmt: skip
    alerts = feed(detector, stream)
    assert events(alerts) == [("a", "exceeded", 2)]
    assert detector.window("a") == (pytest.approx(121 / 4), 4)
    assert detector.window("b") == (pytest.approx(43 / 4), 4)
    assert (detector.state("a"), detector.state("b")) == ("exceeded", "ok")
    # b's hour 1 arrives again after a's hour 3: a duplicate for b, not late because of a's clock.
    detector.process(reading(1, 1, "b"))
    assert detector.counts["duplicates"] == 1
    assert detector.box_ids() == ["a", "b"]


@pytest.mark.parametrize(
    "parameters, values, expected",
    [
        ({"threshold": 25.0}, [20, 20, 20, 20], []),
        ({"threshold": 5.0}, [10, 10, 10], ["exceeded"]),
        ({"min_readings": 5}, [20, 20, 20, 20], []),
        ({"min_readings": 1}, [20], ["exceeded"]),
        # hours 0..3, 2-h window: each window holds two readings, (100, 0) -> 50, then (0, 0) -> 0
        ({"window_hours": 2, "min_readings": 2}, [100, 0, 0, 0], ["exceeded", "resolved"]),
        ({"window_hours": 1, "min_readings": 2}, [100, 100, 100], []),
    ],
)
def test_parameters_threshold_window_and_min_readings_are_respected(parameters, values, expected):
    detector = Detector(**parameters)
    alerts = feed(detector, [reading(hour, value) for hour, value in enumerate(values)])
    assert [a.event for a in alerts] == expected
    for alert in alerts:
        assert alert.threshold == detector.threshold
        assert alert.window_hours == detector.window_hours


@pytest.mark.parametrize(
    "parameters",
    [{"threshold": math.nan}, {"window_hours": 0}, {"window_hours": -1}, {"min_readings": 0}, {"min_readings": 2.5}],
)
def test_unusable_parameters_are_rejected(parameters):
    with pytest.raises(ValueError):
        Detector(**parameters)


def test_timestamp_without_zone_is_rejected():
    naive = SimpleNamespace(box_id="a", box_name="A", timestamp=datetime(2024, 1, 15), value=3.0)
    with pytest.raises(ValueError, match="without time zone"):
        Detector().process(naive)


def test_unknown_box_has_empty_window_and_ok_state():
    detector = Detector()
    mean, n = detector.window("nowhere")
    assert math.isnan(mean) and n == 0
    assert detector.state("nowhere") == "ok"
    assert detector.box_ids() == []


def test_alert_names_the_box_by_its_latest_name():
    alerts = feed(Detector(), [reading(0, 20, name="Old"), reading(1, 20, name="Old"), reading(2, 20, name="New")])
    assert alerts[0].box_name == "New"


def test_alert_as_dict_is_json_ready_with_utc_z_timestamp():
    berlin = timezone(timedelta(hours=1))
    alert = Alert("b1", "Garten", "exceeded", datetime(2024, 1, 15, 13, 0, tzinfo=berlin), 17.5, 3, 15.0, 72.0)
    as_dict = alert.as_dict()
    assert as_dict == {
        "boxId": "b1",
        "boxName": "Garten",
        "event": "exceeded",
        "timestamp": "2024-01-15T12:00:00Z",
        "mean": 17.5,
        "n_readings": 3,
        "threshold": 15.0,
        "window_hours": 72.0,
    }
    assert json.loads(json.dumps(as_dict)) == as_dict


def test_naive_last_rows_alert_averages_rows_however_far_apart():
    # Two old high readings and one new low one: 3 rows, but 10 days apart.
    stream = [reading(0, 30), reading(1, 30), reading(240, 0)]
    naive = naive_last_rows_alerts(stream)
    assert events(naive) == [("a", "exceeded", 240)]
    assert naive[0].mean == 20
    assert naive[0].window_hours == 240  # the time the three rows actually spanned
    assert feed(Detector(), stream) == []  # within 72 h of hour 240 there is a single reading


def test_naive_last_rows_alert_counts_saturated_and_duplicate_rows():
    stream = [reading(0, 5), reading(1, 999.9), reading(1, 999.9), reading(2, 5)]
    assert [a.event for a in naive_last_rows_alerts(stream)] == ["exceeded"]
    assert feed(Detector(), stream) == []


def test_naive_last_rows_alert_resolves_and_respects_rows_and_threshold():
    stream = [reading(h, v) for h, v in enumerate([10, 10, 10, 10, 0])]
    assert [a.event for a in naive_last_rows_alerts(stream, threshold=9, rows=4)] == ["exceeded", "resolved"]
    assert naive_last_rows_alerts(stream, threshold=10, rows=4) == []


# --- the whole rule against a brute-force oracle written straight from its definition ---------------


def oracle(stream, threshold, window_hours, min_readings):
    """Keeps every reading; recomputes each window from scratch with math.fsum."""
    accepted: dict[str, list] = {}
    state: dict[str, str] = {}
    alerts, skipped = [], 0
    window = timedelta(hours=window_hours)
    for r in stream:
        if not is_finite_measurable(r.value):
            continue
        seen = accepted.setdefault(r.box_id, [])
        if seen and r.timestamp <= max(t for t, _ in seen):
            skipped += 1
            continue
        seen.append((r.timestamp, r.value))
        in_window = [v for t, v in seen if r.timestamp - window < t <= r.timestamp]
        n, mean = len(in_window), math.fsum(in_window) / len(in_window)
        current = state.get(r.box_id, "ok")
        if n >= min_readings and current == "ok" and mean > threshold:
            state[r.box_id] = "exceeded"
            alerts.append((r.box_id, "exceeded", r.timestamp, n, mean))
        elif n >= min_readings and current == "exceeded" and mean <= threshold:
            state[r.box_id] = "ok"
            alerts.append((r.box_id, "resolved", r.timestamp, n, mean))
    return alerts, skipped


def is_finite_measurable(value) -> bool:
    return isinstance(value, float | int) and math.isfinite(value) and 0 <= value < 999.9


values = st.one_of(
    st.floats(min_value=0, max_value=40),
    st.sampled_from([0.0, 14.9, 15.0, 15.1, 998.0, 999.9, 1e4, -3.0, math.nan, math.inf]),
)
streams = st.lists(st.tuples(st.sampled_from("ab"), st.integers(min_value=0, max_value=60), values), max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    stream=streams,
    threshold=st.sampled_from([0.0, 15.0, 20.0]),
    window_hours=st.sampled_from([1.0, 2.5, 6.0]),
    min_readings=st.integers(min_value=1, max_value=4),
)
def test_detector_agrees_with_brute_force_oracle(stream, threshold, window_hours, min_readings):
    readings = [reading(half_hours / 2, value, box) for box, half_hours, value in stream]
    detector = Detector(threshold, window_hours, min_readings)
    got = feed(detector, readings)
    expected, skipped = oracle(readings, threshold, window_hours, min_readings)
    assert [(a.box_id, a.event, a.timestamp, a.n_readings) for a in got] == [e[:4] for e in expected]
    for alert, (*_, mean) in zip(got, expected, strict=True):
        assert alert.mean == pytest.approx(mean, rel=1e-9, abs=1e-12)
    counts = detector.counts
    assert counts["invalid"] == sum(not is_finite_measurable(r.value) for r in readings)
    assert counts["duplicates"] + counts["late"] == skipped
    assert counts["processed"] + counts["invalid"] + skipped == len(readings)
