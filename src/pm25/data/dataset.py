"""Step 1's result: PM2.5 readings for the AOI and the boxes that measure there, saved for steps 2 and 3.

Online it also brings the hourly relative humidity of the boxes that measure it: optical sensors such as
the SDS011 (specified up to 70 % RH) read high in humid air, so humid hours are marked in step 1's plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from pm25.config import Settings
from pm25.data.geo import CITY, Aoi
from pm25.data.opensensemap import ApiUnavailable, OpenSenseMapClient, OpenSenseMapError, humidity_sensor, is_pm25
from pm25.data.readings import COLUMNS, recording_readings
from pm25.files import write_atomically, write_csv

READINGS_FILE = "pm25_readings.csv"
BOXES_FILE = "senseboxes.geojson"
TRY_ANOTHER_AREA = "Draw a larger area, or one in a city with many senseBoxes (e.g. central Berlin)."
MANY_BOXES = 100  # above this, say how big the request will be before making it
HUMID_RH = 80.0  # % relative humidity: above it, optical PM sensors read clearly high
HUMIDITY_COLUMNS = ["boxId", "boxName", "timestamp", "value"]


@dataclass
class Pm25Data:
    readings: pd.DataFrame  # COLUMNS, sorted by timestamp then boxId
    boxes: list[dict]  # GeoJSON Point features, one per PM2.5 box in the AOI
    source: str
    dropped: list[str] = field(default_factory=list)  # boxes outside the AOI, with why
    # Hourly mean relative humidity (HUMIDITY_COLUMNS) of the boxes with a humidity sensor; None: not available.
    humidity: pd.DataFrame | None = None

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
        lines.append(self._humidity_line())
        lines += [f"Dropped: {reason}" for reason in self.dropped]
        return "\n".join(lines)

    def _humidity_line(self) -> str:
        if self.humidity is None and self.source.startswith("bundled recording"):
            return "Relative humidity: the bundled recording has none."
        if self.humidity is None:
            return "Relative humidity: not available (see the message above)."
        measured = self.humidity["boxId"].nunique()
        if not measured:
            return "Relative humidity: none of the boxes has a humidity sensor."
        humid = len(humid_hours(self.humidity))
        return (
            f"Relative humidity: {measured} of {len(self.boxes)} boxes have a humidity sensor; "
            f"{humid} hours above {HUMID_RH:g} %."
        )


def humid_hours(humidity: pd.DataFrame | None) -> pd.DatetimeIndex:
    """The hours (UTC) in which the median relative humidity over the boxes that measured it was above HUMID_RH."""
    if humidity is None or humidity.empty:
        return pd.DatetimeIndex([], tz="UTC")
    median = humidity.groupby(pd.to_datetime(humidity["timestamp"], utc=True, format="ISO8601"))["value"].median()
    return pd.DatetimeIndex(median[median > HUMID_RH].index)


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
    return pd.to_datetime(moments, utc=True, format="ISO8601").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _with_values(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with a number in `value` (an hour without data has none), in stream order."""
    finite = table["value"].map(math.isfinite).astype(bool)  # bool even when empty, or [] would pick columns
    return table[finite].sort_values(["timestamp", "boxId"], ignore_index=True)


def _hours_within(table: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Hours that start inside [start, end]: the API adds one before and one after."""
    moments = pd.to_datetime(table["timestamp"], utc=True, format="ISO8601")
    return table[(moments >= pd.Timestamp(start)) & (moments <= pd.Timestamp(end))]


def download(
    client: OpenSenseMapClient,
    aoi: Aoi,
    start: datetime,
    end: datetime,
    resolution: str = "raw",
    bbox: str | None = None,
) -> Pm25Data:
    """Ask openSenseMap for the PM2.5 boxes in `bbox` (default: the AOI's) and their measurements.

    `resolution` "raw": every measurement (/boxes/data); "1h": the mean of every hour (/statistics/descriptive).
    """
    bbox = bbox or aoi.api_bbox()
    print(f"Asking {client.base_url} for the outdoor PM2.5 boxes in {bbox} ...", flush=True)
    found = client.find_boxes(bbox)
    if not found:
        raise OpenSenseMapError(
            f"openSenseMap knows no outdoor senseBox with a PM2.5 sensor in {bbox}. {TRY_ANOTHER_AREA}"
        )
    boxes, dropped = clip_to_aoi(found, aoi)
    if not boxes:
        raise OpenSenseMapError(
            f"None of the {len(found)} PM2.5 boxes openSenseMap knows in {bbox} stands in your area today. "
            f"{TRY_ANOTHER_AREA}"
        )
    if len(boxes) > MANY_BOXES:
        print(f"Your area holds {len(boxes)} PM2.5 boxes: fetching them takes a while. Draw a smaller area if needed.")
    box_ids = {box["_id"] for box in boxes}
    if resolution == "raw":
        print(f"Fetching every PM2.5 measurement of {len(boxes)} boxes ...", flush=True)
        table = client.fetch_raw(bbox, start, end).rename(columns={"createdAt": "timestamp"})
        readings = _with_values(table[table["boxId"].isin(box_ids)][COLUMNS])
    else:
        print(f"Fetching the hourly means of {len(boxes)} boxes ...", flush=True)
        table = client.fetch_pm25(boxes, start, end, "1h")
        located = pd.DataFrame(
            [(box["_id"], *box["currentLocation"]["coordinates"][:2]) for box in boxes], columns=["boxId", "lon", "lat"]
        )
        readings = table.merge(located, on="boxId", how="inner").rename(columns={"time_start": "timestamp"})
        readings["timestamp"] = _iso(readings["timestamp"])
        readings = _with_values(_hours_within(readings[COLUMNS], start, end))
    if readings.empty:
        raise OpenSenseMapError(
            f"The {len(boxes)} PM2.5 boxes in your area sent no readings between {start:%Y-%m-%d %H:%M} and "
            f"{end:%Y-%m-%d %H:%M} UTC. Choose another time range (the default days work)."
        )
    kind = "raw measurements" if resolution == "raw" else "hourly means"
    data = _pm25_data(readings, boxes, f"openSenseMap API ({client.base_url}), {kind}", dropped)
    data.humidity = _humidity(client, boxes, start, end)
    return data


def _humidity(client: OpenSenseMapClient, boxes: list[dict], start: datetime, end: datetime) -> pd.DataFrame | None:
    """The boxes' hourly relative humidity; None, with one line saying why, when the API fails: PM2.5 is what counts."""
    measuring = sum(humidity_sensor(box) is not None for box in boxes)
    if measuring:
        print(f"Fetching the hourly relative humidity of {measuring} boxes with a humidity sensor ...", flush=True)
    try:
        table = client.fetch_humidity(boxes, start, end).rename(columns={"time_start": "timestamp"})
    except OpenSenseMapError as error:
        print(f"Relative humidity could not be fetched, so the plot shows none: {error}")
        return None
    table["timestamp"] = _iso(table["timestamp"])
    within = _hours_within(table, pd.Timestamp(start).floor("h"), end)
    return within[within["value"].notna()][HUMIDITY_COLUMNS].reset_index(drop=True)


def _recording_boxes(recording: pd.DataFrame) -> list[dict]:
    """The recording's boxes in the shape /boxes gives them, each where it measured last."""
    return [
        {
            "_id": box_id,
            "name": rows["boxName"].iloc[-1],
            "exposure": "outdoor",
            "currentLocation": {"coordinates": [rows["lon"].iloc[-1], rows["lat"].iloc[-1]]},
            "sensors": [{"_id": rows["sensorId"].iloc[-1], "title": "PM2.5", "sensorType": "SDS 011"}],
            "lastMeasurementAt": rows["timestamp"].iloc[-1],
        }
        for box_id, rows in recording.groupby("boxId", sort=False)
    ]


def _bbox_numbers(bbox: str) -> tuple[float, float, float, float]:
    """A bbox text as the API reads it: four numbers; a rectangle whichever corners come first."""
    try:
        west, south, east, north = (float(part) for part in bbox.split(","))
    except ValueError:
        raise OpenSenseMapError(
            f"The bounding box {bbox!r} is not four comma-separated numbers minLon,minLat,maxLon,maxLat."
        ) from None
    return min(west, east), min(south, north), max(west, east), max(south, north)


def _stands_in(box: dict, rectangle: tuple[float, float, float, float]) -> bool:
    lon, lat = box["currentLocation"]["coordinates"][:2]
    return rectangle[0] <= lon <= rectangle[2] and rectangle[1] <= lat <= rectangle[3]


def recording_span(recording: pd.DataFrame) -> str:
    """Where and when the recording was made, in words: 'central Berlin, 26 Feb 2023 08:24 to ...'."""
    first, last = (pd.Timestamp(moment) for moment in (recording["timestamp"].min(), recording["timestamp"].max()))
    return f"central {CITY}, {first:%d %b %Y %H:%M} to {last:%d %b %Y %H:%M} UTC"


def from_recording(aoi: Aoi, start: datetime, end: datetime, bbox: str | None = None) -> Pm25Data:
    """The bundled raw Berlin recording, clipped to the area and time range like an API answer.

    Where the area or the time range holds no recorded data, the recording's own area or days are
    used instead, and a warning says so: offline, the tutorial still has its stream.
    """
    recording = recording_readings()
    span = recording_span(recording)
    rectangle = _bbox_numbers(bbox or aoi.api_bbox())
    every_box = _recording_boxes(recording)
    boxes, dropped = clip_to_aoi([box for box in every_box if _stands_in(box, rectangle)], aoi)
    if not boxes:
        west, south, east, north = rectangle
        swapped = any(_stands_in(box, (south, west, north, east)) for box in every_box)
        hint = " Did you swap latitude and longitude? Longitude comes first." if swapped else ""
        print(
            f"⚠️ The bundled recording has no box in your area (bounding box {bbox or aoi.api_bbox()}).{hint} "
            f"It covers {span}: using all of its {len(every_box)} boxes instead."
        )
        boxes, dropped = every_box, []
    kept = recording[recording["boxId"].isin({box["_id"] for box in boxes})]
    moments = pd.to_datetime(kept["timestamp"], utc=True, format="ISO8601")
    readings = kept[(moments >= pd.Timestamp(start)) & (moments <= pd.Timestamp(end))]
    if readings.empty:
        print(
            f"⚠️ The bundled recording has no measurements from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC. "
            f"It covers {span}: using all of its days instead."
        )
        readings = kept
    source = f"bundled recording of real openSenseMap data ({span}, raw measurements)"
    return _pm25_data(_with_values(readings), boxes, source, dropped)


def get_pm25(
    settings: Settings, aoi: Aoi, client: OpenSenseMapClient | None = None, bbox: str | None = None
) -> Pm25Data:
    """From the API (asking for `bbox`, default the AOI's); from the bundled recording when offline or unreachable."""
    if settings.offline:
        print("OSEM_OFFLINE=1: using the bundled real recording instead of the openSenseMap API.")
        return from_recording(aoi, settings.start, settings.end, bbox)
    client = client or OpenSenseMapClient(settings.api_url, cache_dir=settings.data_dir / "cache")
    try:
        return download(client, aoi, settings.start, settings.end, settings.resolution, bbox)
    except ApiUnavailable as error:
        print(f"{error}\nFalling back to the bundled real recording, so you can go on with the tutorial.")
        return from_recording(aoi, settings.start, settings.end, bbox)


def save(data: Pm25Data, data_dir: Path) -> tuple[Path, Path]:
    """Write both files atomically: a failed run leaves the previous ones as they were."""
    readings_path, boxes_path = data_dir / READINGS_FILE, data_dir / BOXES_FILE
    write_csv(readings_path, data.readings[COLUMNS])
    write_atomically(boxes_path, json.dumps({"type": "FeatureCollection", "features": data.boxes}, indent=1))
    return readings_path, boxes_path


def readings_file(data_dir: Path) -> Path:
    """Step 1's pm25_readings.csv; when step 1 has not run, the bundled recording in the same columns."""
    path = data_dir / READINGS_FILE
    if path.exists():
        return path
    recording = recording_readings()
    fallback = data_dir / "output" / "recording_pm25_readings.csv"
    write_csv(fallback, recording)
    print(
        f"There is no {READINGS_FILE} from step 1 in {data_dir}, so the bundled real recording "
        f"({recording_span(recording)}, raw measurements) is used instead. Run step 1 to stream your own area."
    )
    return fallback
