"""The area of interest (AOI): where it comes from, what it contains, and its bounding box."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pm25.config import DEFAULT_BBOX, BBox, Settings
from pm25.errors import LearnerError
from pm25.files import write_atomically

CITY = "Berlin"  # where the default area and the bundled recording are
CITY_CENTRE = (52.5200, 13.4050)  # (lat, lon) of Berlin-Mitte, as gazetteers give the city's position
EARTH_RADIUS_KM = 6371.0

Ring = list[tuple[float, float]]  # (lon, lat) pairs, GeoJSON order


class AoiError(LearnerError, ValueError):
    """An area of interest that cannot be used, with what to do about it."""


def check_coordinates(lat: float, lon: float) -> None:
    """Reject a point that is not on Earth, and say when latitude and longitude look swapped."""
    for name, number in (("latitude", lat), ("longitude", lon)):
        if not isinstance(number, int | float) or not math.isfinite(number):
            raise AoiError(f"The {name} {number!r} is not a number. Write it in decimal degrees, e.g. 51.96.")
    if not -90 <= lat <= 90:
        swapped = " It looks like a longitude: did you swap latitude and longitude?" if -180 <= lat <= 180 else ""
        raise AoiError(f"The latitude {lat} is outside -90..90.{swapped}")
    if not -180 <= lon <= 180:
        raise AoiError(f"The longitude {lon} is outside -180..180.")


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@dataclass(frozen=True)
class Aoi:
    """A polygon (outer ring only) and where it came from, said in the learner's words."""

    ring: tuple[tuple[float, float], ...]
    source: str

    @classmethod
    def from_bbox(cls, bbox: BBox, source: str) -> Aoi:
        min_lon, min_lat, max_lon, max_lat = bbox
        corners = ((min_lon, min_lat), (max_lon, min_lat), (max_lon, max_lat), (min_lon, max_lat), (min_lon, min_lat))
        return cls(corners, source)

    @classmethod
    def from_geojson(cls, geojson: dict, source: str) -> Aoi:
        """The first polygon of a Feature, FeatureCollection or bare geometry (as DrawControl saves)."""
        geometry = _first_geometry(geojson)
        if not isinstance(geometry, dict) or geometry.get("type") != "Polygon" or not geometry.get("coordinates"):
            raise AoiError(
                f"The {source} holds no polygon. Draw a rectangle or polygon on the map "
                "(not a point or a line) and run the cell again."
            )
        try:
            ring = tuple((float(point[0]), float(point[1])) for point in geometry["coordinates"][0])
        except (TypeError, ValueError, IndexError, KeyError, OverflowError):  # e.g. a hand-edited aoi.geojson
            raise AoiError(
                f"The {source} has corners that are not [longitude, latitude] pairs of numbers. Draw it again."
            ) from None
        aoi = cls(ring, source)
        aoi.check()
        return aoi

    def check(self) -> None:
        """Reject an AOI with no surface: fewer than three corners or all on one line."""
        for lon, lat in self.ring:
            check_coordinates(lat, lon)
        if len(set(self.ring)) < 3 or self.area_km2() < 1e-6:
            raise AoiError(f"The {self.source} has no area (its corners lie on one point or one line). Draw it again.")

    @property
    def bbox(self) -> BBox:
        lons = [lon for lon, _ in self.ring]
        lats = [lat for _, lat in self.ring]
        return (min(lons), min(lats), max(lons), max(lats))

    def api_bbox(self) -> str:
        """The bbox as openSenseMap wants it: 'lngSW,latSW,lngNE,latNE'."""
        return ",".join(f"{number:.6f}" for number in self.bbox)

    def contains(self, lon: float, lat: float) -> bool:
        """Ray casting: count how often a ray to the east crosses the ring."""
        inside = False
        for (x1, y1), (x2, y2) in zip(self.ring, self.ring[1:] + self.ring[:1], strict=True):
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    def area_km2(self) -> float:
        """Approximate area (shoelace formula on an equirectangular projection): fine for a city."""
        mean_lat = math.radians(sum(lat for _, lat in self.ring) / len(self.ring))
        kx = math.radians(1) * EARTH_RADIUS_KM * math.cos(mean_lat)
        ky = math.radians(1) * EARTH_RADIUS_KM
        points = [(lon * kx, lat * ky) for lon, lat in self.ring]
        twice_area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True))
        return abs(twice_area) / 2

    def as_geojson(self) -> dict:
        geometry = {"type": "Polygon", "coordinates": [[list(point) for point in self.ring]]}
        return {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": geometry}]}


def _first_geometry(geojson: dict) -> dict | None:
    kind = geojson.get("type") if isinstance(geojson, dict) else None
    if kind == "FeatureCollection":
        features = geojson.get("features")
        if not isinstance(features, list) or not features:
            return None
        return _first_geometry(features[-1])  # the latest drawing wins
    if kind == "Feature":
        return geojson.get("geometry")
    return geojson if kind else None


def load_aoi(path: Path, source: str) -> Aoi:
    try:
        geojson = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AoiError(
            f"The {source} ({path}) could not be read: {error}. Delete it and draw the area again."
        ) from None
    return Aoi.from_geojson(geojson, source)


def save_aoi(aoi: Aoi, path: Path) -> None:
    write_atomically(Path(path), json.dumps(aoi.as_geojson(), indent=1))


def choose_aoi(settings: Settings, drawing: dict | None = None) -> Aoi:
    """PM25_BBOX when set; else a drawing made now; else the saved aoi.geojson; else the default area."""
    if settings.bbox:
        return Aoi.from_bbox(settings.bbox, "bounding box from PM25_BBOX")
    if drawing:
        return Aoi.from_geojson(drawing, "area you drew on the map")
    saved = settings.data_dir / "aoi.geojson"
    if saved.exists():
        return load_aoi(saved, f"area saved earlier in {saved.name}")
    return default_aoi()


def default_aoi() -> Aoi:
    """Central Berlin: the area of the bundled recording (config.DEFAULT_BBOX)."""
    return Aoi.from_bbox(DEFAULT_BBOX, f"default area, central {CITY} (you have not drawn one)")
