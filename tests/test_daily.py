"""Daily means of pm25.rules.daily: valid days (>= 18 hourly means) and days above the WHO and EU limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from pm25.rules.daily import COLUMNS, DailyMeans

T0 = datetime(2023, 2, 26, tzinfo=UTC)  # a midnight, UTC


def reading(hours: float, value: float, box: str = "a") -> SimpleNamespace:
    return SimpleNamespace(box_id=box, box_name=f"Box {box}", timestamp=T0 + timedelta(hours=hours), value=value)


def daily(readings, **parameters) -> DailyMeans:
    means = DailyMeans(**parameters)
    for r in readings:
        means.update(r)
    return means


def test_a_day_with_18_hourly_means_is_valid_and_17_is_not():
    readings = [reading(hour + 0.5, 20) for hour in range(18)] + [reading(24 + hour, 20) for hour in range(17)]
    table = daily(readings).table()
    assert list(table.columns) == COLUMNS
    assert table.values.tolist() == [["a", "Box a", "2023-02-26", 18, 20.0, True, False]]


def test_the_daily_mean_is_the_mean_of_hourly_means():
    # Hour 0 has 60 readings of 100, the other 17 hours one reading of 10: (100 + 17 * 10) / 18 = 15.
    readings = [reading(minute / 60, 100) for minute in range(60)] + [reading(hour, 10) for hour in range(1, 18)]
    (row,) = daily(readings).table().itertuples()
    assert (row.n_hours, row.mean, row.above_who) == (18, 15.0, False)  # exactly 15.00 is not above


@pytest.mark.parametrize(
    "value, above_who, above_eu_2030",
    [(15.0, False, False), (15.01, True, False), (25.0, True, False), (25.01, True, True)],
)
def test_limits_are_compared_exactly(value, above_who, above_eu_2030):
    (row,) = daily([reading(hour, value) for hour in range(24)]).table().itertuples()
    assert (row.above_who, row.above_eu_2030) == (above_who, above_eu_2030)


def test_days_are_utc_calendar_days_per_box():
    readings = [reading(hour, 30, "a") for hour in range(48)] + [reading(hour, 5, "b") for hour in range(20)]
    table = daily(readings).table()
    assert table[["boxId", "date", "n_hours", "mean"]].values.tolist() == [
        ["a", "2023-02-26", 24, 30.0],
        ["a", "2023-02-27", 24, 30.0],
        ["b", "2023-02-26", 20, 5.0],
    ]


def test_older_and_invalid_readings_are_ignored():
    readings = [reading(hour, 10) for hour in range(18)] + [reading(3, 500), reading(18, 999.9)]
    (row,) = daily(readings).table().itertuples()
    assert (row.n_hours, row.mean) == (18, 10.0)


def test_min_hours_is_a_parameter_and_forget_drops_a_box():
    means = daily([reading(hour, 10, "a") for hour in range(6)] + [reading(0, 10, "b")], min_hours=6)
    assert means.table()["boxId"].tolist() == ["a"]
    assert means.summary("a") == (1, 0, 0)
    means.forget(["a"])
    assert means.table().empty and means.summary("a") == (0, 0, 0)


def test_empty_table_has_the_columns():
    assert list(DailyMeans().table().columns) == COLUMNS
