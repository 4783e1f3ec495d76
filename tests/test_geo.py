import json
import re
from datetime import UTC, datetime

import pytest

from pm25.config import Settings
from pm25.data.geo import Aoi, AoiError, check_coordinates, choose_aoi, default_aoi, save_aoi
from pm25.learning.checks import (
    api_time_range,
    check_bounding_box,
    check_city_centre,
    check_time_range,
    choose_time_range,
)
from pm25.learning.tasks import WrongAnswer

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
    ("lat", "lon", "hint"),
    [
        (13.3777, 52.5163, "swapped them"),
        (48.14, 11.58, "km from the centre"),
        (-52.52, 13.405, "Check the signs"),
        (95.0, 7.6, "-90..90"),
        ("52.52", 13.405, "without quotes"),
        (float("nan"), 7.6, "not a number"),
        (..., 13.4, "not a number"),
    ],
)
def test_task_1_wrong_answers_get_their_hint(lat, lon, hint):
    with pytest.raises(WrongAnswer, match=hint):
        check_city_centre(lat, lon)


def test_task_1_accepts_a_point_in_the_centre():
    assert "1.9 km from the centre of" in check_city_centre(52.5163, 13.3777)


def bbox_from_corners(corners):
    lons = [lon for lon, lat in corners]
    lats = [lat for lon, lat in corners]
    return f"{min(lons)},{min(lats)},{max(lons)},{max(lats)}"


def test_task_3_accepts_a_function_that_gives_the_bbox_text():
    assert check_bounding_box(Aoi.from_geojson(SQUARE, "x"))(bbox_from_corners).startswith("7.6,51.9,7.7,52.0 is west")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda corners: [7.6, 51.9, 7.7, 52.0], "That is a list"),
        (lambda corners: "51.9,7.6,52.0,7.7", "Longitude comes first"),
        (lambda corners: "7.7,52.0,7.6,51.9", "smallest values come first"),
        (lambda corners: "7.6,51.9,7.7", "has 3"),
        (lambda corners: "west,south,east,north", "not four numbers"),
        (lambda corners: "0,0,1,1", "not your area's bounding box"),
        (lambda corners: None, "the API wants a text"),
        (lambda corners: min(corner[2] for corner in corners), "stopped with IndexError"),
    ],
)
def test_task_3_wrong_answers_get_their_hint(answer, hint):
    with pytest.raises(WrongAnswer, match=hint):
        check_bounding_box(Aoi.from_geojson(SQUARE, "x"))(answer)


@pytest.mark.parametrize(
    ("time_from", "time_to", "hint"),
    [
        ("2024-01-15", "2024-01-21T23:59:59.000Z", "a date alone"),
        ("2024-01-15 00:00:00.000Z", "2024-01-21T23:59:59.000Z", "put a T"),
        ("2024-01-15T00:00:00", "2024-01-21T23:59:59.000Z", "end it with Z"),
        ("2024-01-15T00:00:00+01:00", "2024-01-21T23:59:59.000Z", "has an offset"),
        (datetime(2024, 1, 15, tzinfo=UTC), "2024-01-21T23:59:59.000Z", "write it as text"),
        ("2024-13-01T00:00:00.000Z", "2024-01-21T23:59:59.000Z", "not a real moment"),
        ("2024-01-21T00:00:00.000Z", "2024-01-15T00:00:00.000Z", "did you swap them"),
        ("2099-01-01T00:00:00.000Z", "2099-01-02T00:00:00.000Z", "in the future"),
        ("15.01.2024", "2024-01-21T23:59:59.000Z", "YYYY-MM-DDTHH:MM:SS.sssZ"),
    ],
)
def test_task_4_wrong_answers_get_their_hint_naming_the_variable(time_from, time_to, hint):
    with pytest.raises(WrongAnswer, match=re.escape(hint)) as raised:
        check_time_range(time_from, time_to)
    assert "`time_from`" in str(raised.value) or "`time_to`" in str(raised.value)


def test_task_4_accepts_the_api_form_with_and_without_milliseconds():
    assert api_time_range("2024-01-15T00:00:00Z", "2024-01-21T23:59:59.999Z") == (
        datetime(2024, 1, 15, tzinfo=UTC),
        datetime(2024, 1, 21, 23, 59, 59, 999000, tzinfo=UTC),
    )


def test_learner_errors_show_as_one_line_in_a_notebook():
    with pytest.raises(WrongAnswer) as raised:
        api_time_range("2024-01-15", "2024-01-21T23:59:59.000Z")
    assert raised.value._render_traceback_() == [f"❌ {raised.value}"]


def test_task_4_environment_wins_over_the_notebook_values():
    settings = Settings.from_env({"PM25_FROM": "2024-01-16T00:00:00Z", "PM25_TO": "2024-01-17T00:00:00Z"})
    start, end, source = choose_time_range(settings, "2024-01-15T00:00:00.000Z", "2024-01-21T23:59:59.000Z")
    assert (start, end) == (datetime(2024, 1, 16, tzinfo=UTC), datetime(2024, 1, 17, tzinfo=UTC))
    assert "environment" in source
    _, _, source = choose_time_range(Settings.from_env({}), "2024-01-15T00:00:00.000Z", "2024-01-21T23:59:59.000Z")
    assert source == "your choice in Task 4"


@pytest.mark.parametrize(
    "picks_corners",
    [
        lambda c: f"{c[0][0]},{c[0][1]},{c[2][0]},{c[2][1]}",  # right only when drawn from the south-west corner
        lambda c: f"{min(c)[0]},{min(c)[1]},{max(c)[0]},{max(c)[1]}",  # corners, not edges: right for rectangles
    ],
)
def test_task_3_a_function_right_only_for_the_corners_as_drawn_gets_the_min_max_hint(picks_corners):
    aoi = Aoi.from_geojson(SQUARE, "x")
    assert picks_corners(aoi.ring) == "7.6,51.9,7.7,52.0"  # for these corners it gives the right text
    with pytest.raises(WrongAnswer, match="smallest and the largest of all the longitudes and of all the latitudes"):
        check_bounding_box(aoi)(picks_corners)


def test_task_3_joining_numbers_as_if_they_were_text_gets_the_way_to_make_them_text():
    def joined_numbers(corners):
        lons = [lon for lon, lat in corners]
        lats = [lat for lon, lat in corners]
        return ",".join([min(lons), min(lats), max(lons), max(lats)])

    with pytest.raises(WrongAnswer, match=r"float found\. Numbers are not text: .*str\(number\)"):
        check_bounding_box(Aoi.from_geojson(SQUARE, "x"))(joined_numbers)
