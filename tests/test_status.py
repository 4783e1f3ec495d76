"""Sensor status and quality of pm25.status: active, stale, inactive, and the stuck-sensor rule."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest

from pm25.detector import Detector
from pm25.status import COLUMNS, StatusTracker

T0 = datetime(2024, 1, 15, tzinfo=UTC)


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
    assert COLUMNS == ["boxId", "boxName", "lat", "lon", "status", "quality", "last_seen", "last_value"]
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


def test_five_equal_readings_in_24_hours_are_not_suspect():
    table = tracked([reading(hour, 999.0) for hour in range(5)]).table([])
    assert row(table, "a")["quality"] == "ok"


def test_six_equal_readings_in_24_hours_are_suspect():
    table = tracked([reading(hour, 999.0) for hour in range(6)]).table([])
    assert row(table, "a")["quality"] == "suspect"


def test_one_different_reading_in_the_last_24_hours_makes_the_box_ok():
    values = [7.0, 7.0, 7.0, 7.5, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0]
    table = tracked([reading(hour, value) for hour, value in enumerate(values)]).table([])
    assert row(table, "a")["quality"] == "ok"


def test_different_reading_exactly_24_hours_before_last_seen_does_not_count():
    stuck = [reading(hour, 4.0) for hour in range(24, 30)]  # last seen at 29
    at_boundary = tracked([reading(5, 1.0), *stuck]).table([])
    just_inside = tracked([reading(5 + 1 / 3600, 1.0), *stuck]).table([])
    assert row(at_boundary, "a")["quality"] == "suspect"
    assert row(just_inside, "a")["quality"] == "ok"


def test_equal_readings_must_be_six_within_the_24_hours_not_six_in_total():
    spread_out = [reading(hour, 4.0) for hour in (0, 10, 20, 30, 40, 50)]  # 3 in the last 24 h
    assert row(tracked(spread_out).table([]), "a")["quality"] == "ok"


def test_sixth_equal_reading_exactly_24_hours_before_last_seen_does_not_count():
    readings = [reading(hour, 4.0) for hour in (0, 20, 21, 22, 23, 24)]
    assert row(tracked(readings).table([]), "a")["quality"] == "ok"
    readings = [reading(hour, 4.0) for hour in (0.5, 20, 21, 22, 23, 24)]
    assert row(tracked(readings).table([]), "a")["quality"] == "suspect"


def test_stuck_value_after_a_change_becomes_suspect_once_the_change_is_24_hours_old():
    readings = [reading(hour, 9.0 if hour < 4 else 4.0) for hour in range(40)]
    tracker = tracked(readings[:27])  # last seen 26: the change at hour 3 -> 4 is within 24 h
    assert row(tracker.table([]), "a")["quality"] == "ok"
    for r in readings[27:]:
        tracker.update(r)
    assert row(tracker.table([]), "a")["quality"] == "suspect"


def test_stale_box_is_judged_on_its_own_last_24_hours():
    stuck = [reading(hour, 4.0, "a") for hour in range(6)]
    table = tracked([*stuck, reading(100, 9.0, "b")]).table([])
    assert (row(table, "a")["status"], row(table, "a")["quality"]) == ("stale", "suspect")


def test_suspect_rule_follows_its_parameters():
    readings = [reading(hour * 2, 5.0) for hour in range(4)]  # 4 equal readings over 6 h
    assert row(tracked(readings, suspect_min_readings=4).table([]), "a")["quality"] == "suspect"
    assert row(tracked(readings, suspect_min_readings=4, active_hours=5).table([]), "a")["quality"] == "ok"


def test_nan_values_never_count_as_equal():
    table = tracked([reading(hour, math.nan) for hour in range(8)]).table([])
    assert row(table, "a")["quality"] == "ok"


def test_out_of_order_and_repeated_readings_are_ignored():
    tracker = tracked([reading(5, 1.0), reading(3, 2.0), reading(5, 3.0)])
    table = tracker.table([])
    assert row(table, "a")["last_value"] == 1.0
    assert row(table, "a")["last_seen"] == T0 + timedelta(hours=5)


def test_detector_adds_its_window_mean_and_count():
    readings = [reading(0, 10, "a"), reading(1, 20, "a")]
    detector = Detector()
    for r in readings:
        detector.process(r)
    table = tracked(readings).table([feature("a", "A", 7.6, 51.9), feature("b", "B", 7.7, 52.0)], detector)
    assert list(table.columns) == [*COLUMNS, "mean_72h", "n_72h"]
    assert (row(table, "a")["mean_72h"], row(table, "a")["n_72h"]) == (15.0, 2)
    assert math.isnan(row(table, "b")["mean_72h"]) and row(table, "b")["n_72h"] == 0


def test_window_columns_are_named_after_the_detector_window():
    table = StatusTracker().table([], Detector(window_hours=24))
    assert list(table.columns) == [*COLUMNS, "mean_24h", "n_24h"]


@pytest.mark.parametrize("parameters", [{"active_hours": 0}, {"suspect_min_readings": 1}])
def test_unusable_parameters_are_rejected(parameters):
    with pytest.raises(ValueError):
        StatusTracker(**parameters)
