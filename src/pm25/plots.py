"""Plots for the notebooks: step 1's readings per box, step 3's window mean per box with its alerts."""

from __future__ import annotations

import math
from itertools import cycle
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

# Okabe-Ito colours (told apart with any colour vision), each combined with a line style and a
# marker, so every line of a legend can also be found by its shape.
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# 8, 3 and 5 entries: no common factor, so the triples repeat only after 120 lines, and the
# (line style, marker) shape alone after 15.
LINE_STYLES = ["-", "--", ":"]
MARKERS = ["o", "s", "^", "D", "v"]
LEGEND_COLUMNS = 4


def line_styles():
    """Endless (colour, line style, marker) triples; neighbours differ in all three."""
    return zip(cycle(COLOURS), cycle(LINE_STYLES), cycle(MARKERS))


def readings_plot(readings: pd.DataFrame, threshold: float = 15.0) -> plt.Figure:
    """Step 1's overview: each box's hourly mean PM2.5 (boxName, timestamp, value columns), one line per
    box told apart by colour, line style and marker, and the threshold as a dashed line."""
    series = readings.assign(time=pd.to_datetime(readings["timestamp"], utc=True).dt.floor("h"))
    hourly = series.groupby(["boxName", "time"])["value"].mean()
    boxes = sorted(hourly.index.get_level_values("boxName").unique())
    # The legend goes under the plot, in columns: beside it, 48 boxes' names would squeeze the plot to a sliver.
    legend_rows = math.ceil((len(boxes) + 1) / LEGEND_COLUMNS)
    figure, axis = plt.subplots(figsize=(11, 4 + 0.2 * legend_rows), layout="constrained")
    for box_name, (colour, style, marker) in zip(boxes, line_styles(), strict=False):
        rows = hourly.loc[box_name]
        axis.plot(rows.index, rows.values, color=colour, linestyle=style, marker=marker,
                  markevery=max(1, len(rows) // 6), markersize=4, linewidth=1, label=box_name)  # fmt: skip
    axis.axhline(threshold, color="black", linestyle="--", linewidth=1.5, label=f"{threshold:g} µg/m³")
    axis.set(ylabel="PM2.5 (µg/m³)", title="Hourly mean PM2.5 per senseBox")
    figure.legend(fontsize="x-small", ncol=LEGEND_COLUMNS, loc="outside lower center")
    return figure


def alert_intervals(alerts: pd.DataFrame, stream_end: pd.Timestamp) -> pd.DataFrame:
    """From 'exceeded' to the next 'resolved' of the same box (or to the end of the stream)."""
    intervals = []
    for box_name, events in alerts.sort_values("timestamp").groupby("boxName"):
        start = None
        for event in events.itertuples():
            if event.event == "exceeded":
                start = pd.Timestamp(event.timestamp)
            elif start is not None:
                intervals.append((box_name, start, pd.Timestamp(event.timestamp)))
                start = None
        if start is not None:
            intervals.append((box_name, start, stream_end))
    return pd.DataFrame(intervals, columns=["boxName", "start", "end"])


def rolling_mean_plot(
    history: pd.DataFrame, alerts: pd.DataFrame, threshold: float, window_hours: float, path: Path
) -> plt.Figure:
    """`history` has boxName, timestamp and mean (the box's window mean after each reading)."""
    history = history.assign(timestamp=pd.to_datetime(history["timestamp"], utc=True))
    boxes = sorted(history["boxName"].unique())
    figure, axes = plt.subplots(len(boxes), 1, figsize=(10, 1.6 * len(boxes) + 1), sharex=True, squeeze=False)
    intervals = alert_intervals(alerts, history["timestamp"].max()) if len(alerts) else pd.DataFrame()
    for axis, box_name in zip(axes[:, 0], boxes, strict=True):
        rows = history[history["boxName"] == box_name]
        axis.plot(rows["timestamp"], rows["mean"], color=COLOURS[0], linewidth=1.2)
        axis.axhline(threshold, color="black", linestyle="--", linewidth=0.8)
        for interval in intervals[intervals["boxName"] == box_name].itertuples() if len(intervals) else []:
            axis.axvspan(interval.start, interval.end, color=COLOURS[5], alpha=0.2, hatch="//", linewidth=0)
            axis.axvline(interval.start, color=COLOURS[5], linewidth=0.8)  # visible even for an alert at the end
        axis.set_ylabel("µg/m³")
        axis.set_title(box_name, fontsize="small", loc="left")
    figure.suptitle(
        f"{window_hours:g} h mean of PM2.5 per box; dashed: {threshold:g} µg/m³; hatched: in alert (exceeded)"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return figure
