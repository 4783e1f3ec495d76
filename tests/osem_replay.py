"""A local replay of the openSenseMap REST API, for tests and offline notebook runs.

It follows the openSenseMap API's documented behaviour (shapes, parameters, validation, error bodies) and
serves the real raw measurements of data/berlin_pm25_raw_2023-02-26.csv.gz:

- The recording's 48 outdoor boxes in central Berlin, each with its real PM2.5 sensor and every one of
  its measurements (value strings as recorded), plus a made-up companion PM10 sensor (1.5 x the PM2.5
  value), so clients have to pick PM2.5 by title.
- Relative humidity, hand-made (the recording has none): every recorded box but "Berliner Allee" has a
  made-up BME280 "rel. Luftfeuchte" sensor measuring whenever its PM2.5 sensor does, on a daily cycle
  between 60 % (16:00 UTC) and 90 % (04:00 UTC) shifted by a few points per box. "Berliner Allee" is
  the box without a humidity sensor.
- A quirk of the real service is kept: "Bundeskanzleramt" was registered in Münster (its location
  history starts there; the move date is made up), so a Münster bbox returns it from /boxes.
- Three synthetic boxes, clearly marked as such (ids with "7e57b0c5" in the middle): one whose PM2.5
  sensor never measured, one with a temperature sensor only, and an indoor box with PM2.5 readings
  every 10 minutes (what an outdoor-only client must leave out).

`ReplayServer.now` is the replay's clock: the "latest" measurement of a sensor is the newest one at or
before `now`, and the data routes' default to-date is `now`. Explicit time ranges see every recorded
reading, whatever `now` is. /statistics/descriptive computes its statistics from the raw measurements.

Not replayed: POST routes, /statistics/idw, `outliers` on the data route (ignored).
"""

from __future__ import annotations

import bisect
import csv
import gzip
import hashlib
import io
import json
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

from pm25.data.readings import RECORDING_CSV

DEFAULT_NOW = datetime(2023, 3, 1, 9, tzinfo=UTC)  # just after the recording ends

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
READING_EVERY_MS = 10 * MINUTE_MS
MAX_DATA_ROWS = 10_000
BUNDESKANZLERAMT = "5d6e465a953683001a2b62c5"
WITHOUT_HUMIDITY = "5a7f2eb1398b82001189eb65"  # "Berliner Allee"

EXPOSURES = ("indoor", "outdoor", "mobile", "unknown")
OPERATIONS = (
    "arithmeticMean",
    "geometricMean",
    "harmonicMean",
    "max",
    "median",
    "min",
    "mode",
    "rootMeanSquare",
    "standardDeviation",
    "sum",
    "variance",
)
DATA_COLUMNS = (
    "createdAt",
    "value",
    "lat",
    "lon",
    "height",
    "unit",
    "boxId",
    "sensorId",
    "phenomenon",
    "sensorType",
    "boxName",
    "exposure",
)
DEFAULT_DATA_COLUMNS = ["sensorId", "createdAt", "value", "lat", "lon"]
STATISTICS_COLUMNS = ("boxId", "boxName", "exposure", "height", "lat", "lon", "phenomenon", "sensorType", "unit")
BOX_ID_ALIASES = ("boxid", "boxids", "senseboxid", "senseboxids")
FAULT_KINDS = ("status", "slow", "malformed", "truncated")
JSON_TYPE = "application/json; charset=utf-8"
CSV_TYPE = "text/csv; charset=utf-8"
# What a broken proxy might send: neither JSON nor CSV (the stray quote never closes).
MALFORMED_BODY = b'<html><body>upstream error</body></html>\n"unterminated'


# --------------------------------------------------------------------------- public interface


@dataclass(frozen=True)
class Fault:
    """One misbehaviour for the next request whose path starts with `path_prefix`."""

    kind: str  # "status", "slow", "malformed" or "truncated"
    status: int = 503
    delay_s: float = 2.0
    path_prefix: str = "/"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")


class ReplayServer:
    """The openSenseMap API on 127.0.0.1 (free port), served from a daemon thread."""

    def __init__(self) -> None:
        self.now: datetime = DEFAULT_NOW
        self.requests: list[str] = []
        self.url = ""
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._api = _Api(self)

    def start(self) -> ReplayServer:
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
            self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
            threading.Thread(target=self._httpd.serve_forever, name="osem-replay", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def boxes(self) -> list[dict]:
        """Every recorded box as GET /boxes/:id shows it at `now`."""
        return [self._api.box_doc(box, populate=True, with_loc=True) for box in RECORDED_BOXES]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if path.startswith(fault.path_prefix):
                    return self._faults.pop(index)
        return None

    def _now_ms(self) -> int:
        now = self.now if self.now.tzinfo else self.now.replace(tzinfo=UTC)  # naive means UTC here too
        return _to_ms(now)


# --------------------------------------------------------------------------- recorded data


@dataclass
class _Sensor:
    id: str
    title: str
    unit: str
    sensor_type: str
    icon: str
    times: list[int] = field(default_factory=list)  # epoch ms, ascending
    values: list[str] = field(default_factory=list)  # strings, as the API stores them

    def latest_index(self, at_ms: int) -> int | None:
        index = bisect.bisect_right(self.times, at_ms) - 1
        return index if index >= 0 else None

    def between(self, start_ms: int, end_ms: int) -> range:
        """Indices of readings with start <= time <= end."""
        return range(bisect.bisect_left(self.times, start_ms), bisect.bisect_right(self.times, end_ms))


@dataclass
class _Box:
    id: str
    name: str
    created_ms: int
    locations: list[tuple[list[float], int]]  # (coordinates, since) history; the last is current
    sensors: list[_Sensor]
    exposure: str = "outdoor"
    model: str = "luftdaten_sds011_bme280"
    grouptag: list[str] = field(default_factory=list)

    def location_at(self, at_ms: int) -> list[float]:
        current = self.locations[0][0]
        for coordinates, since in self.locations:
            if since <= at_ms:
                current = coordinates
        return current


def _made_up_id(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()[:24]


def _created_ms(object_id: str) -> int:
    """A MongoDB ObjectId starts with its creation time in seconds, which makes a faithful createdAt."""
    return int(object_id[:8], 16) * 1000


def _pm_sensors(pm25_id: str, box_id: str, sensor_type: str = "SDS 011") -> tuple[_Sensor, _Sensor]:
    pm25 = _Sensor(pm25_id, "PM2.5", "µg/m³", sensor_type, "osem-cloud")
    pm10 = _Sensor(_made_up_id(f"{box_id}:PM10"), "PM10", "µg/m³", sensor_type, "osem-cloud")
    return pm25, pm10


def _load_recorded_boxes(recording: Path = RECORDING_CSV) -> list[_Box]:
    boxes: dict[str, _Box] = {}
    with gzip.open(recording, "rt", encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            box = boxes.get(row["boxId"])
            if box is None:
                created = _created_ms(row["boxId"])
                coordinates = [float(row["lon"]), float(row["lat"])]
                sensors = list(_pm_sensors(row["sensorId"], row["boxId"], row["sensorType"]))
                if row["boxId"] != WITHOUT_HUMIDITY:
                    sensors.append(
                        _Sensor(_made_up_id(f"{row['boxId']}:RH"), "rel. Luftfeuchte", "%", "BME280", "osem-humidity")
                    )
                box = _Box(row["boxId"], row["boxName"], created, [(coordinates, created)], sensors, row["exposure"])
                boxes[box.id] = box
            _add_measurement(box, _parse_iso(row["createdAt"]), row["value"])
    for box in boxes.values():
        for sensor in box.sensors:  # the recording is in time order overall; make sure per sensor
            pairs = sorted(zip(sensor.times, sensor.values, strict=True))
            sensor.times, sensor.values = [at for at, _ in pairs], [value for _, value in pairs]
    _registered_in_muenster(boxes[BUNDESKANZLERAMT])
    return [*boxes.values(), *_synthetic_boxes()]


def _add_measurement(box: _Box, at: int, value: str) -> None:
    pm25, pm10, *humidity = box.sensors
    pm25.times.append(at)
    pm25.values.append(value)
    pm10.times.append(at)
    pm10.values.append(f"{float(value) * 1.5:.2f}")  # made up, but plausibly above PM2.5
    for sensor in humidity:
        sensor.times.append(at)
        sensor.values.append(f"{_made_up_humidity(box.id, at):.2f}")


def _made_up_humidity(box_id: str, at: int) -> float:
    """A winter day's relative humidity: 90 % at 04:00 UTC, 60 % at 16:00, each box a few points off."""
    offset = int(box_id[-2:], 16) % 7 - 3
    return 75 + offset + 15 * math.cos(2 * math.pi * (at - 4 * HOUR_MS) / DAY_MS)


def _registered_in_muenster(box: _Box) -> None:
    """The real box's location history starts in Münster (2019); it moved to Berlin later (date made up)."""
    berlin, _ = box.locations[0]
    moved = _parse_iso("2021-06-01T00:00:00.000Z")
    box.locations = [([7.62, 51.96], box.created_ms), (berlin, moved)]


def _synthetic_boxes() -> list[_Box]:
    """Three boxes that do NOT exist on openSenseMap; they cover cases the recording lacks."""
    created = _parse_iso("2023-01-01T00:00:00.000Z")
    prefix = f"{created // 1000:08x}7e57b0c5"  # "7e57b0c5" ~ "test box": made-up ids
    silent_id, thermo_id, indoor_id = prefix + "00000001", prefix + "00000002", prefix + "00000003"
    silent = _Box(
        silent_id,
        "Testbox ohne Messungen",
        created,
        [([13.405, 52.52], created)],
        list(_pm_sensors(prefix + "00000011", silent_id)),
        grouptag=["replay-test"],
    )
    thermometer = _Sensor(prefix + "00000021", "Temperatur", "°C", "BME280", "osem-thermometer")
    indoor = _Box(
        indoor_id,
        "Testbox drinnen",
        created,
        [([13.40, 52.51], created)],
        list(_pm_sensors(prefix + "00000031", indoor_id)),
        exposure="indoor",
        grouptag=["replay-test"],
    )
    start, end = _parse_iso("2023-02-26T08:05:00.000Z"), _parse_iso("2023-03-01T08:55:00.000Z")
    for at in range(start, end + 1, READING_EVERY_MS):
        thermometer.times.append(at)
        thermometer.values.append(f"{2 + 3 * math.sin(2 * math.pi * at / DAY_MS):.2f}")
        _add_measurement(indoor, at, f"{40 + 10 * math.sin(2 * math.pi * at / DAY_MS):.2f}")  # a smoky kitchen
    thermo = _Box(
        thermo_id,
        "Testbox nur Temperatur",
        created,
        [([13.38, 52.50], created)],
        [thermometer],
        model="custom",
        grouptag=["replay-test"],
    )
    return [silent, thermo, indoor]


# --------------------------------------------------------------------------- small helpers


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    """Like JavaScript's Date.toISOString(): always milliseconds, always Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z")


def _parse_iso(text: str) -> int:
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        raise ValueError(text)
    *parts, fraction = match.groups()
    moment = datetime(*(int(part) for part in parts), tzinfo=UTC)
    return _to_ms(moment) + int((fraction or "0").ljust(3, "0"))


def _js_number(value: float) -> str:
    """Numbers as JavaScript prints them: 7 rather than 7.0."""
    return str(int(value)) if value.is_integer() else repr(value)


def _dashify(text: str) -> str:
    """The npm `dashify` with condense: 'PM2.5' -> 'pm2-5' (non-word ASCII becomes '-')."""
    text = re.sub(r"([a-z])([A-Z])", r"\1-\2", text.strip())
    text = re.sub(r"\W", lambda m: m.group() if "À" <= m.group() <= "ž" else "-", text, flags=re.ASCII)
    return re.sub(r"-{2,}", "-", text.strip("-")).lower()


RECORDED_BOXES = _load_recorded_boxes()
_BOXES_BY_ID = {box.id: box for box in RECORDED_BOXES}
_SENSORS_BY_ID = {sensor.id: (box, sensor) for box in RECORDED_BOXES for sensor in box.sensors}


# --------------------------------------------------------------------------- request handling


class ApiError(Exception):
    """An error the API reports as restify JSON: {"code": ..., "message": ...}."""

    CODES: ClassVar[dict[int, str]] = {
        400: "BadRequest",
        404: "NotFound",
        409: "InvalidArgument",
        422: "UnprocessableEntity",
        500: "InternalServer",
    }

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or self.CODES.get(status) or HTTPStatus(status).phrase.replace(" ", "")


@dataclass
class _Reply:
    body: bytes
    content_type: str = JSON_TYPE
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(document, **kwargs) -> _Reply:
    compact = json.dumps(document, ensure_ascii=False, separators=(",", ":"))  # as JSON.stringify writes it
    return _Reply(compact.encode(), **kwargs)


def _error_reply(error: ApiError) -> _Reply:
    return _json_reply({"code": error.code, "message": str(error)}, status=error.status)


def _csv_text(header: list[str], rows: list[list[str]], delimiter: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


class _Query:
    """The query string, read with the API's parameter rules and error messages."""

    def __init__(self, query: str):
        self._values = parse_qs(query)

    def scalar(self, name: str, aliases: tuple[str, ...] = (), required: bool = False) -> tuple[str | None, str]:
        """The value and the name to quote in errors (`fromDate (from-date)` when an alias was used)."""
        found = [(used, value) for used in (name, *aliases) for value in self._values.get(used, [])]
        if len(found) > 1:
            raise ApiError(400, f"Parameter {name} must only be specified once")
        if not found:
            if required:
                raise ApiError(400, f"missing required parameter {name}")
            return None, name
        used, value = found[0]
        return value, name if used == name else f"{name} ({used})"

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None = None, required=False):
        value, label = self.scalar(name, required=required)
        if value is None:
            return default
        if value not in allowed:
            raise ApiError(422, f"Illegal value for parameter {label}. allowed values: {', '.join(allowed)}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.choice(name, ("true", "false"))
        return default if value is None else value == "true"

    def items(self, name: str, aliases=(), allowed: tuple[str, ...] | None = None) -> list[str]:
        found = [
            item
            for used in (name, *aliases)
            for value in self._values.get(used, [])
            for item in value.split(",")
            if item
        ]
        if allowed is not None and any(item not in allowed for item in found):
            raise ApiError(422, f"Illegal value for parameter {name}. allowed values: {', '.join(allowed)}")
        return found

    def integer(self, name: str, lowest: int, highest: int, default: int | None = None) -> int | None:
        value, label = self.scalar(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ApiError(422, f"Parameter {label} is not parseable as datatype Integer") from None
        if number > highest:
            detail = f"Supplied value {number} is outside of allowed range (> {highest})"
            raise ApiError(422, f"Illegal value for parameter {label}. {detail}")
        if number < lowest:
            detail = f"Supplied value {number} is outside of allowed range (< {lowest})"
            raise ApiError(422, f"Illegal value for parameter {label}. {detail}")
        return number

    def timestamp(self, name: str, alias: str, required: bool = False) -> int | None:
        value, label = self.scalar(name, (alias,), required=required)
        return None if value is None else _timestamp(value, label)

    def bbox(self) -> tuple[float, float, float, float] | None:
        value, _ = self.scalar("bbox")
        return None if value is None else _parse_bbox(value)

    def delimiter(self) -> str:
        value, _ = self.scalar("delimiter", ("separator",))
        if value in (None, "comma"):
            return ","
        if value == "semicolon":
            return ";"
        # The API's own bug (allowedValues undefined): a 500 rather than a clean 422.
        raise ApiError(500, "Cannot read properties of undefined (reading 'join')")


def _timestamp(text: str, label: str) -> int:
    try:
        return _parse_iso(text)
    except ValueError:
        raise ApiError(422, f"Illegal value for parameter {label}. Invalid timestamp '{text}'.") from None


_JS_FLOAT = re.compile(r"\s*[+-]?(Infinity|\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?)", re.IGNORECASE)


def _parse_float(text: str) -> float:
    """JavaScript's lenient parseFloat: '7.5abc' is 7.5, 'abc' is NaN."""
    match = _JS_FLOAT.match(text)
    return float(match.group()) if match else math.nan


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    def illegal(detail: str) -> ApiError:
        return ApiError(422, f"Illegal value for parameter bbox. {detail}")

    parts = text.split(",")
    if len(parts) != 4:
        raise illegal("Invalid number of coordinates.")
    west, south, east, north = (_parse_float(part) for part in parts)
    if any(math.isnan(number) for number in (west, south, east, north)):
        raise illegal("Supplied values can not be parsed as floats.")
    if not all(-180 <= lng <= 180 for lng in (west, east)) or not all(-90 <= lat <= 90 for lat in (south, north)):
        raise illegal("Supplied coordinates are outside of -180, -90, 180, 90 (lngSW, latSW, lngNE, latNE).")
    if west == east or south == north:
        raise illegal("Supplied bounding box has zero surface area.")
    # A swapped corner still spans the same rectangle as a MongoDB polygon.
    return min(west, east), min(south, north), max(west, east), max(south, north)


def _in_bbox(coordinates: list[float], bbox: tuple[float, float, float, float]) -> bool:
    west, south, east, north = bbox
    return west <= coordinates[0] <= east and south <= coordinates[1] <= north


def _distance_m(a: list[float], b: list[float]) -> float:
    """Great-circle distance between two [lng, lat] points, in metres."""
    lng1, lat1, lng2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * 6_378_100 * math.asin(math.sqrt(h))


def _check_id(value: str, name: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{24}", value):
        raise ApiError(422, f"Parameter {name} is not parseable as datatype id")
    return value.lower()


def _check_time_frame(from_ms: int, to_ms: int) -> None:
    if from_ms > to_ms:
        raise ApiError(409, f"Invalid time frame specified: fromDate ({_iso(from_ms)}) is after toDate ({_iso(to_ms)})")


def _check_one_area(box_ids: list[str], bbox: tuple[float, float, float, float] | None) -> None:
    """The data and statistics routes take their boxes by id or by bbox: exactly one of the two."""
    if box_ids and bbox:
        raise ApiError(400, "please specify only boxId or bbox")
    if not box_ids and not bbox:
        raise ApiError(400, "please specify either boxId or bbox")


_WINDOW_UNITS = {
    "ms": 1,
    "msec": 1,
    "msecs": 1,
    "millisecond": 1,
    "milliseconds": 1,
    "s": 1000,
    "sec": 1000,
    "secs": 1000,
    "second": 1000,
    "seconds": 1000,
    "m": MINUTE_MS,
    "min": MINUTE_MS,
    "mins": MINUTE_MS,
    "minute": MINUTE_MS,
    "minutes": MINUTE_MS,
    "h": HOUR_MS,
    "hr": HOUR_MS,
    "hrs": HOUR_MS,
    "hour": HOUR_MS,
    "hours": HOUR_MS,
    "d": DAY_MS,
    "day": DAY_MS,
    "days": DAY_MS,
    "w": 7 * DAY_MS,
    "week": 7 * DAY_MS,
    "weeks": 7 * DAY_MS,
    "y": 365.25 * DAY_MS,
    "yr": 365.25 * DAY_MS,
    "yrs": 365.25 * DAY_MS,
    "year": 365.25 * DAY_MS,
    "years": 365.25 * DAY_MS,
}


def _window_ms(text: str) -> int:
    """A window in ms or as a zeit/ms string ('25h', '1.5m'), rounded to whole minutes."""
    match = re.fullmatch(r"(-?\d*\.?\d+) *([a-z]*)", text.strip(), re.IGNORECASE)
    unit = match and _WINDOW_UNITS.get(match.group(2).lower() or "ms")
    if not unit or float(match.group(1)) * unit < MINUTE_MS:
        raise ApiError(400, "Invalid window length. Smallest window size is 1 minute.")
    return math.floor(float(match.group(1)) * unit / MINUTE_MS + 0.5) * MINUTE_MS  # Math.round


def _operation(name: str, values: list[float]) -> float | None:
    """One statistic as simple-statistics computes it; None where it throws (like a log of 0)."""
    count = len(values)
    mean = math.fsum(values) / count
    if name in ("geometricMean", "harmonicMean") and any(value <= 0 for value in values):
        return None
    match name:
        case "arithmeticMean":
            return mean
        case "geometricMean":
            return math.exp(math.fsum(math.log(value) for value in values) / count)
        case "harmonicMean":
            return count / math.fsum(1 / value for value in values)
        case "max":
            return max(values)
        case "min":
            return min(values)
        case "sum":
            return math.fsum(values)
        case "median":
            ordered = sorted(values)
            middle = count // 2
            return ordered[middle] if count % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        case "mode":
            return Counter(values).most_common(1)[0][0]
        case "rootMeanSquare":
            return math.sqrt(math.fsum(value * value for value in values) / count)
        case "variance":
            return math.fsum((value - mean) ** 2 for value in values) / count
        case "standardDeviation":
            return math.sqrt(math.fsum((value - mean) ** 2 for value in values) / count)
    raise AssertionError(name)


def _label_length(window: int) -> int:
    """How much of the ISO window start the wide CSV header keeps (AU computeTimestampTruncationLength)."""
    if window % DAY_MS == 0:
        return len("YYYY-MM-DD")
    if window % HOUR_MS == 0:
        return len("YYYY-MM-DDTHH")
    return len("YYYY-MM-DDTHH:MM")


class _Api:
    """The routes. Each takes the path's parts and the query and returns a _Reply or raises ApiError."""

    ROUTES = (
        (re.compile(r"/boxes"), "boxes"),
        (re.compile(r"/boxes/data"), "data_multi"),  # before /boxes/:boxId, which would take "data" as an id
        (re.compile(r"/boxes/(?P<box_id>[^/]+)"), "box"),
        (re.compile(r"/boxes/(?P<box_id>[^/]+)/sensors"), "sensors"),
        (re.compile(r"/boxes/(?P<box_id>[^/]+)/sensors/(?P<sensor_id>[^/]+)"), "sensor"),
        (re.compile(r"/boxes/(?P<box_id>[^/]+)/data/(?P<sensor_id>[^/]+)"), "data"),
        (re.compile(r"/statistics/descriptive"), "descriptive"),
    )

    def __init__(self, server: ReplayServer):
        self._server = server

    def answer(self, path: str, query: str) -> _Reply:
        route_path = path.rstrip("/") or "/"
        for pattern, name in self.ROUTES:
            match = pattern.fullmatch(route_path)
            if match:
                try:
                    return getattr(self, name)(_Query(query), **match.groupdict())
                except ApiError as error:
                    return _error_reply(error)
        return _error_reply(ApiError(404, f"{path} does not exist", code="ResourceNotFound"))

    # ---- documents

    def sensor_doc(self, sensor: _Sensor, populate: bool) -> dict:
        doc = {
            "_id": sensor.id,
            "title": sensor.title,
            "unit": sensor.unit,
            "sensorType": sensor.sensor_type,
            "icon": sensor.icon,
        }
        latest = sensor.latest_index(self._server._now_ms())
        if latest is not None:
            at = sensor.times[latest]
            doc["lastMeasurement"] = (
                {"value": sensor.values[latest], "createdAt": _iso(at)}
                if populate
                else _made_up_id(f"{sensor.id}:{at}")  # unpopulated: just the measurement's id
            )
        return doc

    def last_measurement_ms(self, box: _Box) -> int | None:
        now = self._server._now_ms()
        latest = [s.times[i] for s in box.sensors if (i := s.latest_index(now)) is not None]
        return max(latest, default=None)

    def box_doc(self, box: _Box, populate: bool, with_loc: bool, minimal=False, classify=False) -> dict:
        last_ms = self.last_measurement_ms(box)
        current, since = box.locations[-1]
        doc = {"_id": box.id, "name": box.name, "exposure": box.exposure}
        if not minimal:
            doc |= {
                "model": box.model,
                "grouptag": list(box.grouptag),
                "createdAt": _iso(box.created_ms),
                "updatedAt": _iso(last_ms or box.created_ms),
            }
        if last_ms is not None:
            doc["lastMeasurementAt"] = _iso(last_ms)
        doc["currentLocation"] = {"type": "Point", "coordinates": current, "timestamp": _iso(since)}
        if minimal:
            return doc
        if with_loc:
            doc["loc"] = [
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": coordinates, "timestamp": _iso(at)}}
                for coordinates, at in box.locations
            ]
        doc["sensors"] = [self.sensor_doc(sensor, populate) for sensor in box.sensors]
        if classify:
            age = None if last_ms is None else self._server._now_ms() - last_ms
            doc["state"] = (
                "active"
                if age is not None and age < 7 * DAY_MS
                else "inactive"
                if age is not None and age < 30 * DAY_MS
                else "old"
            )
        return doc

    @staticmethod
    def feature(doc: dict) -> dict:
        properties = {key: value for key, value in doc.items() if key not in ("currentLocation", "loc")}
        geometry = {"type": "Point", "coordinates": doc["currentLocation"]["coordinates"]}
        return {"type": "Feature", "geometry": geometry, "properties": properties}

    def find_box(self, box_id: str) -> _Box:
        box = _BOXES_BY_ID.get(_check_id(box_id, "boxId"))
        if box is None:
            raise ApiError(404, "Box not found")
        return box

    # ---- routes

    def boxes(self, query: _Query) -> _Reply:
        name, _ = query.scalar("name")
        geojson = query.choice("format", ("json", "geojson"), "json") == "geojson"
        docs = self.boxes_by_filters(query) if name is None else self.boxes_by_name(query, name)
        cached = {"Cache-Control": "max-age=300"}  # apicache's header; the replay itself never caches
        if geojson:
            features = [self.feature(doc) for doc in docs]
            return _json_reply({"type": "FeatureCollection", "features": features}, headers=cached)
        return _json_reply(docs, headers=cached)

    def boxes_by_name(self, query: _Query, name: str) -> list[dict]:
        limit = query.integer("limit", 1, 20, default=5)
        try:
            pattern = re.compile(name, re.IGNORECASE)
        except re.error:
            raise ApiError(422, f"Illegal value for parameter name. Invalid regular expression '{name}'.") from None
        found = [box for box in RECORDED_BOXES if pattern.search(box.name)][:limit]
        return [
            {"_id": box.id, "name": box.name, "currentLocation": self.box_doc(box, False, False)["currentLocation"]}
            for box in found
        ]

    def boxes_by_filters(self, query: _Query) -> list[dict]:
        exposures = query.items("exposure", allowed=EXPOSURES)
        models = query.items("model")
        grouptags = query.items("grouptag")
        date_texts = query.items("date")
        if len(date_texts) > 2:
            raise ApiError(422, "Illegal value for parameter date. invalid number of dates for date parameter supplied")
        dates = [_timestamp(text, "date") for text in date_texts]
        if len(dates) == 1:
            dates = [dates[0] - 4 * HOUR_MS, dates[0] + 4 * HOUR_MS]
        phenomenon, _ = query.scalar("phenomenon")
        bbox = query.bbox()
        near = self.near(query)
        minimal, full, classify = query.flag("minimal"), query.flag("full"), query.flag("classify")

        def matches(box: _Box) -> bool:
            if exposures and box.exposure not in exposures:
                return False
            if models and box.model not in models:
                return False
            if not all(tag in box.grouptag for tag in grouptags):
                return False
            if bbox and not any(_in_bbox(coordinates, bbox) for coordinates, _ in box.locations):
                return False  # any historic location counts, as in BOX buildFindBoxesQuery
            if near and _distance_m(near[0], box.locations[-1][0]) > near[1]:
                return False
            if dates:  # phenomenon applies only together with date
                sensors = [s for s in box.sensors if phenomenon is None or s.title == phenomenon]
                return any(len(s.between(*dates)) for s in sensors)
            return True

        found = [box for box in RECORDED_BOXES if matches(box)]
        if near:  # $near sorts by distance
            found.sort(key=lambda box: _distance_m(near[0], box.locations[-1][0]))
        populate, with_loc = full or bool(dates), bool(dates)
        return [self.box_doc(box, populate, with_loc, minimal, classify) for box in found]

    @staticmethod
    def near(query: _Query) -> tuple[list[float], float] | None:
        """`near=lng,lat` and `maxDistance` (metres, default 1000), or None."""
        value, _ = query.scalar("near")
        if value is None:
            return None
        point = [_parse_float(part) for part in value.split(",")]
        if len(point) != 2 or any(math.isnan(number) for number in point):
            raise ApiError(422, "Parameter near is not parseable as datatype location")
        distance, label = query.scalar("maxDistance")
        if distance is None:
            return point, 1000.0
        if math.isnan(_parse_float(distance)):
            raise ApiError(422, f"Parameter {label} is not parseable as datatype number")
        return point, _parse_float(distance)

    def box(self, query: _Query, box_id: str) -> _Reply:
        geojson = query.choice("format", ("json", "geojson"), "json") == "geojson"
        doc = self.box_doc(self.find_box(box_id), populate=True, with_loc=True)
        return _json_reply(self.feature(doc) if geojson else doc)

    def sensors(self, query: _Query, box_id: str) -> _Reply:
        box = self.find_box(box_id)
        count = query.integer("count", 1, 100)
        if count is None:
            return _json_reply({"_id": box.id, "sensors": [self.sensor_doc(s, True) for s in box.sensors]})
        last_ms = self.last_measurement_ms(box)
        doc = {"_id": box.id, "name": box.name, "grouptag": list(box.grouptag)}
        if last_ms is not None:
            doc["lastMeasurementAt"] = _iso(last_ms)
        doc["sensors"] = []
        for sensor in box.sensors:
            sensor_doc = self.sensor_doc(sensor, True)
            newest = sensor.latest_index(self._server._now_ms())
            picked = [] if newest is None else list(range(newest, max(newest - count, -1), -1))
            measurements = [{"value": sensor.values[i], "createdAt": _iso(sensor.times[i])} for i in picked]
            latest = {"_id": sensor.id, "measurements": measurements}
            if picked:  # the span of what was returned (a guess at the API's fromDate/toDate)
                latest |= {"fromDate": _iso(sensor.times[picked[-1]]), "toDate": _iso(sensor.times[picked[0]])}
            sensor_doc["lastMeasurements"] = latest
            doc["sensors"].append(sensor_doc)
        return _json_reply(doc)

    def sensor(self, query: _Query, box_id: str, sensor_id: str) -> _Reply:
        box = self.find_box(box_id)
        sensor_id = _check_id(sensor_id, "sensorId")
        sensor = next((s for s in box.sensors if s.id == sensor_id), None)
        if sensor is None:
            raise ApiError(404, f"Sensor with id {sensor_id} does not exist")
        doc = self.sensor_doc(sensor, populate=True)
        if query.flag("onlyValue"):
            return _json_reply(doc.get("lastMeasurement", {}).get("value"))
        return _json_reply(doc)

    def data(self, query: _Query, box_id: str, sensor_id: str) -> _Reply:
        sensor_id = _check_id(sensor_id, "sensorId")  # the box id is not checked at all
        fmt = query.choice("format", ("json", "csv"), "json")
        download = query.flag("download")
        delimiter = query.delimiter()
        to_ms = query.timestamp("toDate", "to-date")
        to_ms = self._server._now_ms() if to_ms is None else to_ms
        from_ms = query.timestamp("fromDate", "from-date")
        from_ms = to_ms - 48 * HOUR_MS if from_ms is None else from_ms
        _check_time_frame(from_ms, to_ms)
        box, sensor = _SENSORS_BY_ID.get(sensor_id, (None, None))
        picked = [] if sensor is None else list(reversed(sensor.between(from_ms, to_ms)))[:MAX_DATA_ROWS]
        headers = {"Content-Disposition": f"attachment; filename={sensor_id}.{fmt}"} if download else {}
        if fmt == "csv":
            rows = [[_iso(sensor.times[i]), sensor.values[i]] for i in picked]
            return _Reply(_csv_text(["createdAt", "value"], rows, delimiter).encode(), CSV_TYPE, headers=headers)
        rows = [
            {
                "location": box.location_at(sensor.times[i]),
                "createdAt": _iso(sensor.times[i]),
                "value": sensor.values[i],
            }
            for i in picked
        ]
        return _json_reply(rows, headers=headers)

    def data_multi(self, query: _Query) -> _Reply:
        """GET /boxes/data: raw measurements of many boxes; both ends of the time range excluded."""
        box_ids = [_check_id(i, "boxId") for i in query.items("boxId", BOX_ID_ALIASES)]
        bbox = query.bbox()
        phenomenon, _ = query.scalar("phenomenon", required=True)
        exposures = query.items("exposure", allowed=EXPOSURES)
        to_ms = query.timestamp("toDate", "to-date")
        to_ms = self._server._now_ms() if to_ms is None else to_ms
        from_ms = query.timestamp("fromDate", "from-date")
        from_ms = to_ms - 2 * DAY_MS if from_ms is None else from_ms
        fmt = query.choice("format", ("csv", "json"), "csv")
        columns = query.items("columns", allowed=DATA_COLUMNS) or DEFAULT_DATA_COLUMNS
        download = query.flag("download", default=True)
        delimiter = query.delimiter()
        _check_time_frame(from_ms, to_ms)
        _check_one_area(box_ids, bbox)
        boxes = [
            box
            for box in RECORDED_BOXES
            if (not box_ids or box.id in box_ids) and (not exposures or box.exposure in exposures)
        ]
        if not boxes:
            raise ApiError(404, "No senseBoxes found")

        rows = []  # grouped by sensor, newest first, as the API streams them
        for box in boxes:
            for sensor in (s for s in box.sensors if s.title == phenomenon):
                for i in reversed(sensor.between(from_ms + 1, to_ms - 1)):
                    lon, lat, *height = box.location_at(sensor.times[i])
                    if bbox and not _in_bbox([lon, lat], bbox):
                        continue  # the measurement's own location decides, not the box's
                    rows.append(
                        {
                            "createdAt": _iso(sensor.times[i]),
                            "value": sensor.values[i],
                            "lat": lat,
                            "lon": lon,
                            "height": height[0] if height else None,
                            "unit": sensor.unit,
                            "boxId": box.id,
                            "sensorId": sensor.id,
                            "phenomenon": sensor.title,
                            "sensorType": sensor.sensor_type,
                            "boxName": box.name,
                            "exposure": box.exposure,
                        }
                    )
        headers = {}
        if download:
            stamp = self._server.now.strftime("%Y%m%d_%H%M%S")
            name = "-".join(["opensensemap_org-download", phenomenon, *columns, stamp])
            headers["Content-Disposition"] = f"attachment; filename={name}.{fmt}"
        if fmt == "json":
            keys = ["createdAt", "value", *(column for column in columns if column not in ("createdAt", "value"))]
            return _json_reply([{key: row[key] for key in keys} for row in rows], headers=headers)

        def cell(value) -> str:
            if value is None:
                return ""
            return _js_number(value) if isinstance(value, float) else str(value)

        table = [[cell(row[column]) for column in columns] for row in rows]
        return _Reply(_csv_text(columns, table, delimiter).encode(), CSV_TYPE, headers=headers)

    def descriptive(self, query: _Query) -> _Reply:
        box_ids = [_check_id(i, "boxId") for i in query.items("boxId", BOX_ID_ALIASES)]
        bbox = query.bbox()
        exposures = query.items("exposure", allowed=EXPOSURES) or ["indoor", "outdoor", "unknown"]
        phenomenon, _ = query.scalar("phenomenon", required=True)
        from_ms = query.timestamp("fromDate", "from-date", required=True)
        to_ms = query.timestamp("toDate", "to-date", required=True)
        operation = query.choice("operation", OPERATIONS, required=True)
        window_text, _ = query.scalar("window", required=True)
        fmt = query.choice("format", ("csv", "tidy", "json"), "csv")
        columns = query.items("columns", allowed=STATISTICS_COLUMNS)
        download = query.flag("download", default=True)
        delimiter = query.delimiter()
        _check_time_frame(from_ms, to_ms)
        _check_one_area(box_ids, bbox)
        window = _window_ms(window_text)

        def wanted(box: _Box) -> bool:
            if box.exposure not in exposures:
                return False
            if box_ids:
                return box.id in box_ids
            return any(_in_bbox(coordinates, bbox) for coordinates, _ in box.locations)

        boxes = [box for box in RECORDED_BOXES if wanted(box)]
        if not boxes:
            raise ApiError(404, "No senseBoxes found")

        # Epoch-aligned windows, labelled by their start, each covering (start, start + w].
        first = from_ms // window * window
        last = to_ms // window * window + window
        starts = list(range(first, last + 1, window))
        results = []  # (box, sensor, first reading index, {window start: value})
        for box in boxes:
            for sensor in (s for s in box.sensors if s.title == phenomenon):
                inside = list(sensor.between(first + 1, last + window - 1))  # strictly between
                if not inside:
                    continue
                grouped: dict[int, list[float]] = {}
                for i in inside:
                    start = -(-sensor.times[i] // window) * window - window  # a boundary counts as earlier
                    grouped.setdefault(start, []).append(float(sensor.values[i]))
                values = {s: v for s, vs in grouped.items() if (v := _operation(operation, vs)) is not None}
                results.append((box, sensor, inside[0], dict(sorted(values.items()))))

        def extras(box: _Box, sensor: _Sensor, first_index: int) -> list:
            lon, lat, *height = box.location_at(sensor.times[first_index])
            known = {
                "boxId": box.id,
                "boxName": box.name,
                "exposure": box.exposure,
                "height": height[0] if height else None,
                "lat": lat,
                "lon": lon,
                "phenomenon": sensor.title,
                "sensorType": sensor.sensor_type,
                "unit": sensor.unit,
            }
            return [known[column] for column in columns]

        headers = {}
        if download:
            stamp = self._server.now.strftime("%Y%m%d_%H%M%S")
            parts = ["opensensemap_org", operation, phenomenon, *columns, stamp]
            headers["Content-Disposition"] = f"attachment; filename={'-'.join(parts)}.csv"

        def cell(value) -> str:
            if value is None:
                return ""
            return _js_number(value) if isinstance(value, float) else str(value)

        if fmt == "json":
            documents = []
            for box, sensor, first_index, values in results:
                doc = {"sensorId": sensor.id, **dict(zip(columns, extras(box, sensor, first_index), strict=True))}
                doc |= {_iso(start): value for start, value in values.items()}
                documents.append(doc)
            return _json_reply(documents, headers=headers)
        if fmt == "tidy":
            header = ["sensorId", *columns, "time_start", f"{operation}_{window_text}"]
            rows = [
                [sensor.id, *map(cell, extras(box, sensor, first_index)), _iso(start), cell(value)]
                for box, sensor, first_index, values in results
                for start, value in values.items()
            ]
        else:
            label_length = _label_length(window)
            header = ["sensorId", *columns, *(f"{_dashify(phenomenon)}_{_iso(s)[:label_length]}Z" for s in starts)]
            rows = [
                [sensor.id, *map(cell, extras(box, sensor, first_index)), *(cell(values.get(s)) for s in starts)]
                for box, sensor, first_index, values in results
            ]
        return _Reply(_csv_text(header, rows, delimiter).encode(), CSV_TYPE, headers=headers)


def _make_handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients with a Session expect
        server_version = "osem-replay"
        timeout = 60  # an idle keep-alive connection does not hold its thread forever

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            server.requests.append(self.path)
            fault = server._take_fault(parts.path)
            if fault and fault.kind == "status":
                error = ApiError(fault.status, f"injected fault: status {fault.status}")
                return self.send(_error_reply(error))
            if fault and fault.kind == "slow":
                time.sleep(fault.delay_s)  # the point of this fault: the client times out
            reply = server._api.answer(parts.path, parts.query)
            if fault and fault.kind == "malformed":
                reply = _Reply(MALFORMED_BODY, reply.content_type)
            if fault and fault.kind == "truncated":
                text = reply.body.decode()
                reply = _Reply(text[: len(text) // 2].encode(), reply.content_type)
            self.send(reply)

        def do_POST(self) -> None:
            self.send(_error_reply(ApiError(405, f"{self.command} is not allowed", code="MethodNotAllowed")))

        do_PUT = do_DELETE = do_PATCH = do_POST

        def send(self, reply: _Reply) -> None:
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. after a "slow" fault): nothing left to tell it

        def log_message(self, format: str, *args) -> None:
            pass  # keep test output quiet; `server.requests` records what came in

    return Handler
