"""A small, polite client for the openSenseMap API: find PM2.5 boxes, fetch their measurements or hourly means,
and the hourly relative humidity of those boxes that measure it.

Polite means: a User-Agent that says who we are, time-outs, a few retries with growing pauses
when the service is busy, and a disk cache so a class re-running a notebook asks only once.
Errors say what went wrong in the learner's terms and how to fix it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pandas as pd
import requests
from tqdm.auto import tqdm

from pm25.errors import LearnerError
from pm25.files import write_atomically

USER_AGENT = "pm25-kafka-tutorial/1.0 (teaching material; python-requests)"
PM25_TITLES = {"pm2.5", "pm 2.5", "pm25", "pm2,5"}
# Sensor templates say "rel. Luftfeuchte" (BME280, HDC1080, DHT22) or "Luftfeuchte" (BME680); custom boxes
# write "Luftfeuchtigkeit" or English. The unit tells it from soil moisture ("Bodenfeuchte", also in %).
HUMIDITY_TITLE = re.compile(r"(rel(\.|ative)? ?)?(luftfeuchte|luftfeuchtigkeit|humidity)")
HUMIDITY_UNITS = {"%", "%rh", "% rh"}
TIDY_COLUMNS = ["sensorId", "boxId", "boxName", "time_start", "value"]
BOXES_PER_REQUEST = 20  # keeps each statistics request small enough to answer quickly
RAW_CHUNK = timedelta(hours=6)  # a city's raw measurements in 6 h: a few thousand rows, about 1 MB
RAW_COLUMNS = ["boxId", "boxName", "exposure", "sensorId", "sensorType", "lat", "lon", "createdAt", "value"]
ONE_MS = timedelta(milliseconds=1)  # the API's time resolution


class OpenSenseMapError(LearnerError):
    """Something went wrong talking to openSenseMap; the message says what to do."""


class ApiRefused(OpenSenseMapError):
    """The API understood the request and said no (4xx): retrying will not help."""

    def __init__(self, message: str, status: int, code: str):
        super().__init__(message)
        self.status = status
        self.code = code


class ApiUnavailable(OpenSenseMapError):
    """The API could not be reached, or kept failing, after every retry."""


def api_timestamp(moment: datetime) -> str:
    """The only timestamp form the API accepts: 'YYYY-MM-DDTHH:MM:SS.sssZ', in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def is_pm25(sensor: dict) -> bool:
    """Custom boxes spell the phenomenon freely ('PM 2.5', 'pm25'): compare a normalised title."""
    return str(sensor.get("title", "")).strip().lower() in PM25_TITLES


def is_humidity(sensor: dict) -> bool:
    """A relative humidity sensor, whichever of the usual titles its box gave it."""
    title = " ".join(str(sensor.get("title", "")).lower().split())
    unit = str(sensor.get("unit", "")).strip().lower()
    return HUMIDITY_TITLE.fullmatch(title) is not None and unit in HUMIDITY_UNITS


def humidity_sensor(box: dict) -> dict | None:
    """The box's relative humidity sensor, or None when it has none."""
    return next((sensor for sensor in box.get("sensors", []) if is_humidity(sensor)), None)


def _error_body(response: requests.Response) -> dict:
    """The API's restify error body {"code", "message"}, or what we can make of another body."""
    try:
        body = response.json()
    except ValueError:
        return {"code": "", "message": response.text[:200]}
    return body if isinstance(body, dict) else {"code": "", "message": str(body)[:200]}


def _explain(status: int, body: dict, params: dict) -> str:
    code, message = body.get("code", ""), body.get("message", "")
    if "bbox" in message:
        return (
            f"openSenseMap refused the area {params.get('bbox')!r}: {message} "
            "Give it as minLon,minLat,maxLon,maxLat (e.g. 13.29,52.44,13.50,52.57), or draw the area again."
        )
    if status == 409 or "time frame" in message or "timestamp" in message.lower():
        return f"openSenseMap refused the time range: {message} Check the start and end dates (start before end)."
    if status == 404:
        return (
            f"openSenseMap found nothing: {message}. There are no senseBoxes in this area; "
            "draw a larger area or one where people measure (central Berlin works)."
        )
    return f"openSenseMap refused the request (HTTP {status} {code}): {message}"


class OpenSenseMapClient:
    """GET requests to one openSenseMap API, with retries, time-outs and a response cache."""

    def __init__(
        self,
        base_url: str,
        *,
        cache_dir: Path | None = None,
        refresh: bool = False,
        timeout_s: tuple[float, float] = (5.0, 60.0),
        max_attempts: int = 4,
        backoff_s: float = 1.0,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.cache_dir = cache_dir
        self.refresh = refresh
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    # -- transport ---------------------------------------------------------------------------

    def get_text(self, path: str, params: dict | None = None) -> str:
        """The body of a successful GET, from the cache when it holds one."""
        params = params or {}
        cached = self._cache_file(path, params)
        if cached and cached.exists() and not self.refresh:
            return cached.read_text(encoding="utf-8")
        text = self._get_with_retries(path, params)
        if cached:
            write_atomically(cached, text)
        return text

    def get_json(self, path: str, params: dict | None = None):
        text = self.get_text(path, params)
        try:
            return json.loads(text)
        except ValueError:
            self._forget(path, params or {})
            raise ApiUnavailable(
                f"openSenseMap sent an answer to {path} that is not valid JSON (cut off?). Run the cell again."
            ) from None

    def _get_with_retries(self, path: str, params: dict) -> str:
        url = self.base_url + path
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.session.get(url, params=params, timeout=self.timeout_s)
            except requests.Timeout:
                problem = f"no answer within {self.timeout_s[1]:.0f} s"
            except requests.ConnectionError:
                problem = f"could not connect to {self.base_url}"
            except requests.exceptions.ChunkedEncodingError:
                problem = "the answer was cut off"
            else:
                if response.ok:
                    response.encoding = "utf-8"  # box names carry umlauts; text/csv has no charset
                    return response.text
                status = response.status_code
                if status != 429 and status < 500:
                    body = _error_body(response)
                    raise ApiRefused(_explain(status, body, params), status, body.get("code", ""))
                problem = f"HTTP {status} ({'too many requests' if status == 429 else 'server error'})"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit() and attempt < self.max_attempts:
                    time.sleep(min(float(retry_after), 30.0))
                    continue
            if attempt < self.max_attempts:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))  # 1 s, 2 s, 4 s: give a busy server room
        raise ApiUnavailable(
            f"openSenseMap did not answer {path} after {self.max_attempts} attempts ({problem}). "
            "Check your internet connection, or set OSEM_OFFLINE=1 to work with the bundled recording."
        )

    def _cache_file(self, path: str, params: dict) -> Path | None:
        if self.cache_dir is None:
            return None
        key = json.dumps([self.base_url, path, sorted(params.items())], default=str)
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.txt"

    def _forget(self, path: str, params: dict) -> None:
        cached = self._cache_file(path, params)
        if cached:
            cached.unlink(missing_ok=True)

    # -- what the learner asks for -----------------------------------------------------------

    def find_boxes(self, bbox: str, full: bool = False) -> list[dict]:
        """Every outdoor senseBox with a PM2.5 sensor whose location, now or ever, lies in the bbox.

        Indoor boxes measure a room and mobile ones move about: neither tells the air of a place.
        With `full`, each sensor carries its latest measurement (what live mode polls for).
        """
        params = {"bbox": bbox, "exposure": "outdoor", "format": "json"} | ({"full": "true"} if full else {})
        boxes = self.get_json("/boxes", params)
        if not isinstance(boxes, list):
            raise ApiUnavailable("openSenseMap sent a list of boxes in an unexpected shape. Run the cell again.")
        return [box for box in boxes if any(is_pm25(sensor) for sensor in box.get("sensors", []))]

    def fetch_pm25(self, boxes: Iterable[dict], start: datetime, end: datetime, window: str = "1h") -> pd.DataFrame:
        """Mean PM2.5 per box and time window: TIDY_COLUMNS (sensorId, boxId, boxName, time_start, value)."""
        return self._means([box["_id"] for box in boxes], "PM2.5", start, end, window)

    def fetch_humidity(self, boxes: Iterable[dict], start: datetime, end: datetime) -> pd.DataFrame:
        """Hourly mean relative humidity (%) of each box's humidity sensor, in TIDY_COLUMNS.

        Boxes without one are left out. The API matches the exact sensor title, so boxes are asked
        for in groups by the title their humidity sensor has.
        """
        sensors = {box["_id"]: sensor for box in boxes if (sensor := humidity_sensor(box))}
        tables = []
        for title in sorted({sensor["title"] for sensor in sensors.values()}):
            box_ids = [box_id for box_id, sensor in sensors.items() if sensor["title"] == title]
            tables.append(self._means(box_ids, title, start, end, "1h"))
        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=TIDY_COLUMNS)
        # A box may carry two sensors of that title (say, inside and outside the case): keep the one chosen.
        return table[table["sensorId"].isin({sensor["_id"] for sensor in sensors.values()})].reset_index(drop=True)

    def _means(self, box_ids: list[str], phenomenon: str, start: datetime, end: datetime, window: str):
        chunks = [box_ids[i : i + BOXES_PER_REQUEST] for i in range(0, len(box_ids), BOXES_PER_REQUEST)]
        tables = []
        for chunk in tqdm(chunks, desc=f"Fetching {phenomenon} means", unit="request", disable=len(chunks) < 2):
            params = {
                "boxId": ",".join(chunk),
                "phenomenon": phenomenon,
                "from-date": api_timestamp(start),
                "to-date": api_timestamp(end),
                "exposure": "outdoor",
                "operation": "arithmeticMean",
                "window": window,
                "format": "tidy",
                "columns": "boxId,boxName",
                "download": "false",
            }
            tables.append(self._read_tidy(self.get_text("/statistics/descriptive", params), params))
        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
        if table.empty:
            return pd.DataFrame(columns=TIDY_COLUMNS)
        return table

    def fetch_raw(self, bbox: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Every outdoor PM2.5 measurement taken in `bbox` from `start` to `end` (both included): RAW_COLUMNS.

        The range goes in chunks of RAW_CHUNK. The API excludes both from-date and to-date, so the
        chunk [a, b) is asked for as (a - 1 ms, b): each millisecond lands in exactly one chunk.
        """
        edges, stop = [start], end + ONE_MS
        while edges[-1] + RAW_CHUNK < stop:
            edges.append(edges[-1] + RAW_CHUNK)
        edges.append(stop)
        tables = []
        chunks = list(pairwise(edges))
        for chunk_start, chunk_end in tqdm(
            chunks, desc="Fetching PM2.5 measurements", unit="request", disable=len(chunks) < 2
        ):
            params = {
                "bbox": bbox,
                "phenomenon": "PM2.5",
                "exposure": "outdoor",
                "from-date": api_timestamp(chunk_start - ONE_MS),
                "to-date": api_timestamp(chunk_end),
                "columns": ",".join(RAW_COLUMNS),
                "format": "csv",
                "download": "false",
            }
            tables.append(self._read_csv("/boxes/data", params, RAW_COLUMNS))
        table = pd.concat(tables, ignore_index=True)
        table["value"] = pd.to_numeric(table["value"], errors="coerce")
        for column in ("lat", "lon"):
            table[column] = pd.to_numeric(table[column], errors="coerce")
        return table

    def _read_csv(self, path: str, params: dict, columns: list[str]) -> pd.DataFrame:
        """A CSV answer with exactly these columns; a cut-off or changed one is refused and not cached."""
        text = self.get_text(path, params)
        try:
            table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError):
            table = None
        # The API ends every CSV with a newline: a body without one was cut off on the way.
        if table is None or not text.endswith("\n") or list(table.columns) != columns:
            self._forget(path, params)
            raise ApiUnavailable(
                f"openSenseMap sent {path} data in an unexpected form (cut off or changed?). "
                "Run the cell again; if it keeps happening, set OSEM_OFFLINE=1 to use the bundled recording."
            )
        return table

    def _read_tidy(self, text: str, params: dict) -> pd.DataFrame:
        expected = ["sensorId", "boxId", "boxName", "time_start"]
        try:
            table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError):
            table = None
        # The API ends every CSV with a newline: a body without one was cut off on the way.
        if table is None or not text.endswith("\n") or list(table.columns[:4]) != expected or len(table.columns) != 5:
            self._forget("/statistics/descriptive", params)
            raise ApiUnavailable(
                "openSenseMap sent statistics in an unexpected form (cut off or changed?). "
                "Run the cell again; if it keeps happening, set OSEM_OFFLINE=1 to use the bundled recording."
            )
        table = table.rename(columns={table.columns[4]: "value"})
        table["value"] = pd.to_numeric(table["value"], errors="coerce")
        return table
