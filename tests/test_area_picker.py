"""Task 2's map: what the learner draws, edits and deletes is what the next cell uses, said under the map."""

import json

from ipyleaflet import GeoJSON

from pm25.config import Settings
from pm25.data.geo import Aoi, choose_aoi, default_aoi, save_aoi
from pm25.views.maps import AreaPicker

CENTRE = (52.52, 13.405)


def rectangle(west, south, east, north):
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Feature", "properties": {"style": {}}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def on_the_map(picker, action, shapes):
    """What the map widget does after a draw event: it says which action, then syncs every shape it holds."""
    picker.draw.last_action = action
    picker.draw.data = shapes


def message(picker):
    return "".join(output["text"] for output in picker.messages.outputs)


def saved_bbox(data_dir):
    return Aoi.from_geojson(json.loads((data_dir / "aoi.geojson").read_text()), "saved").bbox


def used_area(picker, data_dir):
    return choose_aoi(Settings.from_env({"PM25_DATA_DIR": str(data_dir)}), picker.drawing)


def test_a_drawn_area_is_saved_used_and_confirmed_under_the_map(tmp_path):
    picker = AreaPicker(CENTRE, saved=tmp_path / "aoi.geojson")
    assert picker.messages in picker.widget.children
    on_the_map(picker, "created", [rectangle(13.40, 52.50, 13.45, 52.53)])
    assert message(picker).startswith("Saved your area")
    assert used_area(picker, tmp_path).bbox == (13.40, 52.50, 13.45, 52.53)
    saved = json.loads((tmp_path / "aoi.geojson").read_text())
    assert saved["features"][0]["geometry"] == rectangle(13.40, 52.50, 13.45, 52.53)["geometry"]


def test_an_edited_area_replaces_the_drawn_one(tmp_path):
    picker = AreaPicker(CENTRE, saved=tmp_path / "aoi.geojson")
    on_the_map(picker, "created", [rectangle(13.40, 52.50, 13.45, 52.53)])
    on_the_map(picker, "edited", [rectangle(13.30, 52.45, 13.45, 52.53)])
    assert message(picker).startswith("Saved your changed area")
    assert used_area(picker, tmp_path).bbox == (13.30, 52.45, 13.45, 52.53)
    assert saved_bbox(tmp_path) == (13.30, 52.45, 13.45, 52.53)


def test_a_deleted_area_is_no_longer_used_nor_saved(tmp_path):
    picker = AreaPicker(CENTRE, saved=tmp_path / "aoi.geojson")
    on_the_map(picker, "created", [rectangle(13.40, 52.50, 13.45, 52.53)])
    on_the_map(picker, "deleted", [])
    assert "the next cell uses the default area" in message(picker)
    assert not (tmp_path / "aoi.geojson").exists()
    assert used_area(picker, tmp_path) == default_aoi()


def test_an_area_saved_earlier_is_on_the_map_and_can_be_deleted(tmp_path):
    save_aoi(Aoi.from_bbox((13.43, 52.54, 13.47, 52.56), "test"), tmp_path / "aoi.geojson")
    picker = AreaPicker(CENTRE, saved=tmp_path / "aoi.geojson")
    assert Aoi.from_geojson(picker.draw.data[0], "x").bbox == (13.43, 52.54, 13.47, 52.56)
    assert "edit or delete it" in message(picker)
    on_the_map(picker, "deleted", [])
    assert used_area(picker, tmp_path) == default_aoi()


def test_an_unusable_drawing_is_refused_under_the_map_and_loses_nothing(tmp_path):
    picker = AreaPicker(CENTRE, saved=tmp_path / "aoi.geojson")
    on_the_map(picker, "created", [rectangle(13.40, 52.50, 13.45, 52.53)])
    flat = rectangle(13.40, 52.50, 13.45, 52.50)  # all corners on one line
    on_the_map(picker, "created", [rectangle(13.40, 52.50, 13.45, 52.53), flat])
    assert message(picker).startswith("❌") and "no area" in message(picker)
    assert used_area(picker, tmp_path).bbox == (13.40, 52.50, 13.45, 52.53)
    assert saved_bbox(tmp_path) == (13.40, 52.50, 13.45, 52.53)


def test_the_map_shows_the_fallback_area_and_says_what_shows_without_internet(tmp_path):
    picker = AreaPicker(CENTRE, saved=tmp_path / "aoi.geojson", outline=default_aoi())
    note, area_map, _ = picker.widget.children
    assert "Without internet the map has no background" in note.value
    outlines = [layer for layer in area_map.layers if isinstance(layer, GeoJSON)]
    geometries = [feature["geometry"] for layer in outlines for feature in layer.data["features"]]
    assert geometries == [feature["geometry"] for feature in default_aoi().as_geojson()["features"]]
    assert outlines[0].style["dashArray"]
