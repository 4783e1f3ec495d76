"""The PM2.5 colour scale every map shares, and step 1's maps: the area picker and the senseBoxes found.

The colours follow the WHO 2021 levels for a 24-hour mean (ColorBrewer's YlOrRd); a box in alert gets a thick
black ring. Step 3's maps use them: pm25.views.live_map while the stream arrives, pm25.views.status_map for the
saved page.
"""

from __future__ import annotations

from pathlib import Path

from ipyleaflet import CircleMarker, DrawControl, GeoJSON, LayersControl, Map
from ipywidgets import HTML, Output, VBox

from pm25.data.geo import Aoi, AoiError, load_aoi, save_aoi

SHAPE_STYLE = {"shapeOptions": {"color": "#3388ff", "fillOpacity": 0.2}}
# PM2.5 colours by the WHO 2021 levels for a 24-hour mean: the guideline level (15) and the interim targets
# 4, 3 and 2 (25, 37.5, 50). ColorBrewer's YlOrRd: colour-blind safe, darker means dirtier, also in greyscale.
LEVELS = [
    (15.0, "#ffffb2", "≤ 15 (WHO guideline level)"),
    (25.0, "#fecc5c", "15–25 (to interim target 4)"),
    (37.5, "#fd8d3c", "25–37.5 (to interim target 3)"),
    (50.0, "#f03b20", "37.5–50 (to interim target 2)"),
    (float("inf"), "#bd0026", "> 50 (above interim target 2)"),
]
NO_DATA = "#bdbdbd"
OUTLINE = "#555555"
# A box in alert gets a thick black ring: visible without telling colours apart.
ALERT_OUTLINE = {"color": "black", "weight": 4}
NORMAL_OUTLINE = {"color": OUTLINE, "weight": 1}
# The area used when nothing is drawn: a dashed outline, not a shape to edit.
FALLBACK_OUTLINE = {"color": OUTLINE, "weight": 2, "dashArray": "6 4", "fill": False}
AREA_PICKER_NOTE = (
    "Dashed: the area used when you draw nothing. Without internet the map has no background (a grey box); "
    "the outline of the area and your drawing still show."
)


def level_colour(value: float | None) -> str:
    if value is None or value != value:  # None or NaN: nothing measured
        return NO_DATA
    return next(colour for upper, colour, _ in LEVELS if value <= upper)


def legend_entries(window_hours: float) -> tuple[str, dict[str, str]]:
    """The legend's title and its label → colour entries, for a map coloured by this window's mean."""
    entries = {label: colour for _, colour, label in LEVELS}
    entries["no data"] = NO_DATA
    return f"{window_hours:g} h mean PM2.5 (µg/m³)", entries


class AreaPicker:
    """A map to draw the area of interest on, with a line under it that says what happened.

    The latest rectangle or polygon on the map is the area. Drawn or edited, it is saved to `saved`
    (so it is still there next time); when every shape is deleted, `saved` is removed and the default
    area applies again. A saved area is shown on the map at the start, so it can be edited or deleted.
    `outline`, the area used when nothing is drawn, is drawn dashed so the learner can find their way
    even when the background tiles cannot load (no internet: a grey map, which a note above explains).
    """

    def __init__(self, center: tuple[float, float], saved: Path, outline: Aoi | None = None, zoom: int = 11):
        self.saved = Path(saved)
        self.drawing: dict | None = None  # the latest usable shape drawn in this session, as GeoJSON
        self.draw = DrawControl(rectangle=SHAPE_STYLE, polygon=SHAPE_STYLE, polyline={}, circlemarker={}, marker={})
        earlier = _saved_area(self.saved)
        if earlier:
            self.draw.data = [earlier]
        # The shapes as the map has them after each create, edit or delete (a draw event comes before them).
        self.draw.observe(self._shapes_changed, names="data")
        area_map = Map(center=center, zoom=zoom, scroll_wheel_zoom=True)
        if outline:
            area_map.add(GeoJSON(data=outline.as_geojson(), name=outline.source, style=FALLBACK_OUTLINE))
        area_map.add(self.draw)
        self.messages = Output()  # under the map: a print() from a map event would go to Lab's hidden log
        self.widget = VBox([HTML(AREA_PICKER_NOTE), area_map, self.messages])
        if earlier:
            self._say(f"The area saved in {self.saved.name} is on the map: edit or delete it, or draw another.")

    def _shapes_changed(self, change: dict) -> None:
        shapes = change["new"]
        if not shapes:
            self.drawing = None
            self.saved.unlink(missing_ok=True)
            self._say(f"Deleted: {self.saved.name} is removed, the next cell uses the default area.")
            return
        try:
            aoi = Aoi.from_geojson(shapes[-1], "area you drew")
        except AoiError as error:
            self._say(f"❌ {error}")
            return
        save_aoi(aoi, self.saved)
        self.drawing = shapes[-1]
        what = "your changed area" if self.draw.last_action == "edited" else "your area"
        self._say(f"Saved {what} (about {aoi.area_km2():.0f} km²) to {self.saved.name}. Run the next cell to use it.")

    def _say(self, text: str) -> None:
        self.messages.outputs = ({"output_type": "stream", "name": "stdout", "text": text + "\n"},)


def _saved_area(path: Path) -> dict | None:
    """The saved area as a GeoJSON feature for the map; None when there is none (or it cannot be read:
    the next cell says why)."""
    if not path.exists():
        return None
    try:
        return load_aoi(path, "saved area").as_geojson()["features"][0]
    except AoiError:
        return None


def boxes_map(aoi: Aoi, boxes: list[dict]) -> Map:
    """The AOI's outline and one marker per senseBox, coloured by how many readings it sent."""
    lat = (aoi.bbox[1] + aoi.bbox[3]) / 2
    lon = (aoi.bbox[0] + aoi.bbox[2]) / 2
    box_map = Map(center=(lat, lon), zoom=11, scroll_wheel_zoom=True)
    box_map.add(GeoJSON(data=aoi.as_geojson(), name="Area of interest", style={"fillOpacity": 0.05}))
    for feature in boxes:
        lon, lat = feature["geometry"]["coordinates"]
        properties = feature["properties"]
        marker = CircleMarker(
            location=(lat, lon),
            radius=8,
            color="white",
            weight=1,
            fill_color="#3388ff" if properties["readings"] else NO_DATA,
            fill_opacity=0.9,
            name=properties["name"],
        )
        marker.popup = HTML(f"<b>{properties['name']}</b><br>{properties['readings']} readings")
        box_map.add(marker)
    box_map.add(LayersControl())
    return box_map


def one_decimal(value) -> str:
    """A µg/m³ figure for a popup: one decimal, "–" when there is none."""
    return "–" if value is None or value != value else f"{value:.1f}"
