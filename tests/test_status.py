"""Sensor status and quality of pm25.rules.status: active, stale, inactive, and the stuck-sensor rule."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest

from pm25.config import REPO_DIR
from pm25.rules.detector import Detector
from pm25.rules.status import COLUMNS, StatusTracker

T0 = datetime(2024, 1, 15, tzinfo=UTC)
BERLIN = REPO_DIR / "data" / "berlin_pm25_raw_2023-02-26.csv.gz"


def reading(hours: float, value: float, box: str = "a", name: str | None = None, **extra) -> SimpleNamespace:
    moment = T0 + timedelta(hours=hours)
    return SimpleNamespace(box_id=box, box_name=name or f"Box {box}", timestamp=moment, value=value, **extra)


def feature(box: str, name: str, lon: float, lat: float) -> dict:
    return {
        "type": "Feature",
        "properties": {"boxId": box, "name": name},
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }


def tracked(readings, **parameters) -> StatusTracker:
    tracker = StatusTracker(**parameters)
    for r in readings:
        tracker.update(r)
    return tracker


def row(table: pd.DataFrame, box: str) -> pd.Series:
    (index,) = table.index[table["boxId"] == box]
    return table.loc[index]


def test_stream_time_is_newest_timestamp_seen_in_any_box():
    tracker = StatusTracker()
    assert tracker.stream_time is None
    for r in [reading(5, 1, "a"), reading(9, 1, "b"), reading(7, 1, "a")]:
        tracker.update(r)
    assert tracker.stream_time == T0 + timedelta(hours=9)


def test_box_with_reading_in_last_24_hours_is_active():
    table = tracked([reading(0, 8, "a"), reading(30, 9, "b")]).table([])
    assert row(table, "b")["status"] == "active"
    assert row(table, "b")["last_value"] == 9
    assert row(table, "b")["last_seen"] == T0 + timedelta(hours=30)


def test_box_whose_last_reading_is_24_hours_or_more_before_stream_time_is_stale():
    almost = tracked([reading(6 + 1 / 3600, 8, "a"), reading(30, 9, "b")]).table([])
    exactly = tracked([reading(6, 8, "a"), reading(30, 9, "b")]).table([])
    assert row(almost, "a")["status"] == "active"
    assert row(exactly, "a")["status"] == "stale"
    assert row(exactly, "a")["quality"] == "ok"


def test_box_of_the_map_without_readings_is_inactive_with_no_data():
    tracker = tracked([reading(0, 8, "a")])
    table = tracker.table([feature("a", "Dach", 7.6, 51.9), feature("quiet", "Keller", 7.7, 52.0)])
    quiet = row(table, "quiet")
    assert (quiet["status"], quiet["quality"]) == ("inactive", "no data")
    assert pd.isna(quiet["last_seen"]) and math.isnan(quiet["last_value"])
    assert (quiet["boxName"], quiet["lat"], quiet["lon"]) == ("Keller", 52.0, 7.7)


def test_every_box_is_inactive_before_any_reading():
    table = StatusTracker().table([feature("a", "A", 7.6, 51.9)])
    assert table["status"].tolist() == ["inactive"]


def test_table_has_exactly_the_documented_columns_and_types():
    table = tracked([reading(0, 8, "a")]).table([feature("a", "A", 7.6, 51.9), feature("b", "B", 7.7, 52.0)])
    assert list(table.columns) == COLUMNS
    assert COLUMNS == [
        "boxId",
        "boxName",
        "lat",
        "lon",
        "status",
        "quality",
        "last_seen",
        "last_value",
        "days_valid",
        "days_above_who",
        "days_above_eu_2030",
    ]
    assert str(table["last_seen"].dt.tz) == "UTC"
    assert table["last_value"].dtype == float


def test_map_boxes_come_first_in_their_order_then_boxes_only_in_the_stream():
    readings = [reading(0, 3, "stream-only", name="Nachbar", lat=51.95, lon=7.62), reading(1, 4, "b")]
    table = tracked(readings).table([feature("b", "B", 7.7, 52.0), feature("a", "A", 7.6, 51.9)])
    assert table["boxId"].tolist() == ["b", "a", "stream-only"]
    extra = row(table, "stream-only")
    assert (extra["boxName"], extra["lat"], extra["lon"], extra["status"]) == ("Nachbar", 51.95, 7.62, "active")


def test_stream_only_box_without_coordinates_gets_nan_position():
    table = tracked([reading(0, 3, "x")]).table([])
    assert math.isnan(row(table, "x")["lat"]) and math.isnan(row(table, "x")["lon"])
    assert row(table, "x")["boxName"] == "Box x"


def test_box_listed_twice_on_the_map_appears_once():
    table = StatusTracker().table([feature("a", "A", 7.6, 51.9), feature("a", "A", 7.6, 51.9)])
    assert table["boxId"].tolist() == ["a"]


def test_flat_readings_in_six_hours_are_suspect():
    # A dead sensor as in the Berlin recording: 0.0 with an occasional 0.1.
    table = tracked(
        [reading(hour + minute / 60, 0.1 if minute == 30 else 0.0) for hour in range(6) for minute in range(0, 60, 10)]
    ).table([])
    assert row(table, "a")["quality"] == "suspect"


def test_flat_readings_in_only_five_hours_are_not_judged():
    table = tracked([reading(hour, 4.0) for hour in range(5)]).table([])
    assert row(table, "a")["quality"] == "ok"


def test_readings_spanning_one_microgram_are_ok():
    values = [7.0, 7.5, 8.0, 7.0, 7.2, 7.1, 7.3, 7.0]  # a range of exactly 1.0 µg/m³
    table = tracked([reading(hour, value) for hour, value in enumerate(values)]).table([])
    assert row(table, "a")["quality"] == "ok"


def test_a_change_24_clock_hours_before_the_last_reading_no_longer_counts():
    flat = [reading(hour + 0.5, 4.0) for hour in range(24, 30)]  # last reading in hour 29
    at_boundary = tracked([reading(5.5, 1.0), *flat]).table([])  # hour 5: 24 clock hours before hour 29
    just_inside = tracked([reading(6.5, 1.0), *flat]).table([])
    assert row(at_boundary, "a")["quality"] == "suspect"
    assert row(just_inside, "a")["quality"] == "ok"


def test_flat_value_after_a_change_becomes_suspect_once_the_change_is_24_hours_old():
    readings = [reading(hour, 9.0 if hour < 4 else 4.0) for hour in range(40)]
    tracker = tracked(readings[:27])  # last seen 26: the change at hour 3 -> 4 is within 24 h
    assert row(tracker.table([]), "a")["quality"] == "ok"
    for r in readings[27:]:
        tracker.update(r)
    assert row(tracker.table([]), "a")["quality"] == "suspect"


def test_stale_box_is_judged_on_its_own_last_24_hours():
    flat = [reading(hour, 4.0, "a") for hour in range(6)]
    table = tracked([*flat, reading(100, 9.0, "b")]).table([])
    assert (row(table, "a")["status"], row(table, "a")["quality"]) == ("stale", "suspect")


def test_suspect_rule_follows_its_parameters():
    readings = [reading(hour * 2, 5.0 + hour / 10) for hour in range(4)]  # 4 hours, range 0.3
    assert row(tracked(readings, suspect_min_hours=4).table([]), "a")["quality"] == "suspect"
    assert row(tracked(readings, suspect_min_hours=5).table([]), "a")["quality"] == "ok"
    assert row(tracked(readings, suspect_min_hours=4, suspect_range=0.3).table([]), "a")["quality"] == "ok"


@pytest.mark.skipif(not BERLIN.exists(), reason="the Berlin recording is shipped by the raw-data branch")
def test_suspect_rule_fires_on_the_dead_sensors_of_the_berlin_recording_only():
    recording = pd.read_csv(BERLIN, parse_dates=["createdAt"]).sort_values("createdAt", kind="stable")
    tracker = StatusTracker()
    for box_id, name, moment, value in recording[["boxId", "boxName", "createdAt", "value"]].itertuples(index=False):
        tracker.update(SimpleNamespace(box_id=box_id, box_name=name, timestamp=moment.to_pydatetime(), value=value))
    table = tracker.table([])
    assert sorted(table.loc[table["quality"] == "suspect", "boxName"]) == ["C16", "Hans-Werner Sense"]


def test_out_of_order_and_repeated_readings_are_ignored():
    tracker = tracked([reading(5, 1.0), reading(3, 2.0), reading(5, 3.0)])
    table = tracker.table([])
    assert row(table, "a")["last_value"] == 1.0
    assert row(table, "a")["last_seen"] == T0 + timedelta(hours=5)


def test_detector_adds_its_decided_window_mean_hours_and_alert_state():
    # Box a's hour 18 is open: the table shows the window decided when it began, hours 0..17.
    readings = [reading(hour, 10 if hour % 2 else 20, "a") for hour in range(19)]
    readings += [reading(0, 30, "c"), reading(1, 0, "c")]
    detector = Detector()
    for r in readings:
        detector.process(r)
    boxes = [feature("a", "A", 7.6, 51.9), feature("b", "B", 7.7, 52.0), feature("c", "C", 7.8, 52.1)]
    table = tracked(readings).table(boxes, detector)
    assert list(table.columns) == [*COLUMNS, "mean_24h", "n_hours", "alert_state"]
    assert row(table, "a")[["mean_24h", "n_hours", "alert_state"]].tolist() == [15.0, 18, "ok"]
    assert row(table, "c")[["mean_24h", "n_hours", "alert_state"]].tolist() == [30.0, 1, "not enough data"]
    assert math.isnan(row(table, "b")["mean_24h"]) and row(table, "b")["n_hours"] == 0


@pytest.mark.parametrize("window_hours", [24, 72])
def test_window_column_is_named_after_the_detector_window(window_hours):
    table = StatusTracker().table([], Detector(window_hours=window_hours))
    assert list(table.columns) == [*COLUMNS, f"mean_{window_hours}h", "n_hours", "alert_state"]


def test_table_counts_valid_days_and_days_above_the_limits():
    day_one = [reading(hour, 20.0) for hour in range(18)]  # valid, above 15, not above 25
    day_two = [reading(24 + hour, 30.0) for hour in range(17)]  # 17 hours: not a valid day
    table = tracked(day_one + day_two).table([])
    assert row(table, "a")[["days_valid", "days_above_who", "days_above_eu_2030"]].tolist() == [1, 1, 0]


def test_forget_drops_a_box_so_it_reads_as_inactive():
    tracker = tracked([reading(hour, 20.0, "a") for hour in range(18)] + [reading(0, 1.0, "b")])
    tracker.forget(["a"])
    table = tracker.table([feature("a", "A", 7.6, 51.9)])
    assert row(table, "a")[["status", "days_valid"]].tolist() == ["inactive", 0]
    assert row(table, "b")["status"] == "active"


@pytest.mark.parametrize(
    "parameters", [{"active_hours": 0}, {"suspect_range": 0}, {"suspect_min_hours": 0}, {"suspect_min_hours": 25}]
)
def test_unusable_parameters_are_rejected(parameters):
    with pytest.raises(ValueError):
        StatusTracker(**parameters)


@pytest.mark.parametrize("first_fraction", [0, 123_000], ids=["whole-second-first", "milliseconds-first"])
def test_table_reads_last_times_with_and_without_milliseconds(first_fraction):
    # format_timestamp leaves out .000, so boxes' last times come in both forms (issue 21 item 1)
    moments = {
        box: T0 + timedelta(seconds=41, microseconds=fraction)
        for box, fraction in [("a", first_fraction), ("b", 123_000 - first_fraction)]
    }
    readings = [SimpleNamespace(box_id=box, box_name=box, timestamp=moment, value=5) for box, moment in moments.items()]
    table = tracked(readings).table([])
    assert [row(table, box)["last_seen"] for box in moments] == list(moments.values())
