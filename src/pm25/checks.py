"""Self-checks for the learner's tasks in step 1: feedback in plain words, never a stack trace."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pm25.config import ConfigError, Settings, parse_utc
from pm25.geo import CITY, CITY_CENTRE, Aoi, AoiError, check_coordinates, distance_km

API_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
RIGHT, WRONG = "✅ ", "❌ "


def check_city_centre(lat: float, lon: float) -> str:
    """Task 1: is (lat, lon) in the centre of the default data's city?"""
    try:
        check_coordinates(lat, lon)
    except AoiError as error:
        return WRONG + str(error)
    if distance_km(lon, lat, *CITY_CENTRE) < 10 <= distance_km(lat, lon, *CITY_CENTRE):
        return WRONG + "You swapped them: latitude (north-south, about 52.5 here) comes first, then longitude."
    km = distance_km(lat, lon, *CITY_CENTRE)
    if km < 10:
        return RIGHT + f"Right: ({lat}, {lon}) is {km:.1f} km from the centre of {CITY}."
    return WRONG + f"({lat}, {lon}) is {km:,.0f} km away from {CITY}'s centre. {CITY} lies near 52.5° N, 13.4° E."


def check_bbox(bbox: str, aoi: Aoi) -> str:
    """Task 3: is `bbox` the AOI's bounding box in the API's order lngSW,latSW,lngNE,latNE?"""
    try:
        numbers = [float(part) for part in bbox.split(",")]
    except ValueError:
        return WRONG + f"{bbox!r} is not four comma-separated numbers."
    if len(numbers) != 4:
        return WRONG + f"A bbox has four numbers (minLon,minLat,maxLon,maxLat); yours has {len(numbers)}."
    expected = aoi.bbox
    if all(abs(a - b) < 1e-4 for a, b in zip(numbers, expected, strict=True)):
        return RIGHT + "Right: west, south, east, north edges — the order openSenseMap expects."
    swapped = (expected[1], expected[0], expected[3], expected[2])
    if all(abs(a - b) < 1e-4 for a, b in zip(numbers, swapped, strict=True)):
        return WRONG + "Longitude comes first in a bbox (x before y): minLon,minLat,maxLon,maxLat."
    if sorted(numbers) == sorted(expected) and (numbers[0] > numbers[2] or numbers[1] > numbers[3]):
        return WRONG + "The smallest values come first: west and south edges, then east and north."
    return WRONG + "That is not your area's bounding box. Take the smallest and largest lon and lat of its corners."


def api_time_range(time_from: str, time_to: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Task 4: parse both times, insisting on the API's form; raise with a fix when they cannot be used."""
    for name, text in (("time_from", time_from), ("time_to", time_to)):
        if not API_TIME.match(text):
            raise ConfigError(name, text, "the API's form YYYY-MM-DDTHH:MM:SS.sssZ, e.g. '2024-01-15T00:00:00.000Z'")
    start, end = parse_utc(time_from, "time_from"), parse_utc(time_to, "time_to")
    now = now or datetime.now(UTC)
    if start >= end:
        raise ConfigError(
            "time_from/time_to", f"{time_from} .. {time_to}", "a start before the end (did you swap them?)"
        )
    if start > now:
        raise ConfigError("time_from", time_from, f"a time in the past (it is {now:%Y-%m-%d %H:%M} UTC now)")
    return start, end


def choose_time_range(settings: Settings, time_from: str, time_to: str) -> tuple[datetime, datetime, str]:
    """The learner's range, unless PM25_FROM/PM25_TO are set (that is how CI and instructors pick another)."""
    start, end = api_time_range(time_from, time_to)
    if (settings.start, settings.end) != (start, end) and settings.range_from_env:
        return settings.start, settings.end, "PM25_FROM/PM25_TO from the environment"
    return start, end, "your choice in Task 4"
