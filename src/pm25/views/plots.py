"""Plots for the notebooks: step 1's readings per box, step 3's window mean per box and hour with its alerts."""

from __future__ import annotations

import math
from itertools import cycle
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap
from matplotlib.patches import Patch, Rectangle

from pm25.data.dataset import HUMID_RH
from pm25.views.maps import LEVELS, NO_DATA

# Okabe-Ito colours (told apart with any colour vision), each combined with a line style and a
# marker, so every line of a legend can also be found by its shape. Its black is left out: black is the threshold's.
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
# 7, 3 and 5 entries: no common factor, so the triples repeat only after 105 lines, and the
# (line style, marker) shape alone after 15.
LINE_STYLES = ["-", "--", ":"]
MARKERS = ["o", "s", "^", "D", "v"]
LEGEND_COLUMNS = 4
HUMID_SHADE = "#dde6ee"  # a pale grey-blue behind the lines: humid hours, no box's colour


def line_styles():
    """Endless (colour, line style, marker) triples; neighbours differ in all three."""
    return zip(cycle(COLOURS), cycle(LINE_STYLES), cycle(MARKERS))


def readings_plot(
    readings: pd.DataFrame, threshold: float = 15.0, humid_hours: pd.DatetimeIndex | None = None
) -> plt.Figure:
    """Step 1's overview: each box's hourly mean PM2.5 (boxName, timestamp, value columns), one line per
    box told apart by colour, line style and marker, and the threshold as a dashed line.

    `humid_hours` (from pm25.data.dataset.humid_hours) are shaded: in them optical sensors read high."""
    series = readings.assign(time=pd.to_datetime(readings["timestamp"], utc=True, format="ISO8601").dt.floor("h"))
    hourly = series.groupby(["boxName", "time"])["value"].mean()
    boxes = sorted(hourly.index.get_level_values("boxName").unique())
    # The legend goes under the plot, in columns: beside it, 48 boxes' names would squeeze the plot to a sliver.
    legend_rows = math.ceil((len(boxes) + 1) / LEGEND_COLUMNS)
    figure, axis = plt.subplots(figsize=(11, 4 + 0.2 * legend_rows), layout="constrained")
    for box_name, (colour, style, marker) in zip(boxes, line_styles(), strict=False):
        rows = hourly.loc[box_name]
        axis.plot(
            rows.index,
            rows.values,
            color=colour,
            linestyle=style,
            marker=marker,
            markevery=max(1, len(rows) // 6),
            markersize=4,
            linewidth=1,
            label=box_name,
        )
    axis.axhline(threshold, color="black", linestyle="--", linewidth=2.5, label=f"{threshold:g} µg/m³")
    for index, hour in enumerate(humid_hours if humid_hours is not None else []):
        label = f"median humidity above {HUMID_RH:g} % RH" if index == 0 else None
        axis.axvspan(hour, hour + pd.Timedelta(hours=1), color=HUMID_SHADE, linewidth=0, zorder=0, label=label)
    axis.set(ylabel="PM2.5 (µg/m³)", title="Hourly mean PM2.5 per senseBox")
    figure.legend(fontsize="x-small", ncol=LEGEND_COLUMNS, loc="outside lower center")
    return figure


def alert_intervals(alerts: pd.DataFrame, stream_end: pd.Timestamp) -> pd.DataFrame:
    """From 'exceeded' to the next 'resolved' of the same box (or to the end of the stream). `plausible` is
    the review's verdict on the 'exceeded' alert (pm25.rules.review) where `alerts` has one, else True."""
    intervals = []
    verdicts = alerts["plausible"] if "plausible" in alerts else pd.Series(True, index=alerts.index)
    alerts = alerts.assign(plausible=verdicts.fillna(True).astype(bool))
    # Sorted as times: as texts, '...41.500Z' comes before '...41Z'.
    alerts = alerts.assign(timestamp=pd.to_datetime(alerts["timestamp"], utc=True, format="ISO8601"))
    for box_name, events in alerts.sort_values("timestamp", kind="stable").groupby("boxName"):
        start = None
        for event in events.itertuples():
            if event.event == "exceeded":
                start, plausible = pd.Timestamp(event.timestamp), event.plausible
            elif start is not None:
                intervals.append((box_name, start, pd.Timestamp(event.timestamp), plausible))
                start = None
        if start is not None:
            intervals.append((box_name, start, stream_end, plausible))
    return pd.DataFrame(intervals, columns=INTERVAL_COLUMNS)


INTERVAL_COLUMNS = ["boxName", "start", "end", "plausible"]
# An alert period: hatched and outlined in black; a dashed outline and crossed hatching when it is implausible.
ALERT_MARK: dict[str, Any] = {"hatch": "///", "linestyle": "-"}
IMPLAUSIBLE_MARK: dict[str, Any] = {"hatch": "xxx", "linestyle": "--"}


# Step 3's plot is a heatmap: one row per box, one column per UTC clock hour, coloured by the box's window
# mean at the end of that hour. An air-quality scientist reads it like a station-by-hour table: which boxes
# were high, when, and whether it was one station or the whole city (a vertical band). It stays the same size
# for 5 or 300 boxes, unlike one panel per box, and uses the maps' colour bins, so the same colour means the
# same dust on the map and here. Alert periods are outlined and hatched, so they are found without colour.
ROW_INCHES = 0.17  # one box's row while the boxes fit; more boxes share a fixed height
MIN_ROWS_INCHES = 2.5  # room for the colour bar's ticks with a few boxes
MAX_ROWS_INCHES = 15.5  # with the title, axis and colour bar: at most about 2000 px tall at DPI
DPI = 110
LABEL_POINTS = 7  # the smallest readable box name; with more boxes than fit, every k-th is named


def hourly_window_means(history: pd.DataFrame) -> pd.DataFrame:
    """Box × hour table of the window mean after each box's last reading in that hour (NaN: no reading)."""
    hours = history.assign(hour=history["timestamp"].dt.floor("h"))
    table = hours.groupby(["boxName", "hour"])["mean"].last().unstack("hour")
    every_hour = pd.date_range(table.columns.min(), table.columns.max(), freq="h")
    return table.reindex(columns=every_hour)


def most_important_first(means: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    """The rows ordered by the longest time in alert, then by the highest median window mean."""
    time_in_alert = (intervals["end"] - intervals["start"]).groupby(intervals["boxName"]).sum()
    order = pd.DataFrame(
        {"alert": time_in_alert.reindex(means.index, fill_value=pd.Timedelta(0)), "median": means.median(axis=1)}
    )
    return means.loc[order.sort_values(["alert", "median"], ascending=False).index]


def level_colour_scale() -> tuple[Colormap, BoundaryNorm]:
    """The maps' PM2.5 bins (pm25.views.maps.LEVELS) as a matplotlib colour map; no data in the maps' grey."""
    *bins, (_, over, _) = LEVELS
    colour_map = ListedColormap([colour for _, colour, _ in bins]).with_extremes(over=over, bad=NO_DATA)
    return colour_map, BoundaryNorm([0.0] + [upper for upper, _, _ in bins], len(bins))


def rolling_mean_plot(
    history: pd.DataFrame, alerts: pd.DataFrame, threshold: float, window_hours: float, path: Path
) -> plt.Figure:
    """`history` has boxName, timestamp and mean (the box's window mean after each reading); `alerts` has
    boxName, event and timestamp, and may have the review's plausible (pm25.rules.review). Saved to `path` as a PNG."""
    history = history.assign(timestamp=pd.to_datetime(history["timestamp"], utc=True, format="ISO8601"))
    means = hourly_window_means(history)
    plot_end = means.columns[-1] + pd.Timedelta(hours=1)  # an alert still open lasts to the plot's right edge
    intervals = alert_intervals(alerts, plot_end) if len(alerts) else pd.DataFrame(columns=INTERVAL_COLUMNS)
    means = most_important_first(means, intervals)
    boxes = len(means)
    rows_inches = min(max(ROW_INCHES * boxes, MIN_ROWS_INCHES), MAX_ROWS_INCHES)
    figure, axis = plt.subplots(figsize=(10, rows_inches + 2.5), layout="constrained", dpi=DPI)
    hour_edges = mdates.date2num([*means.columns, plot_end])
    colour_map, norm = level_colour_scale()
    mesh = axis.pcolormesh(hour_edges, range(boxes + 1), means.to_numpy(dtype=float), cmap=colour_map, norm=norm)
    rows = {box_name: row for row, box_name in enumerate(means.index)}
    for interval in intervals[intervals["boxName"].isin(rows)].itertuples():
        start, end = mdates.date2num([interval.start, interval.end])
        mark = ALERT_MARK if interval.plausible else IMPLAUSIBLE_MARK
        axis.add_patch(
            Rectangle(
                (start, rows[interval.boxName]), end - start, 1, fill=False, edgecolor="black", linewidth=1.2, **mark
            )
        )
    # Box names: as many as fit at a readable size, from the top (the boxes that matter most).
    step = max(1, math.ceil(boxes * LABEL_POINTS / 72 / rows_inches))
    axis.set_yticks([row + 0.5 for row in range(0, boxes, step)], means.index[::step], fontsize=LABEL_POINTS)
    axis.set_ylim(boxes, 0)  # first row on top
    axis.xaxis.set_major_locator(mdates.AutoDateLocator())
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(axis.xaxis.get_major_locator()))
    axis.set_xlabel("UTC")
    named = "" if step == 1 else f" (one name in {step})"
    axis.set_ylabel(f"{boxes} boxes, longest in alert first{named}")
    colour_bar = figure.colorbar(mesh, ax=axis, extend="max", spacing="proportional", fraction=0.04, pad=0.01)
    colour_bar.set_label(f"{window_hours:g} h mean PM2.5 (µg/m³)")
    colour_bar.ax.axhline(threshold, color="black", linewidth=2)
    ticks = [level for level in norm.boundaries if abs(level - threshold) >= 3] + [threshold]  # no overlap
    colour_bar.set_ticks(ticks, labels=[f"threshold {tick:g}" if tick == threshold else f"{tick:g}" for tick in ticks])
    handles = [
        Patch(facecolor=NO_DATA, label="no reading in this hour"),
        Patch(
            fill=False,
            edgecolor="black",
            label=f"in alert ({window_hours:g} h mean > {threshold:g}, until resolved)",
            **ALERT_MARK,
        ),
    ]
    if not intervals["plausible"].all():
        handles.append(
            Patch(
                fill=False,
                edgecolor="black",
                label="in alert, implausible (out of line with the network)",
                **IMPLAUSIBLE_MARK,
            )
        )
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small", frameon=False)
    figure.suptitle(f"{window_hours:g} h mean of PM2.5 per box, hour by hour (UTC)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return figure
