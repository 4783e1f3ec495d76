"""Maps for the notebooks: ipyleaflet for live, interactive maps; folium for a map saved as HTML."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import folium
import pandas as pd
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


class LiveMap:
    """An ipyleaflet map whose markers follow each box's rolling mean while the stream arrives."""

    def __init__(self, boxes: list[dict]):
        coordinates = [feature["geometry"]["coordinates"] for feature in boxes] or [[7.6261, 51.9607]]
        center = (
            sum(lat for _, lat in coordinates) / len(coordinates),
            sum(lon for lon, _ in coordinates) / len(coordinates),
        )
        self.widget = Map(center=center, zoom=11, scroll_wheel_zoom=True)
        self.markers: dict[str, CircleMarker] = {}
        for feature in boxes:
            lon, lat = feature["geometry"]["coordinates"]
            self._add(feature["properties"]["boxId"], feature["properties"]["name"], lat, lon)

    def _add(self, box_id: str, name: str, lat: float, lon: float) -> CircleMarker:
        marker = CircleMarker(location=(lat, lon), radius=9, color="white", weight=1, fill_color=NO_DATA,
                              fill_opacity=0.9, name=name)  # fmt: skip
        marker.popup = HTML(f"<b>{name}</b><br>no reading yet")
        self.markers[box_id] = marker
        self.widget.add(marker)
        return marker

    def update(self, reading, mean: float, alerting: bool) -> None:
        """Colour the reading's box by its 72 h mean; a thick red ring while it is in an 'exceeded' state."""
        name = reading.box_name
        marker = self.markers.get(reading.box_id) or self._add(reading.box_id, name, reading.lat, reading.lon)
        marker.fill_color = level_colour(mean)
        marker.color, marker.weight = ("#d00000", 4) if alerting else ("white", 1)
        marker.popup.value = f"<b>{name}</b><br>72 h mean {mean:.1f} µg/m³{' — ALERT' if alerting else ''}"


def status_map(status: pd.DataFrame, path: Path) -> folium.Map:
    """The final state of every box, saved as a stand-alone HTML page: active, stale or inactive."""
    located = status.dropna(subset=["lat", "lon"])
    center = [located["lat"].mean(), located["lon"].mean()] if len(located) else [51.9607, 7.6261]
    status_map = folium.Map(location=center, zoom_start=11, tiles="OpenStreetMap")
    for row in located.itertuples():
        mean = getattr(row, "mean_72h", float("nan"))
        style = {"active": dict(radius=10, fill_opacity=0.9, dash_array=None),
                 "stale": dict(radius=8, fill_opacity=0.5, dash_array="4"),
                 "inactive": dict(radius=6, fill_opacity=0.3, dash_array="2")}[row.status]  # fmt: skip
        popup = (
            f"<b>{row.boxName}</b><br>status: {row.status} ({row.quality})<br>"
            f"last value: {_number(row.last_value)} µg/m³<br>72 h mean: {_number(mean)} µg/m³"
        )
        folium.CircleMarker(
            location=[row.lat, row.lon], color="#333333", weight=1, fill=True, fill_color=level_colour(mean),
            popup=folium.Popup(popup, max_width=250), tooltip=f"{row.boxName} ({row.status})", **style,
        ).add_to(status_map)  # fmt: skip
    status_map.get_root().html.add_child(folium.Element(_legend()))
    path.parent.mkdir(parents=True, exist_ok=True)
    status_map.save(str(path))
    return status_map


def _number(value) -> str:
    return "–" if value is None or value != value else f"{value:.1f}"


def _legend() -> str:
    swatches = "".join(
        f'<div><span style="background:{colour};width:12px;height:12px;display:inline-block"></span> {label}</div>'
        for _, colour, label in LEVELS
    )
    return (
        '<div style="position:fixed;bottom:20px;left:20px;z-index:9999;background:white;padding:8px;'
        'border:1px solid #999;font:12px sans-serif"><b>72 h mean PM2.5 (µg/m³)</b>'
        f'{swatches}<div><span style="background:{NO_DATA};width:12px;height:12px;display:inline-block"></span>'
        " no data</div><div>solid: active · dashed: stale · faint: inactive</div></div>"
    )
