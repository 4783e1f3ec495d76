"""Step 2's live mode: new PM2.5 measurements polled from openSenseMap for the area of interest, each once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime

from pm25.data.contract import InvalidMessage, Reading, parse_timestamp
from pm25.data.geo import Aoi
from pm25.data.opensensemap import OpenSenseMapClient, OpenSenseMapError, is_pm25


def live_readings(
    client: OpenSenseMapClient,
    aoi: Aoi,
    every_s: float,
    duration_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Reading]:
    """Poll openSenseMap for the AOI's latest PM2.5 measurements and yield each one once."""
    seen: set[tuple[str, datetime]] = set()
    end = clock() + duration_s
    while True:
        try:
            boxes = client.find_boxes(aoi.api_bbox(), full=True)
        except OpenSenseMapError as error:
            print(f"This poll failed, trying again at the next one: {error}")
            boxes = []
        for box in boxes:
            for reading in _latest_pm25(box, aoi):
                if (reading.box_id, reading.timestamp) not in seen:
                    seen.add((reading.box_id, reading.timestamp))
                    yield reading
        if clock() + every_s > end:
            return
        sleep(every_s)


def _latest_pm25(box: dict, aoi: Aoi) -> list[Reading]:
    lon, lat = box.get("currentLocation", {}).get("coordinates", [None, None])[:2]
    if lon is None or not aoi.contains(lon, lat):
        return []
    found = []
    for sensor in box.get("sensors", []):
        latest = sensor.get("lastMeasurement")
        if not is_pm25(sensor) or not isinstance(latest, dict):
            continue
        try:
            found.append(
                Reading(
                    box["_id"],
                    box["name"],
                    sensor["_id"],
                    lat,
                    lon,
                    parse_timestamp(latest["createdAt"]),
                    float(latest["value"]),
                )
            )
        except (InvalidMessage, KeyError, TypeError, ValueError):
            continue  # a measurement that breaks the contract is not sent (e.g. 999.9, saturated)
    return found
