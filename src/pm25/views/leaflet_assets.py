"""Leaflet's JavaScript and CSS, for the saved folium map page, which must work without internet.

They are read from the installed jupyter-leaflet (ipyleaflet's front end, pinned in requirements.txt),
whose JupyterLab extension bundles Leaflet with webpack and lists its licence (BSD-2-Clause, which the
page keeps in a comment). Nothing is downloaded and no copy lives in this repository.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from pm25.errors import LearnerError

PACKAGE = "jupyter-leaflet"
# Leaflet's own stylesheet, as webpack's css-loader embeds it: a JavaScript template literal.
LEAFLET_CSS = re.compile(r"`(/\* required styles \*/(?:\\n)+\.leaflet-pane(?:[^`\\]|\\.)*)`")
# A webpack chunk hands its modules to CHUNKS.push(); this push() runs them at once, and Leaflet's module
# sets window.L itself (it needs no other module).
CHUNKS = "self.webpackChunkjupyter_leaflet"
RUN_CHUNK = (
    f"{CHUNKS} = {{push([, modules]) {{"
    " for (const id in modules) { const module = {exports: {}}; modules[id](module, module.exports); } }};"
)


class LeafletNotFound(LearnerError):
    """The installed jupyter-leaflet is not the one pm25 knows how to take Leaflet from."""


@cache
def leaflet_js() -> str:
    """Leaflet as one inline script (its licence first): it defines the global `L`."""
    listed = [json.loads(file.read_text())["packages"] for file in _bundle_files("third-party-licenses.json")]
    leaflet: dict = next((package for packages in listed for package in packages if package["name"] == "leaflet"), {})
    for notice in _bundle_files("*.js.LICENSE.txt") if leaflet else []:
        if f"Leaflet {leaflet['versionInfo']}, a JS library" in notice.read_text(encoding="utf-8"):
            chunk = notice.with_name(notice.name.removesuffix(".LICENSE.txt")).read_text(encoding="utf-8")
            if f"({CHUNKS}={CHUNKS}||[]).push(" not in chunk:
                break
            return f"/* Leaflet {leaflet['versionInfo']}\n{leaflet['extractedText']}*/\n{RUN_CHUNK}\n{chunk}"
    raise LeafletNotFound(f"{PACKAGE} {_version()} has no Leaflet bundle where pm25 expects it: {_advice()}")


@cache
def leaflet_css() -> str:
    """Leaflet's stylesheet; its images (layer switcher, default pin) are left out: the page draws circles."""
    for chunk in _bundle_files("*.js"):
        found = LEAFLET_CSS.search(chunk.read_text(encoding="utf-8"))
        if found:
            css = re.sub(r"\$\{\w+\}", "data:,", found.group(1))  # image URLs: an empty image instead
            return re.sub(r"\\(.)", lambda escape: {"n": "\n", "t": "\t"}.get(escape[1], escape[1]), css)
    raise LeafletNotFound(f"{PACKAGE} {_version()} has no Leaflet stylesheet where pm25 expects it: {_advice()}")


def _bundle_files(pattern: str) -> list[Path]:
    try:
        files = distribution(PACKAGE).files or []
    except PackageNotFoundError:
        raise LeafletNotFound(f"{PACKAGE} is not installed: {_advice()}") from None
    static = [file for file in files if "labextensions/jupyter-leaflet/static/" in file.as_posix()]
    return sorted(Path(file.locate()) for file in static if Path(file.name).match(pattern))


def _version() -> str:
    return distribution(PACKAGE).version


def _advice() -> str:
    return "install the versions in requirements.txt (pip install -r requirements.txt)."
