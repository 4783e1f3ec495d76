"""Labels of maps and plots follow the detector's window; colours come with a legend and shapes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest

from pm25 import maps, plots
from pm25.detector import Detector, naive_last_rows_alerts
from pm25.status import StatusTracker

matplotlib.use("Agg")
T0 = datetime(2023, 2, 26, tzinfo=UTC)
BOX = "5c2bca0e2c80100019218e6b"


def readings(values, box_name="Garten"):
    moments = [T0 + timedelta(hours=hour) for hour in range(len(values))]
    return [SimpleNamespace(box_id=BOX, box_name=box_name, timestamp=moment, value=value, lat=52.5, lon=13.4)
            for moment, value in zip(moments, values, strict=True)]  # fmt: skip


def saved_status_map(path, box_name="Garten"):
    detector, status = Detector(), StatusTracker()
    for r in readings([40] * 20, box_name):
        detector.process(r)
        status.update(r)
    return maps.status_map(status.table([], detector), path, detector.window_hours)


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


@pytest.mark.parametrize("window_hours", [24, 72])
def test_saved_status_map_shows_the_window_and_marks_alerts_with_a_ring(tmp_path, window_hours):
    detector, status = Detector(window_hours=window_hours, min_hours=18), StatusTracker()
    for r in readings([40] * 20):
        detector.process(r)
        status.update(r)
    path = tmp_path / "map.html"
    maps.status_map(status.table([], detector), path, window_hours)
    html = path.read_text()
    assert f"{window_hours} h mean PM2.5" in html and f"{window_hours} h mean: 40.0" in html
    assert maps.level_colour(40) in html
    assert '"weight": 4' in html and "alert (exceeded)" in html  # the ring, and its legend entry


@pytest.mark.parametrize("window_hours", [24, 72])
def test_live_map_popup_and_legend_name_the_window(window_hours):
    live = maps.LiveMap([], window_hours=window_hours)
    (reading,) = readings([20])
    live.update(reading, 20.0, alerting=True)
    marker = live.markers[BOX]
    assert f"{window_hours} h mean 20.0" in marker.popup.value
    assert (marker.color, marker.weight) == ("black", 4)
    (legend,) = [control for control in live.widget.controls if hasattr(control, "legend")]
    assert legend.title.startswith(f"{window_hours} h mean") and "no data" in legend.legend


def test_colour_scale_gets_darker_with_more_dust():
    def lightness(colour):
        red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    colours = [colour for _, colour, _ in maps.LEVELS]
    assert [lightness(c) for c in colours] == sorted((lightness(c) for c in colours), reverse=True)


@pytest.mark.parametrize("window_hours", [24, 72])
def test_rolling_mean_plot_title_names_the_window(tmp_path, window_hours):
    stream = readings([40] * 20)
    history = pd.DataFrame({"boxName": "Garten", "timestamp": [r.timestamp for r in stream], "mean": 40.0})
    alerts = pd.DataFrame([a.as_dict() for a in naive_last_rows_alerts(stream)])
    figure = plots.rolling_mean_plot(history, alerts, 15.0, window_hours, tmp_path / "plot.png")
    assert figure.texts[0].get_text().startswith(f"{window_hours} h mean of PM2.5")
    assert (tmp_path / "plot.png").exists()


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


def test_readings_plot_keeps_the_plot_wide_with_the_legend_of_48_boxes(recwarn):
    table = pd.DataFrame(
        [(f"senseBox number {box}", T0 + timedelta(hours=hour), float(hour)) for box in range(48) for hour in range(3)],
        columns=["boxName", "timestamp", "value"],
    )
    figure = plots.readings_plot(table)
    figure.canvas.draw()  # the layout is made when drawn
    assert figure.axes[0].get_position().width > 0.8  # the legend is under the plot, not squeezing it
    assert not [warning for warning in recwarn if "layout" in str(warning.message)]
