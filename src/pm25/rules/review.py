"""Is the alert real? Each alert's box compared with the network of boxes around it, hour by hour.

One low-cost sensor can read high for reasons that have nothing to do with the air: a bad or uncalibrated
sensor, a smoker or a barbecue next to it, water on its optics. Its neighbours then read much less. So:

* per clock hour (UTC), the **network median** is the median of the hourly means of all boxes with data in
  that hour, defined when at least `MIN_BOXES` (5) boxes have data (fewer are no network);
* a box's hour is **out of line** when its hourly mean is more than `RATIO` (3) × the network median *and*
  more than the network median + `MARGIN` (10 µg/m³): both, so that neither a clean hour (2 against a median
  of 0.5) nor a city-wide episode (60 against 40) counts;
* an alert is **implausible** when at least half of the hours of its window that have a network median (and
  data of the box) are out of line: its 24-hour mean then says more about the box than about the air.

Hourly means are taken as the detector takes them: valid values (0 <= value < 999.9), each timestamp of a box
once. The review says nothing about a box alone (no network), and it is not a calibration: a box that is out
of line may still be right (a real local source); the review says where to look before telling a resident.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pm25.data.contract import format_timestamp
from pm25.files import write_csv
from pm25.rules.detector import Alert, is_valid_value

MIN_BOXES = 5
RATIO = 3.0
MARGIN = 10.0  # µg/m³
COLUMNS = [
    "boxId",
    "boxName",
    "timestamp",
    "event",
    "mean",
    "network_median",
    "ratio",
    "out_of_line_hours",
    "hours",
    "plausible",
]


def hourly_means(readings) -> pd.DataFrame:
    """boxId, hour (UTC) and mean: the hourly mean of each box's valid readings, a repeated timestamp once."""
    rows = [(r.box_id, r.timestamp, r.value) for r in readings if is_valid_value(r.value)]
    table = pd.DataFrame(rows, columns=["boxId", "timestamp", "value"]).drop_duplicates(["boxId", "timestamp"])
    table["hour"] = pd.to_datetime(table["timestamp"], utc=True, format="ISO8601").dt.floor("h")
    return table.groupby(["boxId", "hour"], as_index=False)["value"].mean().rename(columns={"value": "mean"})


def network_medians(hourly: pd.DataFrame) -> pd.Series:
    """Per hour with data of at least MIN_BOXES boxes, the median of their hourly means."""
    per_hour = hourly.groupby("hour")["mean"]
    medians = per_hour.median()[per_hour.size() >= MIN_BOXES]
    return medians.rename("network_median")


def with_network(hourly: pd.DataFrame) -> pd.DataFrame:
    """`hourly` with its hour's network_median (NaN where there is none) and out_of_line (True/False)."""
    table = hourly.merge(network_medians(hourly), left_on="hour", right_index=True, how="left")
    median = table["network_median"]
    table["out_of_line"] = (table["mean"] > RATIO * median) & (table["mean"] > median + MARGIN)
    return table


def window_hours_of(table: pd.DataFrame, alert: Alert) -> pd.DataFrame:
    """The rows of the alert's box in the window it was decided on: the window_hours before its timestamp."""
    end = pd.Timestamp(alert.timestamp).tz_convert("UTC")
    start = end - pd.Timedelta(hours=alert.window_hours)
    rows = table[(table["boxId"] == alert.box_id) & (table["hour"] >= start) & (table["hour"] < end)]
    return rows.sort_values("hour")


def review_row(table: pd.DataFrame, alert: Alert) -> list:
    """One alert's row of the review (COLUMNS); `table` is with_network(hourly_means(...))."""
    judged = window_hours_of(table, alert).dropna(subset=["network_median"])
    hours, out_of_line = len(judged), int(judged["out_of_line"].sum())
    network_median = float(judged["network_median"].mean()) if hours else math.nan
    ratio = alert.mean / network_median if network_median > 0 else math.nan
    plausible = None if not hours else out_of_line * 2 < hours  # implausible: at least half out of line
    return [
        alert.box_id,
        alert.box_name,
        format_timestamp(alert.timestamp),
        alert.event,
        alert.mean,
        network_median,
        ratio,
        out_of_line,
        hours,
        plausible,
    ]


def review_alerts(alerts: list[Alert], hourly: pd.DataFrame) -> pd.DataFrame:
    """One row per alert (COLUMNS). network_median is the mean of the network medians of the window's judged
    hours, ratio the alert's mean over it; plausible is empty when no hour of the window has a network."""
    table = with_network(hourly)
    review = pd.DataFrame([review_row(table, alert) for alert in alerts], columns=COLUMNS)
    return review.astype(
        {
            "mean": float,
            "network_median": float,
            "ratio": float,
            "out_of_line_hours": int,
            "hours": int,
            "plausible": "boolean",
        }
    )


def write_review(path: Path, review: pd.DataFrame) -> Path:
    """output/alert_review.csv, replaced in one step."""
    write_csv(path, review)
    return path


def spike_effect(hourly: pd.DataFrame, alert: Alert) -> str:
    """What the box's out-of-line hours did to the alert's mean: the mean again with each of them at the network
    median of its hour, as if the box had read what its neighbours read."""
    rows = window_hours_of(with_network(hourly), alert)
    spikes = rows["out_of_line"]
    if not spikes.any():
        return f"{alert.box_name}: no hour of its window is out of line with the network."
    as_network = rows["mean"].where(~spikes, rows["network_median"]).mean()
    return (
        f"{alert.box_name}: {alert.window_hours:g}-hour mean {alert.mean:.1f} µg/m³ at {alert.timestamp:%d %b %H:%M}; "
        f"{int(spikes.sum())} of its {len(rows)} hours are out of line with the network. At the network's median "
        f"in those hours it would be {as_network:.1f} µg/m³ (threshold {alert.threshold:g})."
    )
