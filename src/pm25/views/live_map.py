"""Step 3's live map: each box's marker follows its window mean while the stream arrives.

An ipyleaflet map fitted to the boxes so that no marker hides under the legend, the zoom buttons or the
attribution, whatever the area; the colours are the PM2.5 levels of pm25.views.maps, a thick black ring marks a
box in alert, and a line at the bottom says whether the colours are still provisional.
"""

from __future__ import annotations

import math
from html import escape

from ipyleaflet import CircleMarker, Map, WidgetControl
from ipywidgets import HTML

from pm25.views.maps import (
    ALERT_OUTLINE,
    LEVELS,
    NO_DATA,
    NORMAL_OUTLINE,
    OUTLINE,
    legend_entries,
    level_colour,
    one_decimal,
)

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
            f"<b>{name}</b><br>{self.window_hours:g} h mean {one_decimal(mean)} µg/m³{' — ALERT' if alerting else ''}"
        )
