"""Self-checks for the learner's tasks in step 1, for pm25.learning.tasks.check: each returns a sentence that
confirms the answer, or raises WrongAnswer with what is wrong and how to fix it, never a stack trace."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pm25.config import Settings
from pm25.data.geo import CITY, CITY_CENTRE, Aoi, distance_km
from pm25.learning.tasks import WrongAnswer

API_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
NEAR_KM = 10  # an answer this close to the city's centre is right
TOLERANCE = 1e-4  # degrees (about 10 m): rounding a corner to 4 decimals is still right
EXAMPLE_TIME = "2023-02-26T08:00:00.000Z"
NUMBERS_AS_TEXT = (
    '. Numbers are not text: join them as text with an f-string, f"{west},{south},...", '
    "or turn each into text with str(number) first."
)


def check_city_centre(berlin_lat: float, berlin_lon: float) -> str:
    """Task 1: is (berlin_lat, berlin_lon) in the centre of the city of the default data?"""
    lat, lon = berlin_lat, berlin_lon
    for name, number in (("berlin_lat", lat), ("berlin_lon", lon)):
        if isinstance(number, str):
            raise WrongAnswer(f"`{name}` is the text {number!r}: write the number without quotes, e.g. 52.52.")
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise WrongAnswer(f"`{name}` = {number!r} is not a number: write decimal degrees, e.g. 52.52.")
    if not -90 <= lat <= 90:
        raise WrongAnswer(f"A latitude lies in -90..90, {lat} does not: did you swap latitude and longitude?")
    if not -180 <= lon <= 180:
        raise WrongAnswer(f"A longitude lies in -180..180, {lon} does not.")
    km = distance_km(lat, lon, *CITY_CENTRE)
    if km < NEAR_KM:
        return f"({lat}, {lon}) is {km:.1f} km from the centre of {CITY}."
    if distance_km(lon, lat, *CITY_CENTRE) < NEAR_KM:
        raise WrongAnswer("You swapped them: latitude (north-south, about 52.5 here) comes first, then longitude.")
    if distance_km(-lat, -lon, *CITY_CENTRE) < NEAR_KM or distance_km(abs(lat), abs(lon), *CITY_CENTRE) < NEAR_KM:
        raise WrongAnswer(f"Check the signs: {CITY} is north of the equator and east of Greenwich, both positive.")
    raise WrongAnswer(
        f"({lat}, {lon}) is {km:,.0f} km from the centre of {CITY}, which lies near 52.5° N, 13.4° E. "
        "Decimal degrees, please: 52°31′ is 52 + 31/60 = 52.52."
    )


def check_bounding_box(aoi: Aoi) -> Callable[[Callable], str]:
    """Task 3: does the learner's bounding_box(corners) give the API's 'minLon,minLat,maxLon,maxLat' of `aoi`?"""

    def check(bounding_box: Callable[[Sequence[tuple[float, float]]], str]) -> str:
        bbox = _call(bounding_box, aoi.ring)
        hint = bbox_verdict(bbox, aoi)
        if hint:
            raise WrongAnswer(hint)
        for other_way, ring in _drawn_otherwise(aoi.ring):
            answer = _call(bounding_box, ring)
            if bbox_verdict(answer, Aoi(ring, other_way)):
                raise WrongAnswer(
                    f"Right for your corners as they are, but the same area {other_way} gives {answer!r}, not "
                    f"{Aoi(ring, other_way).api_bbox()}. Take the smallest and the largest of all the longitudes "
                    "and of all the latitudes, wherever they are in the list."
                )
        return f"{bbox} is west, south, east, north, the order openSenseMap expects."

    return check


def _call(bounding_box: Callable, ring: Sequence[tuple[float, float]]):
    try:
        return bounding_box(list(ring))
    except Exception as error:  # the learner's code: any mistake is reported, not raised
        mixed = isinstance(error, TypeError) and "str" in str(error)  # e.g. ",".join(numbers), text + number
        stopped = f"bounding_box(aoi.ring) stopped with {type(error).__name__}: {error}"
        raise WrongAnswer(stopped + (NUMBERS_AS_TEXT if mixed else "")) from None


def _drawn_otherwise(ring: Sequence[tuple[float, float]]):
    """The area's corners as a map may give them too: from another corner, the other way round, with one more.

    A function that picks corners by their place in the list is right for one of these at most.
    """
    corners = list(ring[:-1] if ring[0] == ring[-1] else ring)
    for start in range(1, len(corners)):
        yield f"drawn from corner {start + 1}", (*corners[start:], *corners[:start], corners[start])
    yield "drawn the other way round", (*reversed(corners), corners[-1])
    lons, lats = [lon for lon, _ in corners], [lat for _, lat in corners]
    roof = ((min(lons) + max(lons)) / 2, max(lats) + (max(lats) - min(lats)) / 2)
    yield "with a corner more, to the north", (*corners, roof, corners[0])


def bbox_verdict(bbox, aoi: Aoi) -> str | None:
    """None when `bbox` is the text of the AOI's bounding box in the API's order; else what is wrong with it."""
    if isinstance(bbox, list | tuple):
        return (
            f"That is a {type(bbox).__name__}, {list(bbox)}; the API wants one text: "
            "the four numbers joined by commas, west, south, east, north (an f-string does it)."
        )
    if not isinstance(bbox, str):
        return f"That is {bbox!r} ({type(bbox).__name__}); the API wants a text like '13.29,52.44,13.5,52.57'."
    parts = bbox.split(",")
    if len(parts) != 4:
        return f"A bbox has four numbers separated by commas (minLon,minLat,maxLon,maxLat); {bbox!r} has {len(parts)}."
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        return f"{bbox!r} is not four numbers: write each in decimal degrees with a point, e.g. 13.29."
    expected = aoi.bbox
    if _close(numbers, expected):
        return None
    if _close(numbers, (expected[1], expected[0], expected[3], expected[2])):
        return "Longitude comes first in a bbox (x before y): minLon,minLat,maxLon,maxLat."
    if _close(sorted(numbers), sorted(expected)) and (numbers[0] > numbers[2] or numbers[1] > numbers[3]):
        return "The smallest values come first: the west and south edges, then the east and north edges."
    return (
        f"{bbox} is not your area's bounding box ({aoi.api_bbox()} rounded is). "
        "Take the smallest and the largest longitude and latitude of its corners."
    )


def _close(numbers: Sequence[float], expected: Sequence[float]) -> bool:
    return all(abs(a - b) < TOLERANCE for a, b in zip(numbers, expected, strict=True))


def check_time_range(time_from: str, time_to: str) -> str:
    """Task 4: are both times in the API's form, the start before the end, the start in the past?"""
    start, end = api_time_range(time_from, time_to)
    return f"from {start:%a %d %b %Y %H:%M} to {end:%a %d %b %Y %H:%M} UTC, in the API's form."


def api_time_range(time_from: str, time_to: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Both times parsed, insisting on the API's form; WrongAnswer with the fix when they cannot be used."""
    start, end = _api_time("time_from", time_from), _api_time("time_to", time_to)
    now = now or datetime.now(UTC)
    if start >= end:
        raise WrongAnswer(f"`time_from` ({time_from}) is not before `time_to` ({time_to}): did you swap them?")
    if start > now:
        raise WrongAnswer(f"`time_from` ({time_from}) lies in the future: it is {now:%Y-%m-%d %H:%M} UTC now.")
    return start, end


def _api_time(name: str, text) -> datetime:
    form = f"the API's form YYYY-MM-DDTHH:MM:SS.sssZ, e.g. '{EXAMPLE_TIME}'"
    if not isinstance(text, str):
        raise WrongAnswer(f"`{name}` is {text!r} ({type(text).__name__}): write it as text in {form}.")
    if API_TIME.match(text):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise WrongAnswer(f"`{name}` = {text!r} is not a real moment (month 1–12, day, hour 0–23?).") from None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise WrongAnswer(f"`{name}` = {text!r} is a date alone: add the time and the Z, '{text}T00:00:00.000Z'.")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,3})?Z?", text):
        raise WrongAnswer(f"`{name}` = {text!r}: put a T between the date and the time, as in {form}.")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?", text):
        raise WrongAnswer(f"`{name}` = {text!r} has no time zone: end it with Z (UTC), '{text}Z'.")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:?\d{2}", text):
        raise WrongAnswer(f"`{name}` = {text!r} has an offset: the API wants UTC, so convert it and end with Z.")
    raise WrongAnswer(f"`{name}` = {text!r} is not in {form}.")


def choose_time_range(settings: Settings, time_from: str, time_to: str) -> tuple[datetime, datetime, str]:
    """The learner's range, unless PM25_FROM/PM25_TO are set (that is how CI and instructors pick another)."""
    start, end = api_time_range(time_from, time_to)
    if (settings.start, settings.end) != (start, end) and settings.range_from_env:
        return settings.start, settings.end, "PM25_FROM/PM25_TO from the environment"
    return start, end, "your choice in Task 4"
