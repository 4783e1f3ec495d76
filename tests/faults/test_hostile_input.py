"""A learner's input and files, at their worst: only the documented errors, each with a message."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pm25 import config
from pm25.config import ConfigError
from pm25.data import geo, readings
from pm25.data.contract import InvalidMessage
from pm25.data.geo import AoiError
from pm25.learning import checks
from pm25.learning.tasks import WrongAnswer

pytestmark = pytest.mark.faults

HEADER = ",".join(readings.COLUMNS)
CELLS = st.text(max_size=12) | st.sampled_from(
    ["a" * 24, "51.96", "7,62", "1e999", "nan", "2024-01-15T00:00:00Z", "999.9", '"', "\x00", "٣", "-0"]
)
ROWS = st.lists(st.lists(CELLS, max_size=9).map(lambda cells: ",".join(cells)), max_size=8)
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30)
JSONISH = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "features", "geometry", "coordinates", "x"]) | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
GEOMETRY_TYPES = st.sampled_from(["Polygon", "Point", "FeatureCollection", "Feature", "LineString", 5, None])


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(ROWS.map(lambda rows: "\n".join([HEADER, *rows])), st.text(max_size=300)))
def test_any_csv_text_gives_readings_and_reasons_or_a_value_error(text, figures):
    figures.hostile_inputs += 1
    try:
        loaded = readings.parse_readings_csv(text, Path("pm25_readings.csv"))
    except ValueError as error:
        assert "pm25_readings.csv" in str(error)
        return
    assert all(reason for reason in loaded.rejected["reason"])
    assert isinstance(loaded.summary(), str)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_file_gives_readings_or_a_value_error(data, figures, tmp_path_factory):
    figures.hostile_inputs += 1
    path = tmp_path_factory.mktemp("csv") / "pm25_readings.csv"
    path.write_bytes(data)
    try:
        readings.load_readings(path)
    except ValueError as error:
        assert str(error)


@settings(max_examples=300, deadline=None)
@given(lat=NUMBERS | st.text(max_size=5) | st.none(), lon=NUMBERS | st.text(max_size=5) | st.none())
def test_check_city_centre_always_answers_in_words(lat, lon, figures):
    figures.hostile_inputs += 1
    try:
        assert "km from the centre of" in checks.check_city_centre(lat, lon)
    except WrongAnswer as error:
        assert str(error)


@settings(max_examples=300, deadline=None)
@given(bbox=st.text(max_size=40) | st.lists(NUMBERS.map(str), max_size=5).map(",".join))
def test_bbox_checks_answer_or_raise_config_error(bbox, figures):
    figures.hostile_inputs += 1
    aoi = geo.Aoi.from_bbox((7.518768, 51.891272, 7.702789, 52.011038), "test area")
    hint = checks.bbox_verdict(bbox, aoi)
    assert hint is None or hint.strip()
    try:
        config.parse_bbox(bbox, "PM25_BBOX")
    except ConfigError as error:
        assert "PM25_BBOX" in str(error)


TIMES = (
    st.text(max_size=30)
    | st.datetimes().map(lambda moment: moment.isoformat())
    | st.builds(
        lambda moment, zone: moment.isoformat() + zone,
        st.datetimes(),
        st.sampled_from(["Z", "+01:00", "-05:30", "+14:00"]),
    )
)


@settings(max_examples=400, deadline=None)
@given(start=TIMES, end=TIMES)
def test_times_parse_or_raise_config_error(start, end, figures):
    figures.hostile_inputs += 2
    for text in (start, end):
        try:
            config.parse_utc(text, "PM25_FROM")
        except ConfigError as error:
            assert "PM25_FROM" in str(error)
    try:
        checks.api_time_range(start, end)
    except WrongAnswer as error:
        assert str(error)


@settings(max_examples=400, deadline=None)
@given(
    geojson=JSONISH
    | st.fixed_dictionaries({"type": GEOMETRY_TYPES, "coordinates": JSONISH})
    | st.fixed_dictionaries(
        {
            "type": st.just("FeatureCollection"),
            "features": st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.just("Feature"),
                        "geometry": JSONISH
                        | st.fixed_dictionaries(
                            {
                                "type": st.just("Polygon"),
                                "coordinates": st.lists(
                                    st.lists(st.lists(NUMBERS | JSONISH, max_size=3), max_size=6), max_size=2
                                ),
                            }
                        ),
                    }
                ),
                max_size=2,
            )
            | JSONISH,
        }
    )
)
def test_any_geojson_gives_an_area_or_an_aoi_error(geojson, figures, tmp_path_factory):
    figures.hostile_inputs += 1
    try:
        aoi = geo.Aoi.from_geojson(geojson, "area you drew")
    except AoiError as error:
        assert str(error)
    else:
        assert aoi.area_km2() > 0
    path = tmp_path_factory.mktemp("aoi") / "aoi.geojson"
    path.write_text(json.dumps(geojson, allow_nan=True), encoding="utf-8")
    try:
        geo.load_aoi(path, "area saved earlier")
    except AoiError as error:
        assert str(error)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_at_the_edge_of_the_calendar_is_a_config_error(text, figures):
    figures.hostile_inputs += 1
    with pytest.raises(ConfigError, match="PM25_FROM"):
        config.parse_utc(text, "PM25_FROM")


def test_reasons_are_plain_text(figures):
    figures.hostile_inputs += 1
    row = ",".join(["x", "Name", "y", "91", "7,6", "yesterday", "-1"])
    loaded = readings.parse_readings_csv(HEADER + "\n" + row, Path("f.csv"))
    reason = loaded.rejected["reason"][0]
    assert set(reason) <= set(string.printable) | set("µ³äöüß…")
    assert not isinstance(reason, InvalidMessage)
