"""The 24-hour-mean alert rule of pm25.rules.detector, decided on closed hours: case by case and against an exact
oracle."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from statistics import fmean
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pm25.data.contract import SATURATED
from pm25.rules.detector import Alert, Detector, is_valid_value, naive_last_rows_alerts
from pm25.rules.hardened import Hardened

T0 = datetime(2023, 2, 26, tzinfo=UTC)


def reading(hours: float, value, box: str = "a", name: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        box_id=box, box_name=name or f"Box {box}", timestamp=T0 + timedelta(hours=hours), value=value
    )


def hourly(values, box: str = "a", start: int = 0, minute: int = 30) -> list[SimpleNamespace]:
    """One reading per clock hour, at hh:30, from hour `start` on."""
    return [reading(start + hour + minute / 60, value, box) for hour, value in enumerate(values)]


def closed_hourly(values, box: str = "a") -> list[SimpleNamespace]:
    """One reading per clock hour, then one at the start of the next hour, which closes the last."""
    return [*hourly(values, box), reading(len(values), 0, box)]


def feed(detector: Detector, readings) -> list[Alert]:
    return [alert for alert in map(detector.process, readings) if alert is not None]


def events(alerts: list[Alert]) -> list[tuple[str, str, float]]:
    """(box, event, hours after T0) of each alert: what a reader of the alert topic sees."""
    return [(a.box_id, a.event, (a.timestamp - T0).total_seconds() / 3600) for a in alerts]


def test_defaults_are_the_who_24_hour_mean_with_18_hours_coverage():
    detector = Detector()
    assert (detector.threshold, detector.window_hours, detector.min_hours) == (15.0, 24, 18)


def test_seventeen_hours_with_data_decide_nothing():
    detector = Detector()
    assert feed(detector, closed_hourly([40] * 17)) == []
    assert detector.window("a") == (40, 17)
    assert detector.state("a") == "ok"


def test_the_eighteenth_hour_decides_once_it_is_closed_at_the_start_of_the_next():
    detector = Detector()
    assert feed(detector, hourly([40] * 18)) == []  # hour 17 is still open: nothing is decided inside it
    alerts = feed(detector, [reading(18.25, 0)])  # the first reading of hour 18 closes hour 17
    assert events(alerts) == [("a", "exceeded", 18)]
    assert (alerts[0].mean, alerts[0].n_hours, alerts[0].threshold, alerts[0].window_hours) == (40, 18, 15.0, 24)


@pytest.mark.parametrize(("missing", "decided"), [(7, False), (6, True)])
def test_coverage_is_hours_with_data_anywhere_in_the_window_17_is_too_few_18_enough(missing, decided):
    hours_with_data = [hour for hour in range(24) if hour % 3 != 1 or hour // 3 >= missing]  # gaps spread out
    assert len(hours_with_data) == 24 - missing
    detector = Detector()
    alerts = feed(detector, [reading(hour + 0.5, 40) for hour in hours_with_data] + [reading(24.1, 0)])
    assert events(alerts) == ([("a", "exceeded", 24)] if decided else [])
    assert detector.window("a") == (40, 24 - missing)


def test_an_hour_with_many_readings_counts_once():
    # 17 hours at 10, then one hour with 60 readings at 100: the mean of hourly means is
    # (17 * 10 + 100) / 18 = 15.0 (not exceeded), while the mean of the readings would be ~75.
    readings = hourly([10] * 17) + [reading(17 + minute / 60, 100) for minute in range(60)] + [reading(18.5, 0)]
    detector = Detector()
    assert feed(detector, readings) == []
    assert detector.window("a") == (15.0, 18)


def test_readings_of_one_hour_are_averaged_before_the_hours_are():
    readings = [*hourly([15] * 17), reading(17.1, 10), reading(17.2, 20), reading(17.3, 30), reading(18.1, 0)]
    alerts = feed(Detector(), readings)
    assert events(alerts) == [("a", "exceeded", 18)]  # hour 17's mean is 20, whatever it was on the way
    assert alerts[0].mean == pytest.approx((15 * 17 + 20) / 18)


def test_a_running_mean_that_crosses_the_threshold_inside_an_hour_decides_nothing_there():
    # Hour 17 swings: its running mean goes 30, 15, 20, 15, 18, 15 (the old rule flapped on it).
    inside = [reading(17 + minute / 60, value) for minute, value in zip(range(0, 60, 10), [30, 0] * 3, strict=True)]
    detector = Detector()
    decided = [(r.timestamp, detector.process(r)) for r in [*hourly([15] * 17), *inside, reading(18, 0)]]
    assert [alert for _, alert in decided if alert] == []  # hour 17's mean is 15.00: no alert, also not on the way
    assert detector.window("a") == (15, 18)


def test_one_decision_per_closed_hour_on_the_first_reading_of_the_next():
    # A 1-hour window: each hour is decided alone, once, when the next one begins.
    detector = Detector(window_hours=1, min_hours=1)
    stream = [reading(hour + minute / 60, value) for hour, value in enumerate([30, 0, 30, 0]) for minute in (5, 25, 45)]
    decided = [(r.timestamp, alert) for r in [*stream, reading(4, 0)] if (alert := detector.process(r))]
    assert [(moment - T0, alert.event) for moment, alert in decided] == [
        (timedelta(hours=1, minutes=5), "exceeded"),
        (timedelta(hours=2, minutes=5), "resolved"),
        (timedelta(hours=3, minutes=5), "exceeded"),
        (timedelta(hours=4), "resolved"),
    ]
    assert [alert.timestamp - T0 for _, alert in decided] == [timedelta(hours=hour) for hour in (1, 2, 3, 4)]


def test_the_alert_timestamp_is_the_full_utc_hour_that_ends_the_window():
    alert = feed(Detector(), [*hourly([40] * 18, minute=59), reading(18 + 59 / 60, 0)])[0]
    assert alert.timestamp == datetime(2023, 2, 26, 18, tzinfo=UTC)
    assert alert.as_dict()["timestamp"] == "2023-02-26T18:00:00Z"


def test_mean_exactly_at_threshold_is_not_exceeded():
    detector = Detector()
    assert feed(detector, closed_hourly([10, 20] * 9)) == []
    assert detector.window("a") == (15.0, 18)


def test_tie_that_float_summation_gets_wrong_is_not_exceeded():
    # Added up in plain floats these hourly means give 15.000000000000004 * 18: "exceeded" by rounding alone.
    values = [14.7, 15.9, 15.9, 14.7, 15.5, 15.9, 14.5, 14.5, 14.1, 15.3, 15.9, 14.9, 15.5, 15.9, 15.0, 15.9, 15.9]
    values.append(10.0)
    assert sum(values) / 18 > 15  # a plain float sum would say so
    detector = Detector()
    assert feed(detector, closed_hourly(values)) == []
    assert detector.window("a") == (15.0, 18)


def test_mean_above_threshold_by_less_than_a_float_can_show_is_exceeded():
    # Raw hours with 11, 13, ..., 41 readings have means whose denominators are coprime. Taking each
    # such hour's sum (in hundredths) = 1500 * count + (P / count)^-1 mod count, P the product of the
    # counts, makes their fractional parts add up to 1/P (Chinese remainder theorem). Nine one-reading
    # hours absorb the whole part, so the 18 hourly means add up to 18 * 15.00 + 1/P hundredths.
    counts = [11, 13, 17, 19, 23, 29, 31, 37, 41]
    product = math.prod(counts)
    sums = [1500 * count + pow(product // count, -1, count) for count in counts]
    whole_part = sum(Fraction(total, count) for total, count in zip(sums, counts, strict=True)) - Fraction(1, product)
    singles = [1500] * 9
    singles[0] -= int(whole_part) - 1500 * len(counts)
    hours = [[total] for total in singles]
    for total, count in zip(sums, counts, strict=True):
        hours.append([total // count] * (count - total % count) + [total // count + 1] * (total % count))
    stream = [
        reading(h + (i + 0.5) / len(values), v / 100) for h, values in enumerate(hours) for i, v in enumerate(values)
    ]

    by_hour: dict[int, list[Fraction]] = {}
    for r in stream:
        by_hour.setdefault((r.timestamp - T0) // timedelta(hours=1), []).append(Fraction(str(r.value)))
    exact = sum(sum(values) / len(values) for values in by_hour.values()) / len(by_hour)
    assert exact > 15 and float(exact) == 15.0  # above 15, by less than the nearest float can show
    alerts = feed(Detector(), [*stream, reading(18.5, 0)])
    assert events(alerts) == [("a", "exceeded", 18)]


def test_one_hundredth_above_threshold_is_exceeded():
    alerts = feed(Detector(), closed_hourly([15] * 17 + [15.18]))  # mean 15.01
    assert [a.event for a in alerts] == ["exceeded"]


@pytest.mark.parametrize("threshold", [15.1, 12.7, 0.3, 25.0])
def test_mean_exactly_at_a_decimal_threshold_is_not_exceeded(threshold):
    # 15.1 as a float is 15.0999999999999996447...: a mean of exactly 15.10 is not above the 15.1 meant.
    detector = Detector(threshold=threshold, min_hours=1)
    assert feed(detector, [reading(0.5, threshold), reading(1.5, threshold + 0.01)]) == []
    assert [a.event for a in feed(detector, [reading(2.5, 0)])] == ["exceeded"]  # hour 1: threshold + 0.01


def test_detector_resolves_when_a_covered_mean_is_back_at_threshold():
    detector = Detector()
    alerts = feed(detector, hourly([30] * 18))
    # hours 18..35 at 0: the window before hour 30 (hours 6..29) holds 12 hours of 30 and 12 of 0: 15.
    alerts += feed(detector, hourly([0] * 18, start=18))
    assert events(alerts) == [("a", "exceeded", 18), ("a", "resolved", 30)]
    assert (alerts[1].mean, alerts[1].n_hours) == (15.0, 24)
    assert detector.state("a") == "ok"


def test_detector_does_not_reemit_while_exceeded():
    detector = Detector()
    alerts = feed(detector, hourly([40] * 100))
    assert events(alerts) == [("a", "exceeded", 18)]


def test_detector_can_exceed_again_after_resolving():
    values = [20] * 4 + [0] * 8 + [50] * 4
    alerts = feed(Detector(window_hours=4, min_hours=3), hourly(values))
    assert [a.event for a in alerts] == ["exceeded", "resolved", "exceeded"]


def test_an_hour_more_than_24_hours_before_the_decision_has_left_the_window():
    detector = Detector(min_hours=1)
    alerts = feed(detector, [reading(0.5, 100), reading(24.5, 10)])  # the window before hour 24 is hours 0..23
    alerts += feed(detector, [reading(25.0, 10)])  # the one before hour 25, hours 1..24, holds hour 24 alone
    assert [(event, hours, alert.mean) for alert, (_, event, hours) in zip(alerts, events(alerts), strict=True)] == [
        ("exceeded", 24, 100),
        ("resolved", 25, 10),
    ]
    assert detector.window("a") == (10, 1)


def test_the_window_holds_the_24_clock_hours_before_the_open_one():
    detector = Detector(min_hours=1)
    feed(detector, [reading(0.01, 100), reading(23.99, 10), reading(24.0, 1000 / 3)])  # hours 0 and 23
    assert detector.window("a") == (55, 2)


def test_a_box_that_pauses_for_a_day_keeps_its_state_until_it_has_18_hours_again():
    detector = Detector()
    alerts = feed(detector, hourly([40] * 24))
    after_pause = hourly([0] * 18, start=24 + 30)  # back 30 hours later, clean: hours 54..71
    alerts += feed(detector, after_pause)
    assert detector.window("a") == (0, 17)  # hours 54..70 are closed, hour 71 is still open
    assert detector.state("a") == "exceeded"  # not enough data: no new decision
    alerts += feed(detector, [reading(72, 0)])
    assert events(alerts) == [("a", "exceeded", 18), ("a", "resolved", 72)]


def test_duplicate_timestamp_is_counted_and_ignored():
    detector = Detector(min_hours=1)
    feed(detector, [reading(0, 10), reading(0.5, 12), reading(0.5, 900)])
    assert detector.provisional("a") == (11, 1)
    assert detector.counts == {"processed": 2, "invalid": 0, "saturated": 0, "duplicates": 1, "late": 0}
    assert detector.last_accepted is False


def test_late_reading_for_a_closed_hour_is_counted_and_ignored():
    detector = Detector(min_hours=1)
    alerts = feed(detector, [reading(0, 10), reading(2, 10), reading(1, 100), reading(3, 10)])
    assert alerts == []  # hour 1 was closed (empty) when its reading came: the decisions stay as they were
    assert detector.window("a") == (10, 2)
    assert detector.counts == {"processed": 3, "invalid": 0, "saturated": 0, "duplicates": 0, "late": 1}


def test_the_provisional_window_includes_the_open_hour_and_is_not_a_decision():
    detector = Detector(window_hours=2, min_hours=1)
    feed(detector, [reading(0.5, 10), reading(1.5, 30), reading(1.75, 50)])
    assert detector.window("a") == (10, 1)  # decided at 01:00 on hour 0
    assert detector.provisional("a") == (25, 2)  # hours 0 and 1, hour 1 so far: (10 + 40) / 2
    assert detector.state("a") == "ok"
    assert math.isnan(detector.provisional("unknown")[0])


def test_last_accepted_tells_whether_the_reading_entered_the_window():
    detector = Detector()
    accepted = []
    for r in [reading(1, 10), reading(1, 10), reading(0, 10), reading(2, 999.9), reading(2, -1), reading(2, 10)]:
        detector.process(r)
        accepted.append(detector.last_accepted)
    assert accepted == [True, False, False, False, False, True]


@pytest.mark.parametrize("value", [999.9, 1000.0, 5000])
def test_saturated_values_are_counted_with_their_reason(value):
    detector = Detector()
    feed(detector, [reading(0, 20), reading(1, value)])
    assert detector.counts == {"processed": 1, "invalid": 0, "saturated": 1, "duplicates": 0, "late": 0}
    assert detector.provisional("a") == (20, 1)
    assert SATURATED == "sensor saturated"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.1, None, "12"])
def test_invalid_values_are_counted_and_leave_window_untouched(value):
    detector = Detector()
    feed(detector, [reading(0, 20), reading(1, value)])
    assert detector.provisional("a") == (20, 1)
    assert detector.counts == {"processed": 1, "invalid": 1, "saturated": 0, "duplicates": 0, "late": 0}


def test_invalid_reading_neither_creates_a_box_nor_marks_its_timestamp_seen():
    detector = Detector(min_hours=1)
    assert detector.process(reading(5, 999.9)) is None
    assert detector.box_ids() == []
    detector.process(reading(5, 20))  # same timestamp, now valid: not a duplicate
    detector.process(reading(4, 20))  # older than the newest *valid* reading: late
    assert detector.counts == {"processed": 1, "invalid": 0, "saturated": 1, "duplicates": 0, "late": 1}


@pytest.mark.parametrize("value, valid", [(0, True), (0.0, True), (998.9, True), (999.89, True), (999.9, False)])
def test_valid_range_is_zero_inclusive_to_saturation_exclusive(value, valid):
    assert is_valid_value(value) is valid


def test_boxes_interleaved_keep_independent_windows_and_states():
    detector = Detector(min_hours=2)
    stream = [r for pair in zip(hourly([40, 40, 1], "a"), hourly([1, 1, 40], "b"), strict=True) for r in pair]
    alerts = feed(detector, stream)
    assert events(alerts) == [("a", "exceeded", 2)]
    assert detector.window("a") == (40, 2)
    assert detector.window("b") == (1, 2)
    # Each box is judged by its own clock: b's newest again is a duplicate, b's hour 1 again is late.
    detector.process(reading(2.5, 40, "b"))
    detector.process(reading(1.5, 1, "b"))
    assert (detector.counts["duplicates"], detector.counts["late"]) == (1, 1)
    assert detector.box_ids() == ["a", "b"]


def test_forget_drops_a_boxs_window_and_state():
    detector = Detector(min_hours=1)
    feed(detector, hourly([40], "a") + hourly([40], "b"))
    detector.forget(["a", "unknown"])
    assert detector.box_ids() == ["b"]
    assert math.isnan(detector.window("a")[0]) and detector.state("a") == "ok"
    assert events(feed(detector, hourly([40, 40], "a", start=1))) == [("a", "exceeded", 2)]  # starts afresh


@pytest.mark.parametrize(
    "parameters, values, expected",
    [
        ({"threshold": 25.0}, [20] * 18, []),
        ({"threshold": 5.0}, [10] * 18, ["exceeded"]),
        ({"min_hours": 20}, [20] * 19, []),
        ({"min_hours": 1}, [20], ["exceeded"]),
        # hours 0..3, 2-hour window: before hour 2 (100, 0) -> 50, before hour 3 (0, 0) -> 0
        ({"window_hours": 2, "min_hours": 2}, [100, 0, 0, 0], ["exceeded", "resolved"]),
        ({"window_hours": 72, "min_hours": 54}, [20] * 53, []),
        ({"window_hours": 72, "min_hours": 54}, [20] * 54, ["exceeded"]),
    ],
)
def test_parameters_threshold_window_and_min_hours_are_respected(parameters, values, expected):
    detector = Detector(**parameters)
    alerts = feed(detector, closed_hourly(values))
    assert [a.event for a in alerts] == expected
    for alert in alerts:
        assert (alert.threshold, alert.window_hours) == (detector.threshold, detector.window_hours)


@pytest.mark.parametrize(
    "parameters",
    [
        {"threshold": math.nan},
        {"window_hours": 0},
        {"window_hours": 2.5},
        {"min_hours": 0},
        {"min_hours": 2.5},
        {"window_hours": 24, "min_hours": 25},
    ],
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
    readings = closed_hourly([20] * 18)
    readings[-1].box_name = "New"  # the reading that closes the window
    assert feed(Detector(), readings)[0].box_name == "New"


def test_alert_as_dict_is_json_ready_with_utc_z_timestamp():
    berlin = timezone(timedelta(hours=1))
    alert = Alert("b1", "Garten", "exceeded", datetime(2024, 1, 15, 13, 0, tzinfo=berlin), 17.5, 20, 15.0, 24)
    as_dict = alert.as_dict()
    assert as_dict == {
        "boxId": "b1",
        "boxName": "Garten",
        "event": "exceeded",
        "timestamp": "2024-01-15T12:00:00Z",
        "mean": 17.5,
        "n_hours": 20,
        "threshold": 15.0,
        "window_hours": 24,
    }
    assert json.loads(json.dumps(as_dict)) == as_dict


def test_naive_last_rows_alert_averages_rows_however_far_apart():
    # Two old high readings and one new low one: 3 rows, but 10 days apart.
    stream = [reading(0, 30), reading(1, 30), reading(240, 0)]
    naive = naive_last_rows_alerts(stream)
    assert events(naive) == [("a", "exceeded", 240)]
    assert naive[0].mean == 20
    assert (naive[0].window_hours, naive[0].n_hours) == (240, 3)  # the time and clock hours the rows spanned
    # In event time, hour 240 is clean: the old readings left the window long ago.
    later = [*stream, reading(241, 0)]
    assert events(feed(Detector(min_hours=1), later)) == [("a", "exceeded", 1), ("a", "resolved", 241)]


def test_naive_last_rows_alert_fires_on_a_few_minutes_of_raw_readings():
    stream = hourly([5] * 18) + [reading(18 + minute / 60, value) for minute, value in enumerate([5, 5, 50])]
    naive = naive_last_rows_alerts(stream)
    assert [(a.event, a.n_hours, a.window_hours) for a in naive] == [("exceeded", 1, 2 / 60)]
    assert feed(Detector(), [*stream, reading(19, 5)]) == []  # hour 18's mean is 20: (23 * 5 + 20) / 24 = 5.6


def test_naive_last_rows_alert_counts_saturated_and_duplicate_rows():
    stream = [reading(0, 5), reading(1, 999.9), reading(1, 999.9), reading(2, 5)]
    assert [a.event for a in naive_last_rows_alerts(stream)] == ["exceeded"]
    assert feed(Detector(min_hours=1), stream) == []


def test_naive_last_rows_alert_resolves_and_respects_rows_and_threshold():
    stream = [reading(h, v) for h, v in enumerate([10, 10, 10, 10, 0])]
    assert [a.event for a in naive_last_rows_alerts(stream, threshold=9, rows=4)] == ["exceeded", "resolved"]
    assert naive_last_rows_alerts(stream, threshold=10, rows=4) == []


# --- the whole rule against an oracle in exact arithmetic, written straight from its definition ----


def oracle(stream, threshold, window_hours, min_hours):
    """Keeps every accepted reading as an exact decimal; at a box's first reading of a new clock hour H,
    recomputes the window of hours H - window_hours ... H - 1 from scratch."""
    accepted: dict[str, list] = {}
    state: dict[str, str] = {}
    alerts, counts = [], {"saturated": 0, "skipped": 0}
    threshold = Fraction(str(threshold))  # the decimal as written: 15.1, not the float 15.0999...96
    for r in stream:
        if r.value >= 999.9:
            counts["saturated"] += 1
            continue
        seen = accepted.setdefault(r.box_id, [])
        if seen and r.timestamp <= seen[-1][0]:
            counts["skipped"] += 1
            continue
        hour = (r.timestamp - T0) // timedelta(hours=1)
        decide = seen and hour > (seen[-1][0] - T0) // timedelta(hours=1)
        seen.append((r.timestamp, Fraction(str(r.value))))
        if not decide:
            continue
        by_hour: dict[int, list] = {}
        for moment, value in seen[:-1]:
            h = (moment - T0) // timedelta(hours=1)
            if hour - window_hours <= h < hour:
                by_hour.setdefault(h, []).append(value)
        means = [sum(values) / len(values) for values in by_hour.values()]
        if len(means) < min_hours:
            continue
        mean = sum(means) / len(means)
        current = state.get(r.box_id, "ok")
        end = T0 + timedelta(hours=hour)
        if current == "ok" and mean > threshold:
            state[r.box_id] = "exceeded"
            alerts.append((r.box_id, "exceeded", end, len(means), mean))
        elif current == "exceeded" and mean <= threshold:
            state[r.box_id] = "ok"
            alerts.append((r.box_id, "resolved", end, len(means), mean))
    return alerts, counts


# Values in hundredths, as on openSenseMap, crowded around 15 so that ties at the threshold are common.
values = st.one_of(
    st.sampled_from([0.0, 0.7, 10.0, 14.0, 14.5, 14.99, 15.0, 15.01, 15.1, 15.5, 16.0, 20.0, 999.9]),
    st.integers(min_value=0, max_value=99_989).map(lambda hundredths: hundredths / 100),
)
streams = st.lists(st.tuples(st.sampled_from("ab"), st.integers(min_value=0, max_value=30 * 4), values), max_size=120)


@settings(max_examples=400, deadline=None)
@given(
    stream=streams,
    threshold=st.sampled_from([0.0, 15.0, 15.1, 15.5, 20.0, 0.7]),
    window_hours=st.sampled_from([1, 3, 6]),
    min_hours=st.integers(min_value=1, max_value=3),
)
def test_detector_agrees_with_exact_oracle(stream, threshold, window_hours, min_hours):
    min_hours = min(min_hours, window_hours)
    readings = [reading(quarter_hours / 4, value, box) for box, quarter_hours, value in stream]
    detector = Detector(threshold, window_hours, min_hours)
    got = feed(detector, readings)
    expected, counts = oracle(readings, threshold, window_hours, min_hours)
    assert [(a.box_id, a.event, a.timestamp, a.n_hours) for a in got] == [e[:4] for e in expected]
    for alert, (*_, mean) in zip(got, expected, strict=True):
        assert alert.mean == float(mean)
    assert detector.counts["saturated"] == counts["saturated"]
    assert detector.counts["duplicates"] + detector.counts["late"] == counts["skipped"]
    assert detector.counts["processed"] + counts["saturated"] + counts["skipped"] == len(readings)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([14.0, 14.5, 15.0, 15.5, 16.0, 13.99, 16.01]), min_size=18, max_size=18))
def test_ties_are_decided_exactly_in_the_default_rule(hour_values):
    # Many streams whose 24-hour mean is exactly 15.00: never "exceeded", whatever the order.
    alerts = feed(Detector(), closed_hourly(hour_values))
    exact = sum(Fraction(str(v)) for v in hour_values) / 18
    assert bool(alerts) == (exact > 15)


def learners_window_detector():
    """The class the learner writes in step 3 (its example answer)."""
    from pm25.learning.tasks import solved_values

    return solved_values("window_detector")["WindowDetector"]


def test_hardened_raises_the_learners_alerts_with_detector_beside_and_filters_what_the_learner_does_not():
    WindowDetector = learners_window_detector()
    stream = [*hourly([30] * 18 + [0] * 13), reading(30.5, 99), reading(29.9, 99), reading(31, 999.9)]
    hardened = Hardened(WindowDetector(15.0, 24, 18))
    alerts = [alert for alert in map(hardened.process, stream) if alert]
    assert [(alert.event, alert.timestamp.hour, alert.n_hours) for alert in alerts] == [
        ("exceeded", 18, 18),
        ("resolved", 6, 24),
    ]
    assert alerts == [alert for alert in map(Detector().process, stream) if alert]
    assert hardened.counts["duplicates"] == hardened.counts["late"] == hardened.counts["saturated"] == 1
    assert hardened.compare() == "Alerts: yours: 2 alerts, package: 2 alerts, the same."


def test_hardened_names_the_first_alert_where_the_learners_detector_differs():
    class AtOrAbove(learners_window_detector()):  # a slip: "at or above" instead of "above"
        def decide(self, box_id, buckets, hour):
            mean = fmean(total / count for total, count in buckets.values())
            if len(buckets) >= self.min_hours and mean == self.threshold and box_id not in self.exceeded:
                self.exceeded.add(box_id)
                return "exceeded"
            return super().decide(box_id, buckets, hour)

    hardened = Hardened(AtOrAbove(15.0, 24, 18))
    alerts = [alert for alert in map(hardened.process, hourly([15] * 19)) if alert]
    assert [(alert.event, alert.mean, hardened.state("a")) for alert in alerts] == [("exceeded", 15.0, "exceeded")]
    assert hardened.compare() == (
        "❗ Alerts: yours: 1 alerts, package: 0 alerts. They differ from alert 1 on: "
        "yours EXCEEDED Box a at Sun 26 Feb 18:00, package none."
    )
    hardened.forget({"a"})
    assert hardened.state("a") == "ok" and hardened.box_ids() == [] and "a" not in hardened.yours.hours
    assert hardened.compare() == "Alerts: yours: 0 alerts, package: 0 alerts, the same."


def test_hardened_gives_a_reading_the_learners_detector_raised_on_to_its_fixed_class_when_it_comes_again():
    Solved = learners_window_detector()
    stream = sorted(hourly([30] * 24, "a") + hourly([20] * 24, "b", minute=40), key=lambda r: r.timestamp)
    failing = stream.index(reading(20 + 40 / 60, 20, "b"))

    class RaisesOnOne(Solved):  # a slip that one reading reaches
        def process(self, item):
            if item == stream[failing]:
                raise TypeError("unsupported operand type(s) for -: 'int' and 'datetime.timedelta'")
            return super().process(item)

    hardened = Hardened(RaisesOnOne(15.0, 24, 18))
    for item in stream[:failing]:
        hardened.process(item)
    with pytest.raises(TypeError):
        hardened.process(stream[failing])
    hardened.follow(Solved)  # the learner fixes the class; the consumer goes back to the reading that failed,
    for item in [stream[failing + 1], stream[failing], *stream[failing + 2 :]]:  # after one of another partition
        hardened.process(item)
    reference = Solved(15.0, 24, 18)
    for item in stream:
        reference.process(item)
    assert hardened.yours.hours == reference.hours
    assert type(hardened.yours) is Solved
    assert hardened.counts["duplicates"] == hardened.counts["late"] == 0
