"""Labels of maps and plots follow the detector's window; colours come with a legend and shapes."""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace

import matplotlib
import matplotlib.dates
import matplotlib.image
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from pm25.data.readings import recording_readings
from pm25.rules.detector import Detector, naive_last_rows_alerts
from pm25.rules.status import StatusTracker
from pm25.views import live_map, maps, plots
from pm25.views.status_map import IMPLAUSIBLE_OUTLINE, status_map

matplotlib.use("Agg")
T0 = datetime(2023, 2, 26, tzinfo=UTC)
BOX = "5c2bca0e2c80100019218e6b"


def readings(values, box_name="Garten"):
    moments = [T0 + timedelta(hours=hour) for hour in range(len(values))]
    return [
        SimpleNamespace(box_id=BOX, box_name=box_name, timestamp=moment, value=value, lat=52.5, lon=13.4)
        for moment, value in zip(moments, values, strict=True)
    ]


def saved_status_map(path, box_name="Garten"):
    detector, status = Detector(), StatusTracker()
    for r in readings([40] * 20, box_name):
        detector.process(r)
        status.update(r)
    return status_map(status.table([], detector), path, detector.window_hours)


class PageParts(HTMLParser):
    """What a page loads (script src, link href), its inline styles, and the srcdoc of its iframes."""

    def __init__(self, html: str):
        super().__init__()
        self.loads, self.styles, self.srcdocs, self._in_style = [], [], [], False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.loads += [attrs[name] for name in ("src", "href") if tag in ("script", "link") and name in attrs]
        self.srcdocs += [attrs["srcdoc"]] if tag == "iframe" and "srcdoc" in attrs else []
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        self.styles += [data] if self._in_style else []


def test_saved_status_map_loads_no_script_or_style_from_the_network(tmp_path):
    saved_status_map(tmp_path / "map.html")
    html = (tmp_path / "map.html").read_text()
    page = PageParts(html)
    assert page.loads == []  # Leaflet's script and stylesheet are inside the page
    assert "L.circleMarker(" in html and "Leaflet 1.9" in html
    stylesheets = "".join(page.styles)
    assert ".leaflet-pane" in stylesheets
    assert not re.search(r"@import|url\((?!data:|#)", stylesheets)
    assert re.findall(r"https?://\S*\{z\}", html) == ["https://tile.openstreetmap.org/{z}"]  # only the tiles


def test_status_map_in_a_notebook_is_the_saved_page_without_a_trust_hint(tmp_path):
    shown = saved_status_map(tmp_path / "map.html")._repr_html_()
    assert PageParts(shown).srcdocs == [(tmp_path / "map.html").read_text()]
    around_the_page = re.sub(r'srcdoc="[^"]*"', "", shown)
    assert "Trust" not in around_the_page  # JupyterLab 4 has no menu for folium's "Trust Notebook" hint
    assert "map.html" in around_the_page  # says where the page is saved


def test_status_map_shows_box_names_as_text_not_html(tmp_path):
    saved_status_map(tmp_path / "map.html", box_name="<img src=x onerror=alert(1)>")
    html = (tmp_path / "map.html").read_text()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "`" not in html.split("L.map(", 1)[1]  # no text in a JavaScript template literal, where ${...} would run


@pytest.mark.parametrize("window_hours", [24, 72])
def test_saved_status_map_shows_the_window_and_marks_alerts_with_a_ring(tmp_path, window_hours):
    detector, status = Detector(window_hours=window_hours, min_hours=18), StatusTracker()
    for r in readings([40] * 20):
        detector.process(r)
        status.update(r)
    path = tmp_path / "map.html"
    status_map(status.table([], detector), path, window_hours)
    html = path.read_text()
    assert f"{window_hours} h mean PM2.5" in html and f"{window_hours} h mean: 40.0" in html
    assert maps.level_colour(40) in html
    assert '"weight": 4' in html and "alert (exceeded)" in html  # the ring, and its legend entry


def test_saved_status_map_is_a_folium_page_whose_legend_names_the_who_interim_targets(tmp_path):
    html = saved_status_map(tmp_path / "map.html").page
    assert 'class="folium-map"' in html
    assert "interim target 4" in html and "WHO 2021 guideline level and interim targets" in html


def test_saved_status_map_marks_an_implausible_alert_with_a_dashed_ring(tmp_path):
    detector, status = Detector(), StatusTracker()
    for r in readings([40] * 20):
        detector.process(r)
        status.update(r)
    table = status.table([], detector)
    review = pd.DataFrame(
        {
            "boxId": [BOX],
            "timestamp": ["2023-02-26T18:00:00Z"],
            "event": ["exceeded"],
            "plausible": pd.array([False], dtype="boolean"),
        }
    )
    plain = status_map(table, tmp_path / "plain.html").page
    doubted = status_map(table, tmp_path / "doubted.html", review=review).page
    dashed = f'"dashArray": "{IMPLAUSIBLE_OUTLINE["dashArray"]}"'
    assert dashed not in plain and "implausible" not in plain
    assert dashed in doubted and '"weight": 4' in doubted
    assert "alert, implausible (out of line with the network)" in doubted  # its legend entry
    plausible = review.assign(plausible=pd.array([True], dtype="boolean"))
    assert dashed not in status_map(table, tmp_path / "trusted.html", review=plausible).page


@pytest.mark.parametrize("window_hours", [24, 72])
def test_live_map_popup_and_legend_name_the_window(window_hours):
    live = live_map.LiveMap([], window_hours=window_hours)
    (reading,) = readings([20])
    live.update(reading, 20.0, alerting=True)
    marker = live.markers[BOX]
    assert f"{window_hours} h mean 20.0" in marker.popup.value
    assert (marker.color, marker.weight) == ("black", 4)
    legend = live.legend.widget.value
    assert f"<summary><b>{window_hours} h mean PM2.5" in legend  # a click on the title folds the legend
    assert "no data" in legend and "ring: alert" in legend


def test_live_map_says_it_is_provisional_until_told_the_stream_ended():
    live = live_map.LiveMap([])
    (reading,) = readings([20])
    live.update(reading, 20.0, alerting=False)
    note = next(control for control in live.widget.controls if getattr(control, "widget", None) is live.note)
    assert note.position == "bottomleft" and "Provisional" in live.note.value
    live.final()
    assert "Final" in live.note.value and "Provisional" not in live.note.value


def box_features(locations):
    return [
        {"geometry": {"coordinates": [lon, lat]}, "properties": {"boxId": f"box{i}", "name": f"Box {i}"}}
        for i, (lat, lon) in enumerate(locations)
    ]


def on_screen(live, lat, lon, width, zoom=None):
    """Where a marker is drawn in a map of this width (pixels from its top-left), by Web Mercator."""

    def world(lat, lon):
        size = 256 * 2 ** (live.widget.zoom if zoom is None else zoom)
        return (lon + 180) / 360 * size, (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * size

    x, y = world(lat, lon)
    center_x, center_y = world(*live.widget.center)
    return width / 2 + x - center_x, live_map.MAP_HEIGHT / 2 + y - center_y


def berlin_boxes():
    table = recording_readings().drop_duplicates("boxId")
    return list(zip(table["lat"], table["lon"], strict=True))


def across_germany():
    rng = random.Random(13)
    return [(rng.uniform(47.3, 55.0), rng.uniform(5.9, 15.0)) for _ in range(300)]


AREAS = {
    "berlin recording": berlin_boxes,
    "one box": lambda: [(48.137, 11.575)],
    "300 boxes across Germany": across_germany,
    "a long thin valley": lambda: [(46.0 + i / 100, 7.5) for i in range(20)],
}
LEGEND_BOTTOM = 10 + 59  # measured in Chromium: Leaflet's 10 px margin, then the open legend
MARKER_RADIUS = 9 + 4 // 2  # radius and half the alert ring


@pytest.mark.parametrize("area", AREAS)
@pytest.mark.parametrize("width", [live_map.MIN_MAP_WIDTH, 1000])
def test_live_map_shows_every_box_below_the_legend_and_inside_the_map(area, width):
    locations = AREAS[area]()
    live = live_map.LiveMap(box_features(locations))
    assert live.legend.position == "topright" and live.widget.layout.height == f"{live_map.MAP_HEIGHT}px"
    for lat, lon in locations:
        x, y = on_screen(live, lat, lon, width)
        assert MARKER_RADIUS + 30 <= x <= width - MARKER_RADIUS - 30  # clear of the zoom buttons, the edges
        assert LEGEND_BOTTOM + MARKER_RADIUS <= y <= live_map.MAP_HEIGHT - MARKER_RADIUS - 18  # and the attribution


@pytest.mark.parametrize("area", AREAS)
def test_live_map_zooms_in_as_far_as_the_boxes_allow(area):
    locations = AREAS[area]()
    live = live_map.LiveMap(box_features(locations))
    if live.widget.zoom < live_map.MAX_ZOOM:
        closer = [
            on_screen(live, lat, lon, live_map.MIN_MAP_WIDTH, zoom=live.widget.zoom + 1) for lat, lon in locations
        ]
        xs, ys = zip(*closer, strict=True)
        free = live_map.FREE_AREA
        assert max(xs) - min(xs) > free["right"] - free["left"] or max(ys) - min(ys) > free["bottom"] - free["top"]


def test_colour_scale_gets_darker_with_more_dust():
    def lightness(colour):
        red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    colours = [colour for _, colour, _ in maps.LEVELS]
    assert [lightness(c) for c in colours] == sorted((lightness(c) for c in colours), reverse=True)


def window_history(boxes, hours=72):
    """A history table as step 3 builds it: each box's window mean after each reading, 4 readings an hour."""
    return pd.DataFrame(
        [
            (f"senseBox {box:03d}", T0 + timedelta(minutes=15 * quarter), float(box % 40 + quarter % 7))
            for box in range(boxes)
            for quarter in range(4 * hours)
        ],
        columns=["boxName", "timestamp", "mean"],
    )


def alerts_of(*events):
    return pd.DataFrame(
        [(box_name, event, T0 + timedelta(hours=hour)) for box_name, event, hour in events],
        columns=["boxName", "event", "timestamp"],
    )


@pytest.mark.parametrize("boxes", [3, 48, 300])
def test_rolling_mean_plot_stays_a_readable_size_for_any_number_of_boxes(tmp_path, boxes):
    path = tmp_path / "plot.png"
    figure = plots.rolling_mean_plot(window_history(boxes), alerts_of(), 15.0, 24, path)
    height, width, _ = matplotlib.image.imread(path).shape
    assert 400 <= height <= 2000 and width <= 1200
    (heatmap,) = figure.axes[0].collections
    assert heatmap.get_array().shape == (boxes, 72)  # every box a row, every hour a column
    names = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert len(names) == boxes if boxes <= 48 else boxes / 5 <= len(names) < boxes  # names that fit, no overlap


@pytest.mark.parametrize("window_hours", [24, 72])
def test_rolling_mean_plot_title_and_colour_bar_name_the_window_and_threshold(tmp_path, window_hours):
    stream = readings([40] * 20)
    history = pd.DataFrame({"boxName": "Garten", "timestamp": [r.timestamp for r in stream], "mean": 40.0})
    alerts = pd.DataFrame([a.as_dict() for a in naive_last_rows_alerts(stream)])
    figure = plots.rolling_mean_plot(history, alerts, 20.0, window_hours, tmp_path / "plot.png")
    assert figure.texts[0].get_text().startswith(f"{window_hours} h mean of PM2.5")
    colour_bar = figure.axes[1]
    assert colour_bar.get_ylabel().startswith(f"{window_hours} h mean PM2.5")
    assert "threshold 20" in [label.get_text() for label in colour_bar.get_yticklabels()]
    assert (tmp_path / "plot.png").exists()


def alert_marks(figure):
    """(row's box name, start, end) of each hatched, outlined rectangle: the time a box was in alert."""
    axis = figure.axes[0]
    names = {
        round(tick - 0.5): label.get_text()
        for tick, label in zip(axis.get_yticks(), axis.get_yticklabels(), strict=True)
    }
    marks = [patch for patch in axis.patches if patch.get_hatch() and patch.get_edgecolor()[:3] == (0, 0, 0)]
    return [
        (names[round(mark.get_y())], *matplotlib.dates.num2date([mark.get_x(), mark.get_x() + mark.get_width()]))
        for mark in marks
    ]


def test_rolling_mean_plot_marks_alerts_without_colour_and_puts_their_box_first(tmp_path):
    alerts = alerts_of(
        ("senseBox 001", "exceeded", 30), ("senseBox 001", "resolved", 50), ("senseBox 002", "exceeded", 60)
    )
    figure = plots.rolling_mean_plot(window_history(5), alerts, 15.0, 24, tmp_path / "plot.png")
    plot_end = T0 + timedelta(hours=72)
    assert alert_marks(figure) == [
        ("senseBox 001", T0 + timedelta(hours=30), T0 + timedelta(hours=50)),
        ("senseBox 002", T0 + timedelta(hours=60), plot_end),  # still in alert at the end
    ]
    assert figure.axes[0].get_yticklabels()[0].get_text() == "senseBox 001"  # the longest in alert on top


def test_rolling_mean_plot_marks_an_implausible_alert_otherwise(tmp_path):
    alerts = alerts_of(("senseBox 001", "exceeded", 30), ("senseBox 002", "exceeded", 60))
    alerts["plausible"] = pd.array([False, pd.NA], dtype="boolean")  # 002: no network, not judged
    figure = plots.rolling_mean_plot(window_history(5), alerts, 15.0, 24, tmp_path / "plot.png")
    marks = {mark.get_y(): (mark.get_hatch(), mark.get_linestyle()) for mark in figure.axes[0].patches}
    names = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert marks[names.index("senseBox 001")] == ("xxx", "--")
    assert marks[names.index("senseBox 002")] == ("///", "-")
    assert "in alert, implausible (out of line with the network)" in [
        text.get_text() for text in figure.legends[0].get_texts()
    ]


def test_readings_plot_tells_boxes_apart_without_colour():
    table = pd.DataFrame(
        [(f"Box {box}", T0 + timedelta(hours=hour), float(box + hour)) for box in range(10) for hour in range(12)],
        columns=["boxName", "timestamp", "value"],
    )
    figure = plots.readings_plot(table)
    lines = [line for line in figure.axes[0].get_lines() if line.get_label().startswith("Box")]
    assert len(lines) == 10
    shapes = {(line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(shapes) == 10  # each box has its own line style and marker, not only its own colour


def test_readings_plot_draws_no_box_like_the_threshold():
    table = pd.DataFrame(
        [(f"Box {box}", T0 + timedelta(hours=hour), float(box + hour)) for box in range(48) for hour in range(3)],
        columns=["boxName", "timestamp", "value"],
    )
    lines = plots.readings_plot(table).axes[0].get_lines()
    threshold = next(line for line in lines if "µg/m³" in line.get_label())
    looks = {(to_hex(line.get_color()), line.get_linestyle()) for line in lines if line is not threshold}
    assert (to_hex(threshold.get_color()), threshold.get_linestyle()) not in looks


def test_readings_plot_keeps_the_plot_wide_with_the_legend_of_48_boxes(recwarn):
    table = pd.DataFrame(
        [(f"senseBox number {box}", T0 + timedelta(hours=hour), float(hour)) for box in range(48) for hour in range(3)],
        columns=["boxName", "timestamp", "value"],
    )
    figure = plots.readings_plot(table)
    figure.canvas.draw()  # the layout is made when drawn
    assert figure.axes[0].get_position().width > 0.8  # the legend is under the plot, not squeezing it
    assert not [warning for warning in recwarn if "layout" in str(warning.message)]


def test_readings_plot_shades_the_humid_hours_only_when_given():
    table = pd.DataFrame(
        [(f"Box {box}", T0 + timedelta(hours=hour), float(box + hour)) for box in range(3) for hour in range(6)],
        columns=["boxName", "timestamp", "value"],
    )
    humid = pd.DatetimeIndex([T0 + timedelta(hours=1), T0 + timedelta(hours=2)])
    shaded = plots.readings_plot(table, humid_hours=humid).axes[0].patches
    assert len(shaded) == 2
    assert shaded[0].get_label() == "median humidity above 80 % RH"
    assert not plots.readings_plot(table).axes[0].patches
    assert not plots.readings_plot(table, humid_hours=pd.DatetimeIndex([])).axes[0].patches
