"""The saved status map without internet: its page, and the notebook's view of it, in headless Chromium.

The browser may open files and nothing else, as in a classroom without internet: every other request
(the map tiles) is refused, or, to stand in for the internet, answered with a made-up tile. The boxes
are those of the bundled Berlin recording, through the detector.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from PIL import Image
from playwright.sync_api import expect

from pm25.data.readings import RECORDING_CSV, parse_readings_csv, recording_readings
from pm25.rules.detector import Detector
from pm25.rules.status import StatusTracker
from pm25.views import maps
from pm25.views.status_map import SavedMap, status_map

MARKERS = ".leaflet-overlay-pane path.leaflet-interactive"  # Leaflet draws a CircleMarker as an SVG path


@pytest.fixture(scope="module")
def status_table():
    detector, status = Detector(), StatusTracker()
    for reading in parse_readings_csv(recording_readings().to_csv(index=False), RECORDING_CSV).readings:
        detector.process(reading)
        status.update(reading)
    table = status.table([], detector)
    assert (table["alert_state"] == "exceeded").any()  # so the alert ring is on the screenshot too
    return table


@pytest.fixture(scope="module")
def saved_map(status_table, tmp_path_factory) -> SavedMap:
    return status_map(status_table, tmp_path_factory.mktemp("output") / "sensor_status_map.html")


@pytest.fixture(scope="module")
def boxes(status_table) -> int:
    located = len(status_table.dropna(subset=["lat", "lon"]))
    assert located > 1
    return located


def new_page(browser, tile: bytes | None = None):
    """A page that may load files (and the notebook view's in-memory frame) but nothing from a network;
    with `tile`, every map tile request gets that image instead, as if the tile server answered."""
    context = browser.new_context(viewport={"width": 1000, "height": 700}, device_scale_factor=1)
    refused, errors = [], []

    def files_only(route):
        if urlsplit(route.request.url).scheme in ("file", "about", "data"):
            route.continue_()
        elif tile and urlsplit(route.request.url).hostname == "tile.openstreetmap.org":
            route.fulfill(body=tile, content_type="image/png")
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", files_only)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(error))
    page.set_default_timeout(20_000)
    return context, page, refused, errors


@pytest.fixture
def offline_page(browser):
    context, *page = new_page(browser)
    yield page
    context.close()


@pytest.fixture
def online_page(browser):
    tile = io.BytesIO()
    Image.new("RGB", (256, 256), "#aad3df").save(tile, format="PNG")
    context, *page = new_page(browser, tile.getvalue())
    yield page
    context.close()


def test_saved_status_map_shows_every_box_offline(saved_map, boxes, offline_page, screenshots):
    page, refused, errors = offline_page
    page.goto(saved_map.path.as_uri())
    expect(page.locator(MARKERS)).to_have_count(boxes)
    expect(page.locator("#no-tiles")).to_be_visible()  # says why the background is plain
    expect(page.get_by_text(maps.legend_entries(24)[0])).to_be_visible()
    page.screenshot(path=str(screenshots / "status_map_offline.png"))
    page.locator(MARKERS).first.click(force=True)  # force: a neighbour's tooltip may cover it
    expect(page.locator(".leaflet-popup-content")).to_contain_text("24 h mean:")
    assert errors == []
    assert refused and all(urlsplit(url).hostname == "tile.openstreetmap.org" for url in refused)


def test_notebook_view_of_the_status_map_shows_every_box_offline(saved_map, boxes, offline_page):
    page, refused, errors = offline_page
    page.set_content(saved_map._repr_html_())  # what JupyterLab puts into the output area
    frame = page.frame_locator("iframe")
    expect(frame.locator(MARKERS)).to_have_count(boxes)
    expect(frame.locator("#no-tiles")).to_be_visible()
    expect(page.get_by_text("sensor_status_map.html")).to_be_visible()
    assert errors == []
    assert all(urlsplit(url).hostname == "tile.openstreetmap.org" for url in refused)


def test_saved_status_map_shows_tiles_and_no_note_when_tiles_load(saved_map, boxes, online_page):
    page, refused, errors = online_page
    page.goto(saved_map.path.as_uri())
    expect(page.locator(MARKERS)).to_have_count(boxes)
    tiles = page.locator("img.leaflet-tile-loaded")
    expect(tiles.first).to_be_visible()
    expect(page.locator("#no-tiles")).to_be_hidden()
    assert errors == [] and refused == []
