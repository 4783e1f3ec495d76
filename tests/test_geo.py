import json
from datetime import UTC, datetime

import pytest

from pm25.checks import api_time_range, check_bbox, check_city_centre, choose_time_range
from pm25.config import ConfigError, Settings
from pm25.geo import Aoi, AoiError, check_coordinates, choose_aoi, default_aoi, save_aoi

SQUARE = {"type": "Polygon", "coordinates": [[[7.6, 51.9], [7.7, 51.9], [7.7, 52.0], [7.6, 52.0], [7.6, 51.9]]]}


def test_the_default_area_covers_central_berlin_and_not_muenster():
    aoi = default_aoi()
    assert aoi.contains(13.405, 52.52)
    assert not aoi.contains(7.6261, 51.9607)
    assert 200 < aoi.area_km2() < 300


def test_contains_follows_a_concave_outline():
    # An L shape: the notch at the top right is outside although it is inside the bbox.
    ring = [[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2], [0, 0]]
    aoi = Aoi.from_geojson({"type": "Polygon", "coordinates": [ring]}, "test")
    assert aoi.contains(0.5, 1.5) and aoi.contains(1.5, 0.5)
    assert not aoi.contains(1.5, 1.5)


def test_api_bbox_is_west_south_east_north():
    aoi = Aoi.from_geojson(SQUARE, "test")
    assert aoi.api_bbox() == "7.600000,51.900000,7.700000,52.000000"


@pytest.mark.parametrize(
    ("geojson", "message"),
    [
        ({"type": "Point", "coordinates": [7.6, 51.9]}, "no polygon"),
        ({"type": "FeatureCollection", "features": []}, "no polygon"),
        ({"type": "Polygon", "coordinates": [[[7.6, 51.9], [7.7, 51.9], [7.6, 51.9]]]}, "no area"),
        ({"type": "Polygon", "coordinates": [[[7.6, 51.9], [7.7, 52.0], [7.8, 52.1], [7.6, 51.9]]]}, "no area"),
        ({"type": "Polygon", "coordinates": [[[7.6, 151.9], [7.7, 51.9], [7.7, 52.0], [7.6, 151.9]]]}, "-90..90"),
    ],
)
def test_unusable_drawings_are_refused_with_a_reason(geojson, message):
    with pytest.raises(AoiError, match=message):
        Aoi.from_geojson(geojson, "drawing")


def test_swapped_latitude_is_named():
    with pytest.raises(AoiError, match="swap"):
        check_coordinates(152.0, 51.9)


def test_aoi_precedence_env_then_drawing_then_saved_then_default(tmp_path):
    settings = Settings.from_env({"PM25_DATA_DIR": str(tmp_path)})
    assert choose_aoi(settings) == default_aoi()
    save_aoi(Aoi.from_geojson(SQUARE, "x"), tmp_path / "aoi.geojson")
    assert "saved" in choose_aoi(settings).source
    drawn = {"type": "Feature", "geometry": SQUARE, "properties": {}}
    assert "drew" in choose_aoi(settings, drawn).source
    from_env = Settings.from_env({"PM25_DATA_DIR": str(tmp_path), "PM25_BBOX": "7,51,8,52"})
    aoi = choose_aoi(from_env, drawn)
    assert "PM25_BBOX" in aoi.source and aoi.bbox == (7, 51, 8, 52)


def test_a_corrupt_saved_aoi_says_how_to_recover(tmp_path):
    (tmp_path / "aoi.geojson").write_text("{not json")
    with pytest.raises(AoiError, match="draw the area again"):
        choose_aoi(Settings.from_env({"PM25_DATA_DIR": str(tmp_path)}))


def test_saved_aoi_round_trips(tmp_path):
    aoi = Aoi.from_geojson(SQUARE, "x")
    save_aoi(aoi, tmp_path / "aoi.geojson")
    assert json.loads((tmp_path / "aoi.geojson").read_text())["features"][0]["geometry"] == SQUARE


@pytest.mark.parametrize(
    ("lat", "lon", "verdict"),
    [
        (52.5163, 13.3777, "✅"),
        (13.3777, 52.5163, "swapped"),
        (48.14, 11.58, "km away"),
        (95.0, 7.6, "-90..90"),
        (float("nan"), 7.6, "not a number"),
    ],
)
def test_task_1_feedback(lat, lon, verdict):
    assert verdict in check_city_centre(lat, lon)


def test_task_3_feedback():
    aoi = Aoi.from_geojson(SQUARE, "x")
    assert check_bbox("7.6,51.9,7.7,52.0", aoi).startswith("✅")
    assert "Longitude comes first" in check_bbox("51.9,7.6,52.0,7.7", aoi)
    assert "four numbers" in check_bbox("7.6,51.9,7.7", aoi)
    assert "not four comma-separated numbers" in check_bbox("west,south,east,north", aoi)
    assert "not your area" in check_bbox("0,0,1,1", aoi)
    assert "smallest values come first" in check_bbox("7.7,52.0,7.6,51.9", aoi)


@pytest.mark.parametrize(
    ("time_from", "time_to", "message"),
    [
        ("2024-01-15", "2024-01-21T23:59:59.000Z", "YYYY-MM-DDTHH:MM:SS.sssZ"),
        ("2024-01-15T00:00:00+01:00", "2024-01-21T23:59:59.000Z", "YYYY-MM-DDTHH:MM:SS.sssZ"),
        ("2024-01-21T00:00:00.000Z", "2024-01-15T00:00:00.000Z", "swap"),
        ("2099-01-01T00:00:00.000Z", "2099-01-02T00:00:00.000Z", "in the past"),
        ("2024-13-01T00:00:00.000Z", "2024-01-21T23:59:59.000Z", "ISO 8601"),
    ],
)
def test_task_4_refuses_unusable_ranges_with_the_fix(time_from, time_to, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as raised:
        api_time_range(time_from, time_to)
    assert "time_from" in str(raised.value) or "time_to" in str(raised.value)  # the learner's names, not PM25_*


def test_learner_errors_show_as_one_line_in_a_notebook():
    with pytest.raises(ConfigError) as raised:
        api_time_range("2024-01-15", "2024-01-21T23:59:59.000Z")
    assert raised.value._render_traceback_() == [f"❌ {raised.value}"]


def test_task_4_environment_wins_over_the_notebook_values():
    settings = Settings.from_env({"PM25_FROM": "2024-01-16T00:00:00Z", "PM25_TO": "2024-01-17T00:00:00Z"})
    start, end, source = choose_time_range(settings, "2024-01-15T00:00:00.000Z", "2024-01-21T23:59:59.000Z")
    assert (start, end) == (datetime(2024, 1, 16, tzinfo=UTC), datetime(2024, 1, 17, tzinfo=UTC))
    assert "environment" in source
    _, _, source = choose_time_range(Settings.from_env({}), "2024-01-15T00:00:00.000Z", "2024-01-21T23:59:59.000Z")
    assert source == "your choice in Task 4"
