"""The rolling-mean plot of step 3: each box's 72 h mean over time, the threshold, and its alerts."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd


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


def rolling_mean_plot(history: pd.DataFrame, alerts: pd.DataFrame, threshold: float, path: Path) -> plt.Figure:
    """`history` has boxName, timestamp and mean (the window mean after each reading)."""
    history = history.assign(timestamp=pd.to_datetime(history["timestamp"], utc=True))
    boxes = sorted(history["boxName"].unique())
    figure, axes = plt.subplots(len(boxes), 1, figsize=(10, 1.6 * len(boxes) + 1), sharex=True, squeeze=False)
    intervals = alert_intervals(alerts, history["timestamp"].max()) if len(alerts) else pd.DataFrame()
    for axis, box_name in zip(axes[:, 0], boxes, strict=True):
        rows = history[history["boxName"] == box_name]
        axis.plot(rows["timestamp"], rows["mean"], linewidth=1.2)
        axis.axhline(threshold, color="black", linestyle="--", linewidth=0.8)
        for interval in intervals[intervals["boxName"] == box_name].itertuples() if len(intervals) else []:
            axis.axvspan(interval.start, interval.end, color="#d00000", alpha=0.15, linewidth=0)
            axis.axvline(interval.start, color="#d00000", linewidth=0.8)  # visible even for an alert at the end
        axis.set_ylabel("µg/m³")
        axis.set_title(box_name, fontsize="small", loc="left")
    axes[0, 0].figure.suptitle(f"72 h rolling mean of PM2.5 per box; dashed: {threshold:g} µg/m³; red: alert")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return figure
