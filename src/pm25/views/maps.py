"""Maps for the notebooks: ipyleaflet for live, interactive maps; folium for the saved one, a stand-alone page."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

import folium
import pandas as pd
from branca.element import Element, MacroElement
from ipyleaflet import CircleMarker, DrawControl, GeoJSON, LayersControl, Map, WidgetControl
from ipywidgets import HTML, Output, VBox
from jinja2 import Template

from pm25.data.geo import Aoi, AoiError, load_aoi, save_aoi
from pm25.rules.status import mean_column
from pm25.views.leaflet_assets import leaflet_css, leaflet_js

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
LEVELS_NOTE = (
    "Classes: the WHO 2021 guideline level and interim targets for a 24-hour mean of PM2.5, "
    "here applied to one low-cost sensor's rolling mean: a screening aid, not an official assessment."
)
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
TILES = {
    "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "options": {
        "maxZoom": 19,
        "attribution": '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>',
    },
}
NO_TILES_NOTE = "No map tiles: they need internet. The markers are on a plain background."
# An alert of a box out of line with its neighbours (pm25.rules.review): a dashed ring instead of a solid one.
IMPLAUSIBLE_OUTLINE = {"color": "black", "weight": 4, "dashArray": "6 4"}


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


# The live map's view: ipyleaflet's 400 px height (set, so the fit holds) and a notebook at least 600 px wide.
# The boxes are fitted into the part of the map that the legend (top right), the zoom buttons (top left)
# and the attribution (bottom) leave free, so no marker hides under them whatever the area.
MAP_HEIGHT = 400
MIN_MAP_WIDTH = 600
FREE_AREA = {"left": 50, "top": 90, "right": MIN_MAP_WIDTH - 50, "bottom": MAP_HEIGHT - 30}  # pixels
MAX_ZOOM = 13
TILE_SIZE = 256


def world_pixel(lat: float, lon: float, zoom: float) -> tuple[float, float]:
    """Web Mercator: where a point lies, in pixels from the world's top-left corner, at this zoom."""
    size = TILE_SIZE * 2**zoom
    sin_lat = math.sin(math.radians(lat))
    return (lon + 180) / 360 * size, (0.5 - math.log((1 + sin_lat) / (1 - sin_lat)) / (4 * math.pi)) * size


def world_location(x: float, y: float, zoom: float) -> tuple[float, float]:
    """The inverse of world_pixel: (lat, lon) of a pixel."""
    size = TILE_SIZE * 2**zoom
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / size)))), x / size * 360 - 180


def fitted_view(locations: list[tuple[float, float]]) -> tuple[tuple[float, float], int]:
    """(center, zoom) that shows every (lat, lon) inside FREE_AREA, as close as MAX_ZOOM allows."""
    xs, ys = zip(*(world_pixel(lat, lon, 0) for lat, lon in locations), strict=True)
    width, height = FREE_AREA["right"] - FREE_AREA["left"], FREE_AREA["bottom"] - FREE_AREA["top"]
    scale = min(width / max(max(xs) - min(xs), 1e-12), height / max(max(ys) - min(ys), 1e-12))
    zoom = max(1, min(MAX_ZOOM, math.floor(math.log2(scale))))
    # The free area's middle is below the map's centre (the legend takes the top): shift the centre up.
    below_centre = (FREE_AREA["top"] + FREE_AREA["bottom"]) / 2 - MAP_HEIGHT / 2
    middle_x, middle_y = (max(xs) + min(xs)) / 2 * 2**zoom, (max(ys) + min(ys)) / 2 * 2**zoom
    return world_location(middle_x, middle_y - below_centre, zoom), zoom


def compact_legend(window_hours: float) -> HTML:
    """The colour scale as one row of swatches under its title, collapsible (click the title)."""
    title, entries = legend_entries(window_hours)
    swatches = "".join(
        f'<div style="text-align:center;width:46px"><div style="background:{colour};border:1px solid {OUTLINE};'
        f'height:10px"></div>{escape(label.split(" (")[0])}</div>'
        for label, colour in entries.items()
    )
    return HTML(
        '<details open style="background:white;padding:2px 6px;font:11px/1.3 sans-serif;border-radius:4px">'
        f"<summary><b>{title}</b></summary><div style='display:flex;gap:2px'>{swatches}</div>"
        f"<div>{LEVELS[0][0]:g}: WHO guideline level · {', '.join(f'{upper:g}' for upper, _, _ in LEVELS[1:-1])}: "
        "WHO interim targets · thick black ring: alert</div></details>"
    )


PROVISIONAL = "<b>Provisional</b>: readings are still arriving, the colours may change."
FINAL = "<b>Final</b>: every reading sent has been processed."


class LiveMap:
    """An ipyleaflet map whose markers follow each box's window mean while the stream arrives."""

    def __init__(self, boxes: list[dict], window_hours: float = 24):
        locations = [(lat, lon) for lon, lat in (feature["geometry"]["coordinates"] for feature in boxes)]
        center, zoom = fitted_view(locations) if locations else ((52.5200, 13.4050), 11)
        self.window_hours = window_hours
        self.widget = Map(center=center, zoom=zoom, scroll_wheel_zoom=True, layout={"height": f"{MAP_HEIGHT}px"})
        self.legend = WidgetControl(widget=compact_legend(window_hours), position="topright")
        self.widget.add(self.legend)
        # In the bottom strip FREE_AREA keeps clear of markers: what the colours are worth while readings arrive.
        self.note = HTML(PROVISIONAL, layout={"margin": "0", "padding": "0 6px"})
        self.widget.add(WidgetControl(widget=self.note, position="bottomleft"))
        self.markers: dict[str, CircleMarker] = {}
        for feature in boxes:
            lon, lat = feature["geometry"]["coordinates"]
            self._add(feature["properties"]["boxId"], feature["properties"]["name"], lat, lon)

    def _add(self, box_id: str, name: str, lat: float, lon: float) -> CircleMarker:
        marker = CircleMarker(
            location=(lat, lon), radius=9, fill_color=NO_DATA, fill_opacity=0.9, name=name, **NORMAL_OUTLINE
        )
        marker.popup = HTML(f"<b>{name}</b><br>no reading yet")
        self.markers[box_id] = marker
        self.widget.add(marker)
        return marker

    def final(self) -> None:
        """Every reading sent has been processed: the colours are the stream's result, no longer provisional."""
        self.note.value = FINAL

    def update(self, reading, mean: float, alerting: bool) -> None:
        """Colour the reading's box by its window mean; a thick black ring while it is 'exceeded'."""
        name = reading.box_name
        marker = self.markers.get(reading.box_id) or self._add(reading.box_id, name, reading.lat, reading.lon)
        marker.fill_color = level_colour(mean)
        outline = ALERT_OUTLINE if alerting else NORMAL_OUTLINE
        marker.color, marker.weight = outline["color"], outline["weight"]
        marker.popup.value = (
            f"<b>{name}</b><br>{self.window_hours:g} h mean {_number(mean)} µg/m³{' — ALERT' if alerting else ''}"
        )


def status_map(
    status: pd.DataFrame, path: Path, window_hours: float = 24, review: pd.DataFrame | None = None
) -> SavedMap:
    """The final state of every box, saved as a stand-alone folium page: active, stale or inactive.

    `status` is StatusTracker.table(boxes, detector); its mean column is the one of `window_hours`. With
    `review` (pm25.rules.review.review_alerts), a box whose latest alert is implausible gets a dashed ring. The
    page carries Leaflet itself, so its markers show without internet; only the background tiles need it
    (without them, the markers stand on a plain background and a line says why).
    """
    located = status.dropna(subset=["lat", "lon"])
    means = located.get(mean_column(window_hours), pd.Series(float("nan"), index=located.index))
    alerting = located.get("alert_state", pd.Series("", index=located.index)) == "exceeded"
    doubtful = _implausible_boxes(review)
    page_map = _offline_map()
    tiles = folium.TileLayer(TILES["url"], attr=TILES["options"]["attribution"], max_zoom=TILES["options"]["maxZoom"])
    tiles.add_to(page_map)
    page_map.add_child(_TileErrorNote(tiles))
    for row, mean, alert in zip(located.itertuples(), means, alerting, strict=True):
        _status_marker(row, mean, alert, alert and row.boxId in doubtful, window_hours).add_to(page_map)
    if len(located):
        corners = [[located["lat"].min(), located["lon"].min()], [located["lat"].max(), located["lon"].max()]]
        page_map.fit_bounds(corners, padding=(30, 30), max_zoom=13)
    root = page_map.get_root()
    root.title = "PM2.5 sensor status"
    root.html.add_child(Element(_legend(window_hours, bool(doubtful))))
    root.html.add_child(Element(f'<div id="no-tiles" style="{NOTE_STYLE}" hidden>{NO_TILES_NOTE}</div>'))
    page = root.render()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return SavedMap(path, page)


NOTE_STYLE = (
    "position:fixed;top:8px;left:50%;transform:translateX(-50%);z-index:1000;background:white;"
    "padding:4px 8px;border:1px solid #999;font:12px sans-serif"
)


def _offline_map() -> folium.Map:
    """A folium map whose page holds Leaflet's script and stylesheet instead of loading them from a CDN
    (folium's other defaults, jQuery and Bootstrap, serve its Popup and icons, which this page does not use)."""
    page_map = folium.Map(tiles=None, location=(0, 0), zoom_start=1)
    page_map.default_js, page_map.default_css = [], []
    header = page_map.get_root().header
    header.add_child(Element(f"<style>{leaflet_css()}</style>"), name="leaflet_css")
    header.add_child(Element(f"<script>{leaflet_js()}</script>"), name="leaflet_js")
    return page_map


class _TileErrorNote(MacroElement):
    """Shows the page's no-tiles note when a map tile fails to load (no internet)."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        {{ this.tiles.get_name() }}.on("tileerror", () => { document.getElementById("no-tiles").hidden = false; });
        {% endmacro %}"""
    )

    def __init__(self, tiles: folium.TileLayer):
        super().__init__()
        self.tiles = tiles


class _PopupAndTooltip(MacroElement):
    """A marker's popup and tooltip as JSON strings: folium's own Popup builds its content with jQuery, which
    the offline page does not carry, and its Tooltip puts the text into JavaScript unescaped."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.bindPopup({{ this.popup }}, {maxWidth: 250}).bindTooltip({{ this.tooltip }});
        {% endmacro %}"""
    )

    def __init__(self, popup: str, tooltip: str):
        super().__init__()
        self.popup, self.tooltip = (json.dumps(text).replace("</", "<\\/") for text in (popup, tooltip))


def _implausible_boxes(review: pd.DataFrame | None) -> set[str]:
    """Boxes whose latest alert the review found implausible."""
    if review is None or review.empty:
        return set()
    latest = review.sort_values("timestamp").groupby("boxId").last()
    return set(latest.index[(latest["event"] == "exceeded") & (latest["plausible"] == False)])  # noqa: E712 (NA)


@dataclass(frozen=True)
class SavedMap:
    """A saved map page; a notebook shows it in a frame, with where it is saved."""

    path: Path
    page: str

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{escape(self.page)}" style="width:100%;height:480px;border:1px solid #ccc"></iframe>'
            f"<div>Saved as {escape(str(self.path))}: it opens in any browser, with or without internet.</div>"
        )


def _status_marker(row, mean: float, alert: bool, implausible: bool, window_hours: float) -> folium.CircleMarker:
    """One box: where it is, how it looks, and what its popup and tooltip say."""
    name = escape(row.boxName)
    style = {
        "active": {"radius": 10, "fill_opacity": 0.9},
        "stale": {"radius": 8, "fill_opacity": 0.5, "dash_array": "4"},
        "inactive": {"radius": 6, "fill_opacity": 0.3, "dash_array": "2"},
    }[row.status]
    outline = IMPLAUSIBLE_OUTLINE if implausible else ALERT_OUTLINE if alert else NORMAL_OUTLINE
    style = {**style, "color": outline["color"], "weight": outline["weight"]}
    if "dashArray" in outline:
        style["dash_array"] = outline["dashArray"]
    said = "<br><b>ALERT</b>" if alert else ""
    if implausible:
        said += " (implausible: out of line with the network)"
    marker = folium.CircleMarker((row.lat, row.lon), fill=True, fill_color=level_colour(mean), **style)
    popup = (
        f"<b>{name}</b><br>status: {row.status} ({row.quality})<br>"
        f"last value: {_number(row.last_value)} µg/m³<br>{window_hours:g} h mean: {_number(mean)} µg/m³{said}"
    )
    marker.add_child(_PopupAndTooltip(popup, f"{name} ({row.status})"))
    return marker


def _number(value) -> str:
    return "–" if value is None or value != value else f"{value:.1f}"


def _legend(window_hours: float, implausible: bool = False) -> str:
    title, entries = legend_entries(window_hours)
    swatches = "".join(
        f'<div><span style="background:{colour};border:1px solid {OUTLINE};width:12px;height:12px;'
        f'display:inline-block"></span> {label}</div>'
        for label, colour in entries.items()
    )
    ring = '<span style="border:4px {} black;border-radius:50%;width:8px;height:8px;display:inline-block"></span>'
    doubtful = f"<div>{ring.format('dashed')} alert, implausible (out of line with the network)</div>"
    return (
        '<div style="position:fixed;bottom:20px;left:20px;z-index:9999;background:white;padding:8px;max-width:260px;'
        f'border:1px solid #999;font:12px sans-serif"><b>{title}</b>{swatches}'
        f"<div>{ring.format('solid')} alert (exceeded)</div>{doubtful if implausible else ''}"
        f"<div>solid: active · dashed: stale · faint: inactive</div><div style='color:#555'>{LEVELS_NOTE}</div></div>"
    )
