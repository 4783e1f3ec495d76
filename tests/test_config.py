from datetime import UTC, datetime
from pathlib import Path

import pytest

from pm25.config import BUNDLED_DATA_DIR, ConfigError, Settings, parse_bbox, parse_utc


def test_defaults_run_the_tutorial_on_the_days_of_the_berlin_recording():
    settings = Settings.from_env({})
    assert settings.bootstrap_servers == "localhost:9092"
    assert settings.api_url == "https://api.opensensemap.org"
    assert settings.bbox is None  # so step 1 takes the default Berlin area (see test_geo)
    assert settings.start == datetime(2023, 2, 26, 8, tzinfo=UTC)
    assert settings.end == datetime(2023, 3, 1, 9, tzinfo=UTC)
    assert settings.resolution == "raw"
    assert (settings.topic, settings.alert_topic) == ("pm25_stream", "pm25_alerts")
    assert settings.data_dir == BUNDLED_DATA_DIR and not settings.offline


def test_environment_overrides_every_default():
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092",
        "OSEM_API_URL": "http://127.0.0.1:8000/",
        "OSEM_OFFLINE": "1",
        "PM25_DATA_DIR": "/tmp/somewhere",
        "PM25_BBOX": "7.5,51.9,7.7,52.0",
        "PM25_FROM": "2024-02-01T00:00:00Z",
        "PM25_TO": "2024-02-02T00:00:00Z",
        "PM25_TOPIC": "t",
        "PM25_ALERT_TOPIC": "a",
        "PM25_THRESHOLD": "25",
        "PM25_WINDOW_HOURS": "24",
        "PM25_MIN_HOURS": "6",
    }
    settings = Settings.from_env(env)
    assert settings.kafka_options()["bootstrap_servers"] == ["b1:9092", "b2:9092"]
    assert settings.api_url == "http://127.0.0.1:8000"
    assert settings.offline and settings.data_dir == Path("/tmp/somewhere")
    assert settings.bbox == (7.5, 51.9, 7.7, 52.0)
    assert settings.start == datetime(2024, 2, 1, tzinfo=UTC) and settings.range_from_env
    assert (settings.topic, settings.alert_topic) == ("t", "a")
    assert (settings.threshold, settings.window_hours, settings.min_hours) == (25.0, 24, 6)


def test_resolution_is_raw_or_hourly():
    assert Settings.from_env({"PM25_RESOLUTION": "1h"}).resolution == "1h"
    with pytest.raises(ConfigError, match="PM25_RESOLUTION='1d' cannot be used: expected one of raw, 1h"):
        Settings.from_env({"PM25_RESOLUTION": "1d"})


def test_sasl_settings_reach_the_kafka_options_and_stay_out_of_the_summary():
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "learner",
        "KAFKA_SASL_PASSWORD": "s3cret-value",
    }
    settings = Settings.from_env(env)
    options = settings.kafka_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("learner", "s3cret-value")
    assert "s3cret-value" not in settings.describe()


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("PM25_BBOX", "7.5,51.9,7.7", "four numbers"),
        ("PM25_BBOX", "a,b,c,d", "every part a number"),
        ("PM25_BBOX", "51.9,7.5,52.0,200", "-90..90"),
        ("PM25_BBOX", "7.7,51.9,7.5,52.0", "minimum must be smaller"),
        ("PM25_FROM", "15.01.2024", "ISO 8601"),
        ("PM25_TO", "yesterday", "ISO 8601"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS", "SASL_SSL"),
        ("OSEM_OFFLINE", "maybe", "1 (on)"),
        ("PM25_THRESHOLD", "high", "float"),
        ("PM25_MIN_HOURS", "-1", ">= 1"),
        ("PM25_MIN_HOURS", "25", "at most PM25_WINDOW_HOURS (24)"),
        ("PM25_WINDOW_HOURS", "1.5", "int"),
        ("PM25_MIN_READINGS", "3", "PM25_MIN_HOURS"),
        ("PM25_PRODUCER_MODE", "fast", "bulk, replay, live"),
    ],
)
def test_an_unusable_value_names_the_variable_the_value_and_the_expected_form(variable, value, named):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    message = str(raised.value)
    assert variable in message and repr(value) in message and named in message


def test_a_start_after_the_end_is_refused():
    with pytest.raises(ConfigError, match="PM25_FROM before PM25_TO"):
        Settings.from_env({"PM25_FROM": "2024-02-02T00:00:00Z", "PM25_TO": "2024-02-01T00:00:00Z"})


def test_sasl_mechanism_without_a_sasl_protocol_is_refused():
    with pytest.raises(ConfigError, match="KAFKA_SECURITY_PROTOCOL"):
        Settings.from_env({"KAFKA_SASL_MECHANISM": "PLAIN"})


def test_bbox_hints_at_swapped_coordinates():
    with pytest.raises(ConfigError, match="swap"):
        parse_bbox("51.89,7.52,52.01,97.70")


def test_times_without_zone_are_utc_and_other_zones_are_converted():
    assert parse_utc("2024-01-15T00:00:00") == datetime(2024, 1, 15, tzinfo=UTC)
    assert parse_utc("2024-01-15T01:00:00+01:00") == datetime(2024, 1, 15, tzinfo=UTC)


def test_rule_defaults_are_the_who_24_hour_mean_valid_with_18_hours():
    settings = Settings.from_env({})
    assert (settings.threshold, settings.window_hours, settings.min_hours) == (15.0, 24, 18)
