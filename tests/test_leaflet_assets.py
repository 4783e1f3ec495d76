"""Leaflet for the saved map comes from the installed jupyter-leaflet, with its licence, or a clear error."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError

import pytest

from pm25.errors import LearnerError
from pm25.views import leaflet_assets


def test_leaflet_script_starts_with_its_licence():
    script = leaflet_assets.leaflet_js()
    assert script.startswith("/* Leaflet 1.")
    assert "BSD 2-Clause License" in script.split("*/", 1)[0]  # the licence asks to keep its notice
    assert 'version="1.' in script  # and Leaflet itself follows


def test_leaflet_stylesheet_is_plain_css():
    css = leaflet_assets.leaflet_css()
    assert ".leaflet-container" in css and "\\n" not in css and "${" not in css


@pytest.mark.parametrize("asset", [leaflet_assets.leaflet_js, leaflet_assets.leaflet_css])
def test_missing_jupyter_leaflet_is_a_clear_error(monkeypatch, asset):
    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(leaflet_assets, "distribution", not_installed)
    with pytest.raises(LearnerError, match=r"jupyter-leaflet is not installed: .*requirements\.txt"):
        asset.__wrapped__()  # past the cache
