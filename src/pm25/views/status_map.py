"""Step 3's status map: the final state of every box, saved as a stand-alone page that opens without internet.

A folium page that carries Leaflet itself; only the background tiles need the internet, and without them a line
says so. Each box is active, stale or inactive, coloured by the PM2.5 levels of pm25.views.maps, ringed when in
alert (dashed when pm25.rules.review finds the alert implausible).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

import folium
import pandas as pd
from branca.element import Element, MacroElement
from jinja2 import Template

from pm25.rules.status import mean_column
from pm25.views.leaflet_assets import leaflet_css, leaflet_js
from pm25.views.maps import ALERT_OUTLINE, NORMAL_OUTLINE, OUTLINE, legend_entries, level_colour, one_decimal

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
LEVELS_NOTE = (
    "Classes: the WHO 2021 guideline level and interim targets for a 24-hour mean of PM2.5, "
    "here applied to one low-cost sensor's rolling mean: a screening aid, not an official assessment."
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
        f"last value: {one_decimal(row.last_value)} µg/m³<br>{window_hours:g} h mean: {one_decimal(mean)} µg/m³{said}"
    )
    marker.add_child(_PopupAndTooltip(popup, f"{name} ({row.status})"))
    return marker


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
