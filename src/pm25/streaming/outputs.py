"""What step 3 writes after the loop: the alerts, the rejected messages and the sensor status as CSV files,
named after the member's share of the topic when it processed only part of it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pm25.files import write_csv
from pm25.rules.detector import Alert
from pm25.streaming.codec import Rejected
from pm25.streaming.commits import Share

ALERT_COLUMNS = ["boxId", "boxName", "event", "timestamp", "mean", "n_hours"]


def alerts_table(alerts: list[Alert]) -> pd.DataFrame:
    return pd.DataFrame([alert.as_dict() for alert in alerts], columns=ALERT_COLUMNS)


def write_outputs(
    output_dir: Path,
    alerts: list[Alert],
    rejected: Rejected,
    status: pd.DataFrame,
    share: Share,
    daily: pd.DataFrame | None = None,
) -> list[Path]:
    """alerts.csv, rejected.csv, sensor_status.csv (and daily_means.csv), each replaced in one step.

    Only a member that processed the whole topic writes those names. A member of a group that shared
    the topic knows only its partitions: it writes e.g. alerts_partitions_0_2.csv with the rows of
    its own boxes and partitions (Share.file_name, Share.own).
    """
    if not share.partitions:
        return []
    tables = {
        "alerts": alerts_table([alert for alert in alerts if share.whole or alert.box_id in share.box_ids]),
        "rejected": rejected.table(None if share.whole else share.partitions),
        "sensor_status": share.own(status),
    }
    if daily is not None:
        tables["daily_means"] = share.own(daily)
    paths = []
    for name, table in tables.items():
        paths.append(output_dir / share.file_name(f"{name}.csv"))
        write_csv(paths[-1], table)
    return paths
