"""Step 1's result: PM2.5 readings for the AOI and the boxes that measure there, saved for steps 2 and 3."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from pm25.config import Settings
from pm25.files import write_atomically, write_csv
from pm25.geo import Aoi
from pm25.opensensemap import ApiUnavailable, OpenSenseMapClient, OpenSenseMapError, is_pm25
from pm25.readings import COLUMNS, sample_readings

READINGS_FILE = "pm25_readings.csv"
BOXES_FILE = "senseboxes.geojson"
TRY_ANOTHER_AREA = "Draw a larger area, or one in a city with many senseBoxes (e.g. Münster)."
MANY_BOXES = 100  # above this, say how big the request will be before making it


@dataclass
class Pm25Data:
    readings: pd.DataFrame  # COLUMNS, sorted by timestamp then boxId
    boxes: list[dict]  # GeoJSON Point features, one per PM2.5 box in the AOI
    source: str
    dropped: list[str] = field(default_factory=list)  # boxes outside the AOI, with why

    def summary(self) -> str:
        per_box = self.readings.groupby("boxName").size() if len(self.readings) else pd.Series(dtype=int)
        silent = [box["properties"]["name"] for box in self.boxes if box["properties"]["readings"] == 0]
        lines = [
            f"Source: {self.source}",
            f"{len(self.boxes)} boxes with a PM2.5 sensor in the area, {len(self.readings)} readings.",
        ]
        if len(per_box):
            lines.append(f"Readings per box: {per_box.min()} to {per_box.max()} (median {per_box.median():.0f}).")
        if silent:
            lines.append(f"Boxes that sent nothing in this time range: {', '.join(silent)}.")
        lines += [f"Dropped: {reason}" for reason in self.dropped]
        return "\n".join(lines)


def clip_to_aoi(boxes: list[dict], aoi: Aoi) -> tuple[list[dict], list[str]]:
    """Keep boxes whose *current* location is in the AOI.

    /boxes?bbox= also returns boxes that stood in the bbox once and have moved since.
    """
    kept, dropped = [], []
    min_lon, min_lat, max_lon, max_lat = aoi.bbox
    for box in boxes:
        lon, lat = box["currentLocation"]["coordinates"][:2]
        if aoi.contains(lon, lat):
            kept.append(box)
        elif min_lon <= lon <= max_lon and min_lat <= lat <= max_lat:
            dropped.append(f"{box['name']!r} stands inside the bounding box but outside your area's outline.")
        else:
            dropped.append(
                f"{box['name']!r} stands at lat {lat:.4f}, lon {lon:.4f} today, far outside your area "
                "(openSenseMap lists it because it stood inside once)."
            )
    return kept, dropped


def _box_feature(box: dict, readings: int) -> dict:
    sensor = next(sensor for sensor in box["sensors"] if is_pm25(sensor))
    lon, lat = box["currentLocation"]["coordinates"][:2]
    properties = {
        "boxId": box["_id"],
        "name": box["name"],
        "sensorId": sensor["_id"],
        "sensorType": sensor.get("sensorType"),
        "exposure": box.get("exposure"),
        "lastMeasurementAt": box.get("lastMeasurementAt"),
        "readings": readings,
    }
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": properties}


def _pm25_data(readings: pd.DataFrame, boxes: list[dict], source: str, dropped: list[str]) -> Pm25Data:
    """The readings with one GeoJSON feature per box, each counting its readings (0 for a silent box)."""
    counts = readings.groupby("boxId").size()
    features = [_box_feature(box, int(counts.get(box["_id"], 0))) for box in boxes]
    return Pm25Data(readings, features, source, dropped)


def _iso(moments: pd.Series) -> pd.Series:
    return pd.to_datetime(moments, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _within(table: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Windows that start inside [start, end]: the API adds one before and one after."""
    moments = pd.to_datetime(table["timestamp"], utc=True)
    keep = (moments >= pd.Timestamp(start)) & (moments <= pd.Timestamp(end)) & table["value"].map(math.isfinite)
    return table[keep].sort_values(["timestamp", "boxId"], ignore_index=True)


def download(
    client: OpenSenseMapClient, aoi: Aoi, start: datetime, end: datetime, window: str = "1h", bbox: str | None = None
) -> Pm25Data:
    """Ask openSenseMap for the PM2.5 boxes in `bbox` (default: the AOI's) and their mean per time window."""
    bbox = bbox or aoi.api_bbox()
    print(f"Asking {client.base_url} for the PM2.5 boxes in {bbox} ...", flush=True)
    found = client.find_boxes(bbox)
    if not found:
        raise OpenSenseMapError(f"openSenseMap knows no senseBox with a PM2.5 sensor in {bbox}. {TRY_ANOTHER_AREA}")
    boxes, dropped = clip_to_aoi(found, aoi)
    if not boxes:
        raise OpenSenseMapError(
            f"None of the {len(found)} PM2.5 boxes openSenseMap knows in {bbox} stands in your area today. "
            f"{TRY_ANOTHER_AREA}"
        )
    if len(boxes) > MANY_BOXES:
        print(f"Your area holds {len(boxes)} PM2.5 boxes: fetching them takes a while. Draw a smaller area if needed.")
    print(f"Fetching the {window} means of {len(boxes)} boxes ...", flush=True)
    table = client.fetch_pm25(boxes, start, end, window)
    located = pd.DataFrame(
        [(box["_id"], *box["currentLocation"]["coordinates"][:2]) for box in boxes], columns=["boxId", "lon", "lat"]
    )
    readings = table.merge(located, on="boxId", how="inner").rename(columns={"time_start": "timestamp"})
    readings["timestamp"] = _iso(readings["timestamp"])
    readings = _within(readings[COLUMNS], start, end)
    if readings.empty:
        raise OpenSenseMapError(
            f"The {len(boxes)} PM2.5 boxes in your area sent no readings between {start:%Y-%m-%d %H:%M} and "
            f"{end:%Y-%m-%d %H:%M} UTC. Choose another time range (the default week of January 2024 works)."
        )
    return _pm25_data(readings, boxes, f"openSenseMap API ({client.base_url}), {window} means", dropped)


def from_sample(aoi: Aoi, start: datetime, end: datetime) -> Pm25Data:
    """The bundled real sample (25 h means for Münster, 14-22 January 2024), clipped like an API answer."""
    sample = sample_readings()
    boxes = [
        {
            "_id": box_id,
            "name": rows["boxName"].iloc[0],
            "currentLocation": {"coordinates": [rows["lon"].iloc[0], rows["lat"].iloc[0]]},
            "sensors": [{"_id": rows["sensorId"].iloc[0], "title": "PM2.5", "sensorType": "SDS 011"}],
            "lastMeasurementAt": rows["timestamp"].max(),
        }
        for box_id, rows in sample.groupby("boxId", sort=False)
    ]
    boxes, dropped = clip_to_aoi(boxes, aoi)
    kept_ids = {box["_id"] for box in boxes}
    readings = _within(sample[sample["boxId"].isin(kept_ids)].copy(), start, end)
    if readings.empty:
        raise OpenSenseMapError(
            "The bundled sample has no readings for this area and time range: it covers Münster, "
            "14-22 January 2024. Use the default area and dates, or go online (OSEM_OFFLINE=0)."
        )
    return _pm25_data(readings, boxes, "bundled sample of real openSenseMap data (25 h means)", dropped)


def get_pm25(
    settings: Settings, aoi: Aoi, client: OpenSenseMapClient | None = None, bbox: str | None = None
) -> Pm25Data:
    """From the API (asking for `bbox`, default the AOI's); from the bundled sample when offline or unreachable."""
    if settings.offline:
        print("OSEM_OFFLINE=1: using the bundled real sample instead of the openSenseMap API.")
        return from_sample(aoi, settings.start, settings.end)
    client = client or OpenSenseMapClient(settings.api_url, cache_dir=settings.data_dir / "cache")
    try:
        return download(client, aoi, settings.start, settings.end, bbox=bbox)
    except ApiUnavailable as error:
        print(f"{error}\nFalling back to the bundled real sample, so you can go on with the tutorial.")
        return from_sample(aoi, settings.start, settings.end)


def save(data: Pm25Data, data_dir: Path) -> tuple[Path, Path]:
    """Write both files atomically: a failed run leaves the previous ones as they were."""
    readings_path, boxes_path = data_dir / READINGS_FILE, data_dir / BOXES_FILE
    write_csv(readings_path, data.readings[COLUMNS])
    write_atomically(boxes_path, json.dumps({"type": "FeatureCollection", "features": data.boxes}, indent=1))
    return readings_path, boxes_path


def readings_file(data_dir: Path) -> Path:
    """Step 1's pm25_readings.csv; when step 1 has not run, the bundled sample in the same columns."""
    path = data_dir / READINGS_FILE
    if path.exists():
        return path
    sample = data_dir / "output" / "sample_pm25_readings.csv"
    write_csv(sample, sample_readings())
    print(
        f"There is no {READINGS_FILE} from step 1 in {data_dir}, so the bundled real sample "
        f"(Münster, January 2024, 25 h means) is used instead. Run step 1 to stream your own area."
    )
    return sample
