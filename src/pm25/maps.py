"""Maps for the notebooks: ipyleaflet for live, interactive maps; folium for a map saved as HTML."""

from __future__ import annotations

from collections.abc import Callable

from ipyleaflet import CircleMarker, DrawControl, GeoJSON, LayersControl, Map
from ipywidgets import HTML

from pm25.geo import Aoi

SHAPE_STYLE = {"shapeOptions": {"color": "#3388ff", "fillOpacity": 0.2}}
# PM2.5 colours by the WHO 2021 levels: the 24-hour guideline (15) and interim targets (25, 37.5, 50).
LEVELS = [(15.0, "#2b9348", "≤ 15 µg/m³"), (25.0, "#f0c808", "15–25"), (37.5, "#f08c00", "25–37.5"),
          (50.0, "#d00000", "37.5–50"), (float("inf"), "#6a040f", "> 50")]  # fmt: skip
NO_DATA = "#8d99ae"


def level_colour(value: float | None) -> str:
    if value is None or value != value:  # None or NaN: nothing measured
        return NO_DATA
    return next(colour for upper, colour, _ in LEVELS if value <= upper)


def drawing_map(center: tuple[float, float], on_drawn: Callable[[dict], None], zoom: int = 11) -> Map:
    """A map on which the learner draws a rectangle or polygon; `on_drawn` gets its GeoJSON."""
    area_map = Map(center=center, zoom=zoom, scroll_wheel_zoom=True)
    draw = DrawControl(rectangle=SHAPE_STYLE, polygon=SHAPE_STYLE, polyline={}, circlemarker={}, marker={})
    draw.on_draw(lambda control, action, geo_json: on_drawn(geo_json) if action == "created" else None)
    area_map.add(draw)
    return area_map


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
