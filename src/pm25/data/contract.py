"""The message contract between the producer and every consumer of the readings topic.

A message value is a UTF-8 JSON object described by data/schema/pm25-reading.schema.json; its key
is the boxId, so that all readings of one box go to one partition and stay in order.
Producers build `Reading` objects and send them with `ReadingSerializer` and `KeySerializer`;
consumers turn each raw value into a `Reading` with `decode`, which rejects a bad message with
one readable reason instead of crashing the poll loop.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from json.encoder import encode_basestring as _json_text  # json.dumps's own, for ensure_ascii=False
from typing import Any

from kafka.serializer import Serializer

from pm25.config import BUNDLED_DATA_DIR

SCHEMA_PATH = BUNDLED_DATA_DIR / "schema" / "pm25-reading.schema.json"
SCHEMA: dict = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

UNIT = "µg/m³"
PHENOMENON = "PM2.5"
# SDS011 sensors report 999.9 when the dust is beyond what they can measure: a mark, not a value.
VALUE_LIMIT = 999.9
SATURATED = "sensor saturated"  # the reason every check gives for such a value
REQUIRED_FIELDS: list[str] = SCHEMA["required"]
EXAMPLE_ID = "591f578c51d34600116a8ea5"
EXAMPLE_TIMESTAMP = "2024-01-15T00:00:00Z"

# [0-9] rather than \d: in Python \d also matches digits of other scripts, such as '٣'.
_HEX_ID = re.compile(r"[0-9a-fA-F]{24}")
_UTC_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")


class InvalidMessage(ValueError):
    """A message or row that breaks the contract; `reason` says what is wrong in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def show(raw: Any, limit: int = 40) -> str:
    """A short printable form of a value taken from a message, for use in a reason."""
    try:
        text = repr(raw) if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=repr)
    except ValueError:  # e.g. an int of thousands of digits, which Python will not turn into text
        text = f"<a {type(raw).__name__} too long to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(raw: Any) -> str:
    """What a JSON value is, in words: 'null', 'true', 'the text '12'', 'a list', ..."""
    if raw is None or isinstance(raw, bool):
        return json.dumps(raw)
    if isinstance(raw, str):
        return f"the text {show(raw)}"
    if isinstance(raw, list | dict):
        return "a list" if isinstance(raw, list) else "an object"
    return show(raw)


def check_id(field: str, raw: Any) -> str:
    """An openSenseMap id: 24 hexadecimal characters."""
    if not isinstance(raw, str):
        raise InvalidMessage(f"{field} must be a text, got {_kind(raw)}")
    if not _HEX_ID.fullmatch(raw):
        raise InvalidMessage(f"{field} {show(raw)} is not 24 hexadecimal characters (an id looks like '{EXAMPLE_ID}')")
    return raw


def check_number(field: str, raw: Any) -> float:
    """A finite JSON number; true/false are not numbers even though Python counts them as ints."""
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        raise InvalidMessage(f"{field} must be a number, got {_kind(raw)}")
    try:
        number = float(raw)
    except OverflowError:  # an int too big for a float; the range checks reject it
        return math.inf if raw > 0 else -math.inf  # type: ignore[operator]  # typeshed: Real has no <
    if not math.isfinite(number):
        raise InvalidMessage(f"{field} {number} is not a finite number")
    return number


def check_lat(raw: Any) -> float:
    lat = check_number("lat", raw)
    if not -90 <= lat <= 90:
        raise InvalidMessage(f"lat {show(raw)} is outside -90..90 (did you swap lat and lon?)")
    return lat


def check_lon(raw: Any) -> float:
    lon = check_number("lon", raw)
    if not -180 <= lon <= 180:
        raise InvalidMessage(f"lon {show(raw)} is outside -180..180")
    return lon


def check_value(raw: Any) -> float:
    value = check_number("value", raw)
    if value < 0:
        raise InvalidMessage(f"value {show(raw)} is below 0")
    if value >= VALUE_LIMIT:
        raise InvalidMessage(f"{SATURATED}: value {show(raw)} is {VALUE_LIMIT} or more, the sensor's out-of-range mark")
    return value


def parse_timestamp(raw: Any) -> datetime:
    """The message form of a time: ISO 8601 in UTC ending in Z, with or without fractions of a second."""
    if not isinstance(raw, str):
        raise InvalidMessage(f"timestamp must be a text like '{EXAMPLE_TIMESTAMP}', got {_kind(raw)}")
    if not _UTC_TIMESTAMP.fullmatch(raw):
        raise InvalidMessage(
            f"timestamp {show(raw)} is not a UTC time like '{EXAMPLE_TIMESTAMP}' (ISO 8601 ending in Z)"
        )
    try:
        return datetime.fromisoformat(raw)
    except ValueError:  # the right shape, but e.g. February 30th or hour 25
        raise InvalidMessage(f"timestamp {show(raw)} is not a real date and time") from None


def format_timestamp(moment: datetime) -> str:
    """'2024-01-15T00:00:00Z'; fractions of a second only when there are some, so nothing is lost.

    So texts of both forms meet in one column: read them with parse_timestamp, or with
    pd.to_datetime(..., format="ISO8601"), never with a format guessed from the first value.
    """
    utc = moment.astimezone(UTC)
    fraction = utc.microsecond
    timespec = "seconds" if not fraction else "milliseconds" if not fraction % 1000 else "microseconds"
    return utc.isoformat(timespec=timespec).removesuffix("+00:00") + "Z"


@dataclass(frozen=True, slots=True)
class Reading:
    """One PM2.5 observation of one senseBox. Every Reading that exists satisfies the contract."""

    box_id: str
    box_name: str
    sensor_id: str
    lat: float
    lon: float
    timestamp: datetime  # start of the window the value was averaged over, in UTC
    value: float  # µg/m³
    unit: str = UNIT
    phenomenon: str = PHENOMENON

    def __post_init__(self):
        # Checked here, once, so that decode() and the CSV loader cannot disagree with the schema.
        check_id("boxId", self.box_id)
        check_id("sensorId", self.sensor_id)
        if not isinstance(self.box_name, str):
            raise InvalidMessage(f"boxName must be a text, got {_kind(self.box_name)}")
        try:
            self.box_name.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate such as "\ud800" from a JSON escape
            raise InvalidMessage(f"boxName {show(self.box_name)} is not valid Unicode text") from None
        if not isinstance(self.timestamp, datetime) or self.timestamp.tzinfo is None:
            raise InvalidMessage(
                f"timestamp must be a datetime with a time zone (e.g. tzinfo=UTC), got {self.timestamp!r}"
            )
        if self.unit != UNIT:
            raise InvalidMessage(f"unit must be '{UNIT}', got {_kind(self.unit)}")
        if self.phenomenon != PHENOMENON:
            raise InvalidMessage(f"phenomenon must be '{PHENOMENON}', got {_kind(self.phenomenon)}")
        # Frozen, so normalise through object.__setattr__: floats for numbers, UTC for the time.
        object.__setattr__(self, "lat", check_lat(self.lat))
        object.__setattr__(self, "lon", check_lon(self.lon))
        object.__setattr__(self, "value", check_value(self.value))
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))

    @property
    def key(self) -> str:
        """The message key: the box, so each box's readings stay in order on one partition."""
        return self.box_id

    def as_message(self) -> dict:
        """The JSON object this reading is sent as (see SCHEMA)."""
        return {
            "boxId": self.box_id,
            "boxName": self.box_name,
            "sensorId": self.sensor_id,
            "lat": self.lat,
            "lon": self.lon,
            "timestamp": format_timestamp(self.timestamp),
            "value": self.value,
            "unit": self.unit,
            "phenomenon": self.phenomenon,
        }


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number; leave out a reading that has no value")


def decode(raw: bytes | None) -> Reading:
    """The Reading in a raw message value, or InvalidMessage with the reason it cannot be one."""
    if raw is not None and not isinstance(raw, bytes | bytearray | memoryview):
        # A mistake in the consumer's setup, not a bad message, so it must not be skipped quietly.
        raise TypeError(
            f"decode() takes the raw message bytes (record.value), got {type(raw).__name__}; "
            "create the KafkaConsumer without a value_deserializer"
        )
    if not raw:
        raise InvalidMessage("empty message: expected a JSON object")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidMessage(f"not UTF-8 text (bad byte at position {error.start})") from None
    try:
        message = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidMessage("not JSON we can read: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, NaN/Infinity, integers of thousands of digits
        raise InvalidMessage(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise InvalidMessage(f'not a JSON object: got {_kind(message)}, expected {{"boxId": ..., ...}}')
    missing = [field for field in REQUIRED_FIELDS if field not in message]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise InvalidMessage(f"missing field{plural} " + ", ".join(f"'{field}'" for field in missing))
    return Reading(
        box_id=message["boxId"],
        box_name=message["boxName"],
        sensor_id=message["sensorId"],
        lat=message["lat"],
        lon=message["lon"],
        timestamp=parse_timestamp(message["timestamp"]),
        value=message["value"],
        unit=message["unit"],
        phenomenon=message["phenomenon"],
    )


@cache
def _validator():
    # Imported on first use: jsonschema's format checkers take seconds to import.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(message: Any) -> list[str]:
    """Every way `message` breaks the JSON Schema, as 'field: problem' lines; empty when it is valid."""
    errors = sorted(_validator().iter_errors(message), key=lambda error: list(map(str, error.path)))
    return [f"{'.'.join(map(str, error.path)) or 'message'}: {error.message}" for error in errors]


def encode(reading: Reading) -> bytes:
    """The message value for a reading: compact UTF-8 JSON, umlauts and µ kept as they are.

    Byte for byte `json.dumps(reading.as_message(), ensure_ascii=False, separators=(",", ":"))`, written with
    the parts json.dumps uses (its string escaper; repr() for a float, which Reading makes sure is finite)
    but without a dict and an encoder per message: half the cost, on the producer's busiest line.
    """
    r = reading
    return (
        f'{{"boxId":{_json_text(r.box_id)},"boxName":{_json_text(r.box_name)},"sensorId":{_json_text(r.sensor_id)},'
        f'"lat":{r.lat!r},"lon":{r.lon!r},"timestamp":"{format_timestamp(r.timestamp)}","value":{r.value!r},'
        f'"unit":{_json_text(r.unit)},"phenomenon":{_json_text(r.phenomenon)}}}'
    ).encode()  # UTF-8


# Wrong input raises ValueError, not TypeError: kafka-python answers a TypeError from a serializer
# by retrying with an old call signature, which hides the real message behind a confusing one.
class ReadingSerializer(Serializer):
    """value_serializer for KafkaProducer: a Reading becomes its JSON message."""

    def serialize(self, topic, headers, data):
        if not isinstance(data, Reading):
            raise ValueError(
                f"ReadingSerializer sends Reading objects, got {type(data).__name__}; build one with Reading(...) first"
            )
        return encode(data)


class KeySerializer(Serializer):
    """key_serializer for KafkaProducer: the boxId text becomes UTF-8 bytes."""

    def serialize(self, topic, headers, data):
        if not isinstance(data, str):
            raise ValueError(
                f"the message key must be the boxId text, got {type(data).__name__}; "
                "send with key=reading.key so each box's readings stay in order on one partition"
            )
        return data.encode("utf-8")


# No Deserializer on purpose: a value_deserializer that raises on one bad message stops the whole
# poll loop. Consumers receive raw bytes and call decode() on each, so a bad message is skipped
# (or sent to a dead-letter topic) together with its reason.
