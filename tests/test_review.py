"""The plausibility review of pm25.rules.review: its definition at its edges, and the bundled recording's alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest

from pm25.data.readings import load_readings, recording_readings
from pm25.rules import review
from pm25.rules.detector import Alert, Detector

T0 = datetime(2024, 1, 15, tzinfo=UTC)  # a Monday in Münster's winter: nothing here is Berlin's


def reading(box: str, hours: float, value: float) -> SimpleNamespace:
    return SimpleNamespace(box_id=box, box_name=f"Box {box}", timestamp=T0 + timedelta(hours=hours), value=value)


def alert_on(box: str, hours: int, window_hours: int = 1, mean: float = 50.0) -> Alert:
    """An alert of `box` decided at T0 + hours on the window_hours before it."""
    return Alert(box, f"Box {box}", "exceeded", T0 + timedelta(hours=hours), mean, window_hours, 15.0, window_hours)


def one_hour(suspect: float, neighbours: list[float]) -> list[SimpleNamespace]:
    """Hour 0 of box "x" (one reading of `suspect`) and of one box per neighbour's value."""
    boxes = [reading(f"n{number}", 0.5, value) for number, value in enumerate(neighbours)]
    return [reading("x", 0.5, suspect), *boxes]


def reviewed(readings, alert: Alert) -> pd.Series:
    return review.review_alerts([alert], review.hourly_means(readings)).iloc[0]


@pytest.mark.parametrize(
    ("suspect", "median", "out_of_line"),
    [
        (30.0, 10.0, False),  # exactly 3 × the median (and more than median + 10): not more than 3 ×
        (30.01, 10.0, True),
        (12.0, 2.0, False),  # exactly median + 10 (and 6 × the median): not more than + 10
        (12.01, 2.0, True),
        (2.0, 0.5, False),  # 4 × a clean hour's median, but only 1.5 µg/m³ more: no spike
        (60.0, 40.0, False),  # a city-wide episode: 20 µg/m³ more, but not 3 ×
    ],
)
def test_an_hour_is_out_of_line_above_3_times_and_10_above_the_network_median(suspect, median, out_of_line):
    row = reviewed(one_hour(suspect, [median] * 4), alert_on("x", 1))
    assert (row["network_median"], row["hours"]) == (median, 1)  # the suspect is one of the five: the median holds
    assert (row["out_of_line_hours"], row["plausible"]) == (int(out_of_line), not out_of_line)
    assert row["ratio"] == pytest.approx(50.0 / median)


def test_four_boxes_are_no_network_five_are():
    four = reviewed(one_hour(100.0, [1.0] * 3), alert_on("x", 1))
    assert four["hours"] == 0 and pd.isna(four["network_median"]) and pd.isna(four["plausible"])
    five = reviewed(one_hour(100.0, [1.0] * 4), alert_on("x", 1))
    assert (five["hours"], five["out_of_line_hours"], five["plausible"]) == (1, 1, False)


@pytest.mark.parametrize(("spiking_hours", "plausible"), [(1, True), (2, False), (3, False)])
def test_an_alert_is_implausible_when_at_least_half_its_judged_hours_are_out_of_line(spiking_hours, plausible):
    readings = [reading(f"n{number}", hour + 0.5, 5.0) for hour in range(4) for number in range(4)]
    readings += [reading("x", hour + 0.5, 50.0 if hour < spiking_hours else 6.0) for hour in range(4)]
    readings += [reading("x", 4.5, 50.0), reading("n0", 4.5, 5.0)]  # hour 4: no network, not judged
    row = reviewed(readings, alert_on("x", 5, window_hours=5))
    assert (row["hours"], row["out_of_line_hours"], row["plausible"]) == (4, spiking_hours, plausible)


def test_only_the_hours_of_the_alerts_window_count():
    readings = [reading(f"n{number}", hour + 0.5, 5.0) for hour in range(30) for number in range(4)]
    readings += [reading("x", hour + 0.5, 50.0 if hour < 6 else 6.0) for hour in range(30)]
    assert reviewed(readings, alert_on("x", 24, window_hours=24))["out_of_line_hours"] == 6
    assert reviewed(readings, alert_on("x", 30, window_hours=24))["out_of_line_hours"] == 0  # hours 6..29


def test_invalid_and_repeated_readings_do_not_count_in_the_hourly_means():
    readings = [reading("x", 0.25, 10.0), reading("x", 0.25, 10.0), reading("x", 0.5, 999.9), reading("x", 0.75, 20.0)]
    assert review.hourly_means(readings)["mean"].tolist() == [15.0]


def test_spike_effect_says_what_the_box_would_read_at_the_networks_median():
    readings = [reading(f"n{number}", hour + 0.5, 4.0) for hour in range(4) for number in range(4)]
    readings += [reading("x", hour + 0.5, value) for hour, value in enumerate([100.0, 100.0, 6.0, 6.0])]
    said = review.spike_effect(review.hourly_means(readings), alert_on("x", 4, window_hours=4, mean=53.0))
    assert "2 of its 4 hours are out of line" in said
    assert "it would be 5.0 µg/m³" in said  # (4 + 4 + 6 + 6) / 4


@pytest.fixture(scope="module")
def recording_review(tmp_path_factory):
    """The bundled Berlin recording's alerts with the default rule, reviewed and written as step 3 does."""
    folder = tmp_path_factory.mktemp("review")
    recording_readings().to_csv(folder / "readings.csv", index=False)
    readings = sorted(load_readings(folder / "readings.csv").readings, key=lambda r: r.timestamp)
    detector = Detector()
    alerts = [alert for alert in map(detector.process, readings) if alert]
    path = review.write_review(folder / "alert_review.csv", review.review_alerts(alerts, review.hourly_means(readings)))
    return pd.read_csv(path), alerts


def test_on_the_recording_the_two_uncalibrated_looking_boxes_are_implausible(recording_review):
    table, alerts = recording_review
    assert list(table.columns) == review.COLUMNS
    assert len(table) == len(alerts) >= 3
    plausible = dict(zip(table["boxName"], table["plausible"], strict=True))
    assert plausible["Berliner Allee"] == plausible["airRohr-4889588"] == False  # noqa: E712 (read from CSV)
    assert any(plausible.values())  # the review does not simply reject every alert
    assert (table["hours"] >= table["out_of_line_hours"]).all()


def test_another_citys_shape_a_stuck_sensor_is_alerted_then_found_implausible():
    """Münster-like: ten boxes sending every 5 to 30 minutes, one stuck near 46 µg/m³ (as one in the Münster
    sample is), one with only 4 readings, two days in January."""
    readings = []
    for number in range(8):
        every = 5 + 3 * number  # minutes
        readings += [reading(f"ms{number}", minute / 60, 8.0 + number % 3) for minute in range(0, 48 * 60, every)]
    readings += [reading("stuck", minute / 60, 46.0 + (minute % 2) / 10) for minute in range(0, 48 * 60, 7)]
    readings += [reading("nienberge", hour, 9.0) for hour in (1, 9, 17, 30)]
    readings.sort(key=lambda r: r.timestamp)
    detector = Detector()
    alerts = [alert for alert in map(detector.process, readings) if alert]
    assert [(a.box_id, a.event, a.timestamp) for a in alerts] == [("stuck", "exceeded", T0 + timedelta(hours=18))]
    row = review.review_alerts(alerts, review.hourly_means(readings)).iloc[0]
    assert (row["hours"], row["out_of_line_hours"], row["plausible"]) == (18, 18, False)
