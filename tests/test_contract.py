"""The message contract: the JSON Schema, Reading, decode() and the Kafka serializers agree."""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from kafka.serializer import Serializer

from pm25.config import REPO_DIR
from pm25.data import dataset
from pm25.data.contract import (
    SCHEMA,
    InvalidMessage,
    KeySerializer,
    Reading,
    ReadingSerializer,
    decode,
    encode,
    format_timestamp,
    validate,
)
from pm25.data.readings import RECORDING_CSV, parse_readings_csv, recording_readings
from pm25.views import plots

BOX_ID = "591f578c51d34600116a8ea5"
SENSOR_ID = "59458624a4ad590011186665"
READING = Reading(
    box_id=BOX_ID,
    box_name="Münster Süd",
    sensor_id=SENSOR_ID,
    lat=51.96422,
    lon=7.645218,
    timestamp=datetime(2024, 1, 15, 12, 0, tzinfo=UTC),
    value=11.232186012449652,
)
MESSAGE = READING.as_message()


def encoded(message) -> bytes:
    return json.dumps(message).encode("utf-8")


def with_field(field: str, value) -> bytes:
    return encoded({**MESSAGE, field: value})


def reason_for(raw) -> str:
    with pytest.raises(InvalidMessage) as caught:
        decode(raw)
    return caught.value.reason


# --- the schema file and the Reading it describes ---


def test_schema_is_valid_draft_2020_12_and_explains_itself():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["title"] and "boxId" in SCHEMA["description"]
    assert set(SCHEMA["required"]) == set(MESSAGE)


def test_as_message_is_the_documented_object_and_validates():
    assert MESSAGE == {
        "boxId": BOX_ID,
        "boxName": "Münster Süd",
        "sensorId": SENSOR_ID,
        "lat": 51.96422,
        "lon": 7.645218,
        "timestamp": "2024-01-15T12:00:00Z",
        "value": 11.232186012449652,
        "unit": "µg/m³",
        "phenomenon": "PM2.5",
    }
    assert validate(MESSAGE) == []


@pytest.mark.parametrize(
    ("microsecond", "expected"),
    [(0, "2024-01-15T12:00:00Z"), (250_000, "2024-01-15T12:00:00.250Z"), (7, "2024-01-15T12:00:00.000007Z")],
)
def test_timestamps_keep_fractions_only_when_there_are_some(microsecond, expected):
    moment = datetime(2024, 1, 15, 12, 0, 0, microsecond, tzinfo=UTC)
    assert format_timestamp(moment) == expected


def test_reading_converts_other_time_zones_to_utc():
    berlin = timezone(timedelta(hours=1))
    reading = replace(READING, timestamp=datetime(2024, 1, 15, 13, 0, tzinfo=berlin))
    assert reading.timestamp == READING.timestamp
    assert reading.timestamp.tzinfo is UTC
    assert reading.as_message()["timestamp"] == "2024-01-15T12:00:00Z"


def test_reading_refuses_a_time_without_zone():
    with pytest.raises(InvalidMessage, match="time zone"):
        replace(READING, timestamp=datetime(2024, 1, 15, 12, 0))


def test_reading_stores_whole_numbers_as_floats_and_is_keyed_by_box():
    reading = replace(READING, lat=52, lon=7, value=0)
    assert (reading.lat, reading.lon, reading.value) == (52.0, 7.0, 0.0)
    assert all(isinstance(number, float) for number in (reading.lat, reading.lon, reading.value))
    assert reading.key == BOX_ID


# --- serializers ---


def test_serializers_are_kafka_serializers():
    # kafka-python warns (and pyproject turns the warning into an error) for anything else.
    assert isinstance(ReadingSerializer(), Serializer)
    assert isinstance(KeySerializer(), Serializer)


def test_round_trip_through_the_serializers():
    raw = ReadingSerializer().serialize("pm25_stream", [], READING)
    assert decode(raw) == READING
    assert KeySerializer().serialize("pm25_stream", [], READING.key) == BOX_ID.encode()


@pytest.mark.parametrize("microsecond", [0, 123_000, 123_456])
def test_round_trip_keeps_every_fraction_of_a_second(microsecond):
    reading = replace(READING, timestamp=READING.timestamp.replace(microsecond=microsecond))
    assert decode(ReadingSerializer().serialize("t", [], reading)) == reading


def test_serialized_value_is_compact_utf8_json():
    raw = ReadingSerializer().serialize("pm25_stream", [], READING)
    assert "Münster Süd".encode() in raw and "µg/m³".encode() in raw  # not \u00fc escapes
    assert b", " not in raw and b": " not in raw
    assert json.loads(raw.decode("utf-8")) == MESSAGE


def json_dumps_of_the_contract(reading: Reading) -> bytes:
    """The message as the standard library writes it: what encode() must give, byte for byte."""
    text = json.dumps(reading.as_message(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def test_encode_writes_what_json_dumps_writes_for_every_recorded_reading():
    recorded = parse_readings_csv(recording_readings().to_csv(index=False), RECORDING_CSV).readings
    assert len(recorded) > 100_000
    assert {reading.timestamp.microsecond == 0 for reading in recorded} == {True, False}  # both forms of time
    assert [encode(reading) for reading in recorded] == [json_dumps_of_the_contract(r) for r in recorded]


some_times = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3))]),
)
any_valid_readings = st.builds(
    Reading,
    box_id=st.text("0123456789abcdefABCDEF", min_size=24, max_size=24),
    box_name=st.text() | st.sampled_from(['Kreuzberg "Süd" \\ 1', "tab\there", "\x00\x1f\x7f\u2028", "北京 🌫"]),
    sensor_id=st.text("0123456789abcdef", min_size=24, max_size=24),
    lat=st.floats(-90, 90) | st.integers(-90, 90),
    lon=st.floats(-180, 180) | st.integers(-180, 180),
    # whole seconds, milliseconds and microseconds: the three forms format_timestamp writes
    timestamp=some_times.map(lambda t: t.replace(microsecond=0))
    | some_times.map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
    | some_times,
    # 12.3 and 12.30 are one float; 1e-05 is where a JSON writer other than Python's says 0.00001
    value=st.floats(0, 999.9, exclude_max=True) | st.sampled_from([12.3, 12.30, 1e-05, 5e-324, -0.0, 0]),
)


@given(any_valid_readings)
def test_encode_writes_what_json_dumps_writes_for_any_valid_reading(reading):
    assert encode(reading) == json_dumps_of_the_contract(reading)


def test_reading_serializer_refuses_a_dict_with_a_value_error():
    # Not TypeError: kafka-python would catch that and retry with an outdated call signature.
    with pytest.raises(ValueError, match=r"Reading objects, got dict.*Reading\(\.\.\.\)"):
        ReadingSerializer().serialize("pm25_stream", [], MESSAGE)


@pytest.mark.parametrize("key", [None, b"591f578c51d34600116a8ea5", 42])
def test_key_serializer_insists_on_the_box_id_text(key):
    with pytest.raises(ValueError, match=r"key=reading\.key"):
        KeySerializer().serialize("pm25_stream", [], key)


# --- decode: every reason a message is rejected ---

NOT_MESSAGES = [
    (None, "empty message"),
    (b"", "empty message"),
    (b"\xff\xfe{}", "not UTF-8 text (bad byte at position 0)"),
    (b"hello", "not JSON: Expecting value"),
    (b'{"value": 1', "not JSON"),
    (b'{"value": NaN}', "not JSON: NaN is not a JSON number"),
    (b'{"value": -Infinity}', "not JSON: -Infinity is not a JSON number"),
    (b"[1, 2]", "not a JSON object: got a list"),
    (b'"text"', "not a JSON object: got the text 'text'"),
    (b"null", "not a JSON object: got null"),
    (b"[" * 100_000, "not JSON"),
    (b"1" * 5000, "not JSON"),
]


@pytest.mark.parametrize(("raw", "reason"), NOT_MESSAGES)
def test_decode_rejects_what_is_not_a_json_object(raw, reason):
    assert reason_for(raw).startswith(reason)


def test_decode_names_every_missing_field():
    assert reason_for(encoded({k: v for k, v in MESSAGE.items() if k != "value"})) == "missing field 'value'"
    assert reason_for(b"{}").startswith("missing fields 'boxId', 'boxName', 'sensorId', 'lat'")


BAD_FIELDS = [
    ("boxId", "591f578c", "boxId '591f578c' is not 24 hexadecimal characters"),
    ("boxId", "591f578c51d34600116a8eaZ", "is not 24 hexadecimal characters"),
    ("boxId", 591, "boxId must be a text, got 591"),
    ("sensorId", None, "sensorId must be a text, got null"),
    ("boxName", ["a"], "boxName must be a text, got a list"),
    ("boxName", "\ud800", "boxName '\\ud800' is not valid Unicode text"),
    ("lat", "51.9", "lat must be a number, got the text '51.9'"),
    ("lat", True, "lat must be a number, got true"),
    ("lat", 91, "lat 91 is outside -90..90"),
    ("lon", -180.5, "lon -180.5 is outside -180..180"),
    ("value", -3.0, "value -3.0 is below 0"),
    ("value", 999.9, "sensor saturated: value 999.9 is 999.9 or more"),
    ("value", 10**400, "value 1000"),
    ("value", "NaN", "value must be a number, got the text 'NaN'"),
    ("value", False, "value must be a number, got false"),
    ("value", {"v": 1}, "value must be a number, got an object"),
    ("timestamp", "2024-01-15", "timestamp '2024-01-15' is not a UTC time like '2024-01-15T00:00:00Z'"),
    ("timestamp", "2024-01-15T12:00:00+01:00", "is not a UTC time"),
    ("timestamp", "2024-01-15 12:00:00Z", "is not a UTC time"),
    ("timestamp", "2024-01-15T12:00:00Z\n", "is not a UTC time"),
    ("timestamp", "2024-02-30T12:00:00Z", "timestamp '2024-02-30T12:00:00Z' is not a real date and time"),
    ("timestamp", 1705320000, "timestamp must be a text like '2024-01-15T00:00:00Z', got 1705320000"),
    ("unit", "ug/m3", "unit must be 'µg/m³', got the text 'ug/m3'"),
    ("phenomenon", "PM10", "phenomenon must be 'PM2.5', got the text 'PM10'"),
]


# JSON Schema has no notion of a lone surrogate (which cannot be encoded as UTF-8), and the Python
# validator lets '$' match before a final newline, unlike the JavaScript regexes the standard names.
SCHEMA_BLIND_SPOTS = ["\ud800", "2024-01-15T12:00:00Z\n"]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_FIELDS, ids=[bad[0] for bad in BAD_FIELDS])
def test_decode_explains_a_bad_field_and_the_schema_rejects_it_too(field, value, reason):
    assert reason in reason_for(with_field(field, value))
    if value not in SCHEMA_BLIND_SPOTS:
        assert any(error.startswith(f"{field}: ") for error in validate({**MESSAGE, field: value}))


def test_reasons_quote_long_input_shortened():
    reason = reason_for(with_field("boxId", "x" * 10_000))
    assert len(reason) < 150 and "..." in reason


def test_decode_accepts_boundaries_extra_fields_and_upper_case_ids():
    message = {**MESSAGE, "boxId": BOX_ID.upper(), "lat": -90, "lon": 180, "value": 0, "note": [None]}
    reading = decode(encoded(message))
    assert (reading.box_id, reading.lat, reading.lon, reading.value) == (BOX_ID.upper(), -90.0, 180.0, 0.0)
    assert decode(with_field("value", 999.89)).value == 999.89
    assert decode(with_field("timestamp", "2024-01-15T12:00:00.123456789Z")).timestamp.microsecond == 123456


def test_decode_refuses_text_because_that_is_a_consumer_setup_mistake():
    with pytest.raises(TypeError, match="without a value_deserializer"):
        decode(json.dumps(MESSAGE))


def test_validate_reports_readable_field_errors():
    errors = validate({**MESSAGE, "value": -1, "lat": "north"})
    assert errors == ["lat: 'north' is not of type 'number'", "value: -1 is less than the minimum of 0"]
    assert validate([]) == ["message: [] is not of type 'object'"]


# --- properties: decode never crashes and agrees with the schema ---


def json_trees(numbers):
    return st.recursive(
        st.none() | st.booleans() | st.integers() | numbers | st.text(),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
        max_leaves=10,
    )


json_values = json_trees(st.floats())  # NaN and Infinity too, which Python's json writes anyway
strict_json_values = json_trees(st.floats(allow_nan=False, allow_infinity=False))
hex_ids = st.text("0123456789abcdefABCDEF", min_size=24, max_size=24)
VALID_VALUES = {
    "boxId": hex_ids,
    "boxName": st.text(),  # hypothesis leaves out lone surrogates, which no real text contains
    "sensorId": hex_ids,
    "lat": st.floats(-90, 90) | st.integers(-90, 90),
    "lon": st.floats(-180, 180) | st.integers(-180, 180),
    "timestamp": st.datetimes(timezones=st.just(UTC)).map(format_timestamp),
    "value": st.floats(0, 999.9, exclude_max=True) | st.integers(0, 999),
    "unit": st.just("µg/m³"),
    "phenomenon": st.just("PM2.5"),
}
# Values near the edges of the contract, valid or not, and anything else JSON can hold.
EDGE_VALUES = {
    "boxId": st.text("0123456789abcdefxX", max_size=26),
    "boxName": st.text(),
    "sensorId": st.text("0123456789abcdefxX", max_size=26),
    "lat": st.floats(-100, 100) | st.integers(-100, 100),
    "lon": st.floats(-200, 200) | st.integers(-200, 200),
    "timestamp": st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,9})?Z?", fullmatch=True
    ),
    "value": st.floats(-10, 1100) | st.sampled_from([0, 999.9, -0.0, 1e308, 10**400]),
    "unit": st.sampled_from(["µg/m³", "ug/m3"]),
    "phenomenon": st.sampled_from(["PM2.5", "PM10"]),
}
MISSING = object()
valid_messages = st.fixed_dictionaries(VALID_VALUES)
one_change = st.sampled_from(list(VALID_VALUES)).flatmap(
    lambda field: st.tuples(st.just(field), st.just(MISSING) | EDGE_VALUES[field] | json_values)
)


@given(st.binary())
def test_decode_raises_only_invalid_message_for_any_bytes(raw):
    try:
        decode(raw)
    except InvalidMessage as rejected:
        assert rejected.reason


@given(json_values)
def test_decode_raises_only_invalid_message_for_any_json(value):
    try:
        decode(encoded(value))
    except InvalidMessage as rejected:
        assert rejected.reason


@given(valid_messages, st.dictionaries(st.text(), strict_json_values, max_size=3))
def test_decode_accepts_every_message_the_schema_accepts(message, extra):
    message = {**extra, **message}
    assert validate(message) == []
    reading = decode(encoded(message))
    assert reading.as_message() == {field: message[field] for field in VALID_VALUES}
    assert reading.timestamp == datetime.fromisoformat(message["timestamp"])


@given(valid_messages, one_change)
def test_decode_rejects_every_message_the_schema_rejects(message, change):
    field, new_value = change
    if new_value is MISSING:
        del message[field]
    else:
        message[field] = new_value
    try:
        reading = decode(encoded(message))
    except InvalidMessage:
        return  # decode may be stricter than the schema (NaN, lone surrogates), never more lenient
    assert validate(message) == []
    assert validate(reading.as_message()) == []


@given(st.fixed_dictionaries(VALID_VALUES))
def test_every_decoded_reading_survives_the_round_trip(message):
    reading = decode(encoded(message))
    assert validate(reading.as_message()) == []
    assert decode(ReadingSerializer().serialize("t", [], reading)) == reading


# Every reader of the timestamps the project writes: format_timestamp leaves out .000, so a column of
# them mixes '...41.123Z' and '...41Z', and pandas, left to infer one format from the first value,
# refuses the other (issue 21 item 1).
SECOND = datetime(2023, 2, 27, 20, 17, 41, tzinfo=UTC)
MIXED_MOMENTS = [SECOND + timedelta(milliseconds=123), SECOND, SECOND + timedelta(minutes=30, milliseconds=500)]
MIXED_TEXTS = [format_timestamp(moment) for moment in MIXED_MOMENTS]


def test_format_timestamp_writes_both_forms_so_readers_must_take_both():
    assert [text.count(".") for text in MIXED_TEXTS] == [1, 0, 1]


@pytest.mark.parametrize("texts", [MIXED_TEXTS, MIXED_TEXTS[::-1]], ids=["milliseconds-first", "whole-second-first"])
def test_readings_plot_reads_timestamps_with_and_without_milliseconds(texts):
    table = pd.DataFrame({"boxName": "Garten", "timestamp": texts, "value": [10.0, 20.0, 60.0]})
    (line,) = [line for line in plots.readings_plot(table).axes[0].get_lines() if line.get_label() == "Garten"]
    assert list(line.get_ydata()) == [30.0]  # the three readings of one clock hour, averaged


@pytest.mark.parametrize("texts", [MIXED_TEXTS, MIXED_TEXTS[::-1]], ids=["milliseconds-first", "whole-second-first"])
def test_rolling_mean_plot_reads_timestamps_with_and_without_milliseconds(tmp_path, texts):
    history = pd.DataFrame({"boxName": "Garten", "timestamp": texts, "mean": [10.0, 20.0, 60.0]})
    alerts = pd.DataFrame({"boxName": "Garten", "event": ["exceeded"], "timestamp": [texts[0]]})
    figure = plots.rolling_mean_plot(history, alerts, 15.0, 24, tmp_path / "plot.png")
    (heatmap,) = figure.axes[0].collections
    assert heatmap.get_array().shape == (1, 1)


def test_alert_intervals_follow_time_not_the_order_of_the_texts():
    # '...41.500Z' sorts before '...41Z' as text, although it is half a second later
    exceeded, resolved = format_timestamp(SECOND), format_timestamp(SECOND + timedelta(milliseconds=500))
    alerts = pd.DataFrame({"boxName": "Garten", "event": ["exceeded", "resolved"], "timestamp": [exceeded, resolved]})
    intervals = plots.alert_intervals(alerts, pd.Timestamp(SECOND + timedelta(hours=1)))
    assert intervals.values.tolist() == [["Garten", pd.Timestamp(SECOND), pd.Timestamp(resolved), True]]


def test_api_hours_are_read_with_and_without_milliseconds():
    texts = pd.Series(["2023-02-27T20:00:00.000Z", "2023-02-27T21:00:00Z", "2023-02-27T22:00:00.000Z"])
    hours = ["2023-02-27T20:00:00Z", "2023-02-27T21:00:00Z", "2023-02-27T22:00:00Z"]
    assert dataset._iso(texts).tolist() == hours
    assert dataset._iso(texts[::-1]).tolist() == hours[::-1]


def python_sources():
    """(name, source) of the package, the benchmarks and the notebooks' code cells (magics left out)."""
    for path in sorted([*(REPO_DIR / "src" / "pm25").glob("*.py"), *(REPO_DIR / "benchmarks").glob("*.py")]):
        yield path.relative_to(REPO_DIR), path.read_text(encoding="utf-8")
    for path in sorted((REPO_DIR / "src").glob("*.ipynb")):
        for number, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
                yield f"{path.relative_to(REPO_DIR)} cell {number}", code


def test_every_pandas_time_parser_is_told_the_timestamps_are_iso_8601():
    # Without format=, pd.to_datetime guesses one format from the first value and fails on the other form.
    unguarded = [
        f"{name}:{call.lineno}"
        for name, source in python_sources()
        for call in ast.walk(ast.parse(source))
        if isinstance(call, ast.Call)
        and getattr(call.func, "attr", getattr(call.func, "id", None)) == "to_datetime"
        and not {"format", "unit"} & {keyword.arg for keyword in call.keywords}  # unit=: numbers, not texts
    ]
    assert unguarded == [], "pd.to_datetime without format='ISO8601' (or another explicit format)"
