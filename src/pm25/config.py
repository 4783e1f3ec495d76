"""One configuration for notebooks, tests and the Docker stack, read from the environment.

Every setting has a default that runs the tutorial on the bundled recording: central Berlin,
26 February to 1 March 2023, raw measurements.
A value that cannot be used fails at once, naming the variable, the value and the form expected.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pm25.errors import LearnerError

REPO_DIR = Path(__file__).resolve().parents[2]
BUNDLED_DATA_DIR = REPO_DIR / "data"

DEFAULT_BOOTSTRAP_SERVERS = "localhost:9092"
DEFAULT_API_URL = "https://api.opensensemap.org"
# The area and days of data/berlin_pm25_raw_2023-02-26.csv.gz, so online and offline show the same.
DEFAULT_FROM = datetime(2023, 2, 26, 8, 0, 0, tzinfo=UTC)
DEFAULT_TO = datetime(2023, 3, 1, 9, 0, 0, tzinfo=UTC)
DEFAULT_BBOX = (13.29, 52.44, 13.50, 52.57)  # its 48 boxes, with a margin of about 1 km
RESOLUTIONS = ("raw", "1h")  # every measurement, or hourly means (for large areas or long periods)

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
PRODUCER_MODES = ("bulk", "replay", "live")


class ConfigError(LearnerError, ValueError):
    """A setting from the environment that cannot be used."""

    def __init__(self, variable: str, value: str, expected: str):
        super().__init__(f"{variable}={value!r} cannot be used: expected {expected}.")
        self.variable = variable


BBox = tuple[float, float, float, float]


def parse_bbox(text: str, variable: str = "bbox") -> BBox:
    """Parse 'minLon,minLat,maxLon,maxLat' and check that it is a real area on Earth."""
    expected = "'minLon,minLat,maxLon,maxLat' in degrees, e.g. '13.29,52.44,13.50,52.57' for central Berlin"
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 4:
        raise ConfigError(variable, text, f"{expected} (four numbers, got {len(parts)})")
    try:
        min_lon, min_lat, max_lon, max_lat = (float(part) for part in parts)
    except ValueError:
        raise ConfigError(variable, text, f"{expected} (every part a number)") from None
    for name, lon in (("minLon", min_lon), ("maxLon", max_lon)):
        if not -180 <= lon <= 180:
            hint = " (did you swap latitude and longitude?)" if -90 <= max_lat <= 180 else ""
            raise ConfigError(variable, text, f"{expected}; {name} must lie in -180..180{hint}")
    for name, lat in (("minLat", min_lat), ("maxLat", max_lat)):
        if not -90 <= lat <= 90:
            raise ConfigError(variable, text, f"{expected}; {name} must lie in -90..90 (did you swap lat and lon?)")
    if min_lon >= max_lon or min_lat >= max_lat:
        raise ConfigError(variable, text, f"{expected}; the minimum must be smaller than the maximum (no empty area)")
    return (min_lon, min_lat, max_lon, max_lat)


def parse_utc(text: str, variable: str = "time") -> datetime:
    """Parse an ISO 8601 time; a time without zone is taken as UTC, any zone is converted to UTC."""
    expected = "an ISO 8601 time in UTC such as '2024-01-15T00:00:00Z'"
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(variable, text, expected) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: in UTC it would fall before the year 1
        raise ConfigError(variable, text, f"{expected}, within the years 1 to 9999 in UTC") from None


def _choice(env: Mapping[str, str], variable: str, allowed: tuple[str, ...], default: str | None):
    value = env.get(variable) or default
    if value is not None and value not in allowed:
        raise ConfigError(variable, value, f"one of {', '.join(allowed)}")
    return value


def _number(env: Mapping[str, str], variable: str, default: float, kind=float, minimum=0, maximum=math.inf):
    text = env.get(variable)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(variable, text, f"a {kind.__name__} number") from None
    if not minimum <= value <= maximum:  # NaN fails both
        upper = f" and <= {maximum}" if maximum < math.inf else ""
        raise ConfigError(variable, text, f"a number >= {minimum}{upper}")
    return value


def _flag(env: Mapping[str, str], variable: str) -> bool:
    text = env.get(variable, "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ConfigError(variable, text, "1 (on) or 0 (off)")


@dataclass(frozen=True)
class Settings:
    """Everything the three notebooks need to know about their surroundings."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    api_url: str = DEFAULT_API_URL
    offline: bool = False
    data_dir: Path = BUNDLED_DATA_DIR
    bbox: BBox | None = None  # PM25_BBOX; without it, step 1 takes a drawn, saved or the default Berlin area
    start: datetime = DEFAULT_FROM
    end: datetime = DEFAULT_TO
    range_from_env: bool = False
    resolution: str = "raw"
    topic: str = "pm25_stream"
    alert_topic: str = "pm25_alerts"
    producer_mode: str = "bulk"
    consumer_group: str | None = None  # None: a fresh group for every run of step 3
    idle_timeout_s: float = 10.0
    threshold: float = 15.0
    window_hours: int = 24  # the WHO guideline's 24-hour mean ...
    min_hours: int = 18  # ... valid with data in at least 18 of its hours (75%)
    late_share: float = 0.0  # of the readings a replay sends, the share re-sent late (after newer ones of its box)
    duplicate_share: float = 0.0  # ... and the share sent twice in a row
    live_speedup: float = 0.0  # step 3's own paced replay into a fresh topic, this many times real time; 0: off

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        bbox_text = env.get("PM25_BBOX", "").strip()
        start = parse_utc(env["PM25_FROM"], "PM25_FROM") if env.get("PM25_FROM") else DEFAULT_FROM
        end = parse_utc(env["PM25_TO"], "PM25_TO") if env.get("PM25_TO") else DEFAULT_TO
        if start >= end:
            raise ConfigError(
                "PM25_FROM/PM25_TO", f"{start.isoformat()} .. {end.isoformat()}", "PM25_FROM before PM25_TO"
            )
        settings = cls(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP_SERVERS,
            security_protocol=_choice(env, "KAFKA_SECURITY_PROTOCOL", SECURITY_PROTOCOLS, "PLAINTEXT"),
            sasl_mechanism=_choice(env, "KAFKA_SASL_MECHANISM", SASL_MECHANISMS, None),
            sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
            api_url=(env.get("OSEM_API_URL") or DEFAULT_API_URL).rstrip("/"),
            offline=_flag(env, "OSEM_OFFLINE"),
            data_dir=Path(env.get("PM25_DATA_DIR") or BUNDLED_DATA_DIR),
            bbox=parse_bbox(bbox_text, "PM25_BBOX") if bbox_text else None,
            start=start,
            end=end,
            range_from_env=bool(env.get("PM25_FROM") or env.get("PM25_TO")),
            resolution=_choice(env, "PM25_RESOLUTION", RESOLUTIONS, "raw"),
            topic=env.get("PM25_TOPIC") or "pm25_stream",
            alert_topic=env.get("PM25_ALERT_TOPIC") or "pm25_alerts",
            producer_mode=_choice(env, "PM25_PRODUCER_MODE", PRODUCER_MODES, "bulk"),
            consumer_group=env.get("PM25_CONSUMER_GROUP") or None,
            idle_timeout_s=_number(env, "PM25_IDLE_TIMEOUT_S", 10.0),
            threshold=_number(env, "PM25_THRESHOLD", 15.0),
            window_hours=_number(env, "PM25_WINDOW_HOURS", 24, kind=int, minimum=1),
            min_hours=_number(env, "PM25_MIN_HOURS", 18, kind=int, minimum=1),
            late_share=_number(env, "PM25_LATE_SHARE", 0.0, maximum=1),
            duplicate_share=_number(env, "PM25_DUPLICATE_SHARE", 0.0, maximum=1),
            live_speedup=_number(env, "PM25_LIVE_SPEEDUP", 0.0),
        )
        if env.get("PM25_MIN_READINGS"):  # the rule before the 24-hour mean: say what replaced it
            raise ConfigError("PM25_MIN_READINGS", env["PM25_MIN_READINGS"], "PM25_MIN_HOURS (hours with data) instead")
        if settings.min_hours > settings.window_hours:
            raise ConfigError(
                "PM25_MIN_HOURS",
                str(settings.min_hours),
                f"at most PM25_WINDOW_HOURS ({settings.window_hours}): a window cannot have more hours with data",
            )
        if settings.late_share + settings.duplicate_share > 1:
            raise ConfigError(
                "PM25_LATE_SHARE/PM25_DUPLICATE_SHARE",
                f"{settings.late_share:g} + {settings.duplicate_share:g}",
                "shares that add up to at most 1",
            )
        if settings.sasl_mechanism and not settings.security_protocol.startswith("SASL"):
            raise ConfigError(
                "KAFKA_SECURITY_PROTOCOL",
                settings.security_protocol,
                "SASL_SSL or SASL_PLAINTEXT when KAFKA_SASL_MECHANISM is set",
            )
        return settings

    @property
    def output_dir(self) -> Path:
        return self.data_dir / "output"

    def kafka_options(self) -> dict:
        """Connection options shared by producer, consumer and admin client."""
        options: dict[str, object] = {"bootstrap_servers": self.bootstrap_servers.split(",")}
        if self.security_protocol != "PLAINTEXT":
            options["security_protocol"] = self.security_protocol
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def describe(self) -> str:
        """A short, password-free summary for the top of each notebook."""
        source = "the bundled Berlin recording (OSEM_OFFLINE=1)" if self.offline else self.api_url
        return "\n".join(
            [
                f"Kafka:        {self.bootstrap_servers} ({self.security_protocol})",
                f"openSenseMap: {source}",
                f"Data folder:  {self.data_dir}",
                f"Time range:   {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC",
                f"Topics:       {self.topic} (readings), {self.alert_topic} (alerts)",
            ]
        )


def load() -> Settings:
    """The settings for this process, from its environment."""
    return Settings.from_env()
