"""The openSenseMap client against the local replay: retries, errors, cache."""

import socket
from datetime import UTC, datetime

import pytest

from pm25.config import DEFAULT_FROM, DEFAULT_TO
from pm25.data import opensensemap
from pm25.data.opensensemap import (
    RAW_COLUMNS,
    ApiRefused,
    ApiUnavailable,
    OpenSenseMapClient,
    api_timestamp,
    is_humidity,
)
from tests.osem_replay import Fault

BERLIN_BBOX = "13.29,52.44,13.50,52.57"
DAYS = (DEFAULT_FROM, DEFAULT_TO)  # the recording's
BOX_BBOX = "13.46,52.55,13.47,52.56"  # around "Berliner Allee" only
# Four consecutive measurements of "Berliner Allee" just after midnight on 27 February 2023.
MIDNIGHT = [f"2023-02-27T00:{time}Z" for time in ("01:06.088", "03:34.210", "06:02.272", "08:32.898")]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def client_for(replay, **options):
    return OpenSenseMapClient(replay.url, backoff_s=0.01, timeout_s=(2.0, 2.0), **options)


def test_api_timestamps_have_milliseconds_and_z():
    assert api_timestamp(datetime(2024, 1, 15, 1, 2, 3, 456789, tzinfo=UTC)) == "2024-01-15T01:02:03.456Z"


def test_find_boxes_keeps_only_outdoor_boxes_with_a_pm25_sensor(replay_api):
    boxes = client_for(replay_api).find_boxes(BERLIN_BBOX)
    names = {box["name"] for box in boxes}
    assert "Testbox nur Temperatur" not in names and "Testbox drinnen" not in names
    assert {"Berliner Allee", "Testbox ohne Messungen", "Bundeskanzleramt"} <= names


def test_retries_after_503s_then_succeeds(replay_api):
    replay_api.inject(*[Fault("status", status=503)] * 3)
    before = len(replay_api.requests)
    assert client_for(replay_api).find_boxes(BERLIN_BBOX)
    assert len(replay_api.requests) - before == 4


@pytest.mark.parametrize("fault", [Fault("status", status=429), Fault("status", status=500), Fault("slow", delay_s=3)])
def test_retries_on_busy_server_errors_and_time_outs(replay_api, fault):
    replay_api.inject(fault)
    assert client_for(replay_api).find_boxes(BERLIN_BBOX)


def test_a_persistent_failure_says_what_happened_and_how_to_go_on(replay_api):
    replay_api.inject(*[Fault("status", status=503)] * 4)
    with pytest.raises(ApiUnavailable) as raised:
        client_for(replay_api).find_boxes(BERLIN_BBOX)
    assert "after 4 attempts" in str(raised.value) and "HTTP 503" in str(raised.value)
    assert "OSEM_OFFLINE=1" in str(raised.value)


def test_an_unreachable_api_is_reported_as_unavailable():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = OpenSenseMapClient(f"http://127.0.0.1:{port}", backoff_s=0.01, max_attempts=2)
    with pytest.raises(ApiUnavailable, match="could not connect"):
        client.find_boxes(BERLIN_BBOX)


def test_a_refused_bbox_names_the_bbox_and_is_not_retried(replay_api):
    before = len(replay_api.requests)
    with pytest.raises(ApiRefused) as raised:
        client_for(replay_api).find_boxes("7.6,51.9,7.6,52.0")
    assert raised.value.status == 422
    assert "'7.6,51.9,7.6,52.0'" in str(raised.value) and "zero surface area" in str(raised.value)
    assert len(replay_api.requests) - before == 1


def test_a_time_range_the_api_refuses_is_explained(replay_api):
    client = client_for(replay_api)
    boxes = client.find_boxes(BERLIN_BBOX)
    with pytest.raises(ApiRefused, match="time range"):
        client.fetch_pm25(boxes[:1], DAYS[1], DAYS[0])


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_a_broken_json_body_gives_a_clear_error_and_is_never_cached(replay_api, kind, tmp_path):
    replay_api.inject(Fault(kind, path_prefix="/boxes"))
    client = client_for(replay_api, cache_dir=tmp_path)
    with pytest.raises(ApiUnavailable, match="not valid JSON"):
        client.find_boxes(BERLIN_BBOX)
    assert not list(tmp_path.iterdir())
    assert client.find_boxes(BERLIN_BBOX)


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_broken_statistics_are_refused_not_half_read(replay_api, kind):
    client = client_for(replay_api)
    boxes = client.find_boxes(BERLIN_BBOX)
    replay_api.inject(Fault(kind, path_prefix="/statistics"))
    with pytest.raises(ApiUnavailable, match="unexpected form"):
        client.fetch_pm25(boxes, *DAYS)


def test_hourly_means_come_as_a_tidy_table_with_box_columns(replay_api):
    client = client_for(replay_api)
    box = [box for box in client.find_boxes(BERLIN_BBOX) if box["name"] == "Berliner Allee"]
    table = client.fetch_pm25(box, *DAYS)
    assert list(table.columns) == ["sensorId", "boxId", "boxName", "time_start", "value"]
    assert set(table["boxName"]) == {"Berliner Allee"}
    assert len(table) == 73  # 08:00 on 26 February to 08:00 on 1 March: every hour with data
    assert table["value"].between(0, 100).all()


def test_raw_measurements_come_in_the_requested_columns(replay_api):
    table = client_for(replay_api).fetch_raw(BOX_BBOX, utc(MIDNIGHT[0]), utc(MIDNIGHT[3]))
    assert list(table.columns) == RAW_COLUMNS
    assert sorted(table["createdAt"]) == MIDNIGHT  # both ends included
    assert set(table["boxName"]) == {"Berliner Allee"} and set(table["exposure"]) == {"outdoor"}
    assert table["value"].dtype == float and table["lat"].dtype == float


def test_raw_chunks_lose_nothing_and_repeat_nothing_where_they_meet(replay_api, monkeypatch):
    # Chunks as long as the gap between the first two measurements: a chunk edge falls exactly on one.
    monkeypatch.setattr(opensensemap, "RAW_CHUNK", utc(MIDNIGHT[1]) - utc(MIDNIGHT[0]))
    before = len(replay_api.requests)
    table = client_for(replay_api).fetch_raw(BOX_BBOX, utc(MIDNIGHT[0]), utc(MIDNIGHT[3]))
    assert len(replay_api.requests) - before == 4
    assert sorted(table["createdAt"]) == MIDNIGHT


def test_raw_chunks_ask_for_the_range_with_exclusive_bounds(replay_api, monkeypatch):
    monkeypatch.setattr(opensensemap, "RAW_CHUNK", utc(MIDNIGHT[1]) - utc(MIDNIGHT[0]))
    before = len(replay_api.requests)
    client_for(replay_api).fetch_raw(BOX_BBOX, utc(MIDNIGHT[0]), utc(MIDNIGHT[1]))
    asked = replay_api.requests[before:]
    assert "from-date=2023-02-27T00%3A01%3A06.087Z&to-date=2023-02-27T00%3A03%3A34.210Z" in asked[0]
    assert "from-date=2023-02-27T00%3A03%3A34.209Z&to-date=2023-02-27T00%3A03%3A34.211Z" in asked[1]
    assert len(asked) == 2


def test_three_days_of_raw_data_take_thirteen_small_requests(replay_api):
    before = len(replay_api.requests)
    table = client_for(replay_api).fetch_raw(BERLIN_BBOX, *DAYS)
    assert len(replay_api.requests) - before == 13  # 73 hours in 6 h chunks
    assert not table.duplicated(["sensorId", "createdAt"]).any()


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_broken_raw_data_is_refused_and_never_cached(replay_api, kind, tmp_path):
    client = client_for(replay_api, cache_dir=tmp_path)
    replay_api.inject(Fault(kind, path_prefix="/boxes/data"))
    with pytest.raises(ApiUnavailable, match="unexpected form"):
        client.fetch_raw(BOX_BBOX, utc(MIDNIGHT[0]), utc(MIDNIGHT[3]))
    assert not list(tmp_path.iterdir())
    assert sorted(client.fetch_raw(BOX_BBOX, utc(MIDNIGHT[0]), utc(MIDNIGHT[3]))["createdAt"]) == MIDNIGHT


def test_the_cache_answers_a_repeated_request_and_refresh_asks_again(replay_api, tmp_path):
    cached = client_for(replay_api, cache_dir=tmp_path)
    first = cached.find_boxes(BERLIN_BBOX)
    before = len(replay_api.requests)
    assert cached.find_boxes(BERLIN_BBOX) == first
    assert len(replay_api.requests) == before
    client_for(replay_api, cache_dir=tmp_path, refresh=True).find_boxes(BERLIN_BBOX)
    assert len(replay_api.requests) == before + 1


# -- relative humidity (issue 24: optical sensors read high in humid air) -----------------------------------

NORTH_EAST_BBOX = "13.43,52.54,13.47,52.56"  # "Berliner Allee" (no humidity sensor in the replay) and "Updown"


@pytest.mark.parametrize(
    ("title", "unit"),
    [
        ("rel. Luftfeuchte", "%"),
        ("Luftfeuchte", "%"),
        ("Luftfeuchtigkeit", "%"),
        ("Relative Humidity", "%"),
        ("humidity", " % "),
        ("rel. Luftfeuchtigkeit", "%RH"),
    ],
)
def test_humidity_sensors_are_found_by_title_and_unit_however_spelt(title, unit):
    assert is_humidity({"title": title, "unit": unit})


@pytest.mark.parametrize(
    ("title", "unit"),
    [("Bodenfeuchte", "%"), ("Temperatur", "°C"), ("PM2.5", "µg/m³"), ("Luftfeuchte", "g/m³"), ("Luftfeuchte", "")],
)
def test_soil_moisture_and_other_sensors_are_not_humidity(title, unit):
    assert not is_humidity({"title": title, "unit": unit})


def test_humidity_comes_as_hourly_means_of_each_boxs_own_humidity_sensor(replay_api):
    client = client_for(replay_api)
    boxes = client.find_boxes(NORTH_EAST_BBOX)
    updown = next(box for box in boxes if box["name"] == "Updown")
    humidity_sensor = next(sensor for sensor in updown["sensors"] if is_humidity(sensor))
    table = client.fetch_humidity(boxes, *DAYS)
    assert list(table.columns) == ["sensorId", "boxId", "boxName", "time_start", "value"]
    assert set(table["boxName"]) == {"Updown"}  # "Berliner Allee" has no humidity sensor: left out, no error
    assert set(table["sensorId"]) == {humidity_sensor["_id"]}
    assert len(table) == 73 and table["value"].between(0, 100).all()


def test_boxes_without_a_humidity_sensor_need_no_request(replay_api):
    client = client_for(replay_api)
    boxes = [box for box in client.find_boxes(BOX_BBOX) if box["name"] == "Berliner Allee"]
    before = len(replay_api.requests)
    table = client.fetch_humidity(boxes, *DAYS)
    assert table.empty and list(table.columns) == ["sensorId", "boxId", "boxName", "time_start", "value"]
    assert len(replay_api.requests) == before


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_broken_humidity_statistics_are_refused_like_pm25(replay_api, kind, tmp_path):
    client = client_for(replay_api, cache_dir=tmp_path)
    boxes = client.find_boxes(NORTH_EAST_BBOX)
    replay_api.inject(Fault(kind, path_prefix="/statistics"))
    with pytest.raises(ApiUnavailable, match="unexpected form"):
        client.fetch_humidity(boxes, *DAYS)
    assert len(client.fetch_humidity(boxes, *DAYS)) == 73  # nothing broken was cached
