"""The openSenseMap client against the local replay: retries, errors, cache."""

import socket
from datetime import UTC, datetime

import pytest

from pm25.opensensemap import ApiRefused, ApiUnavailable, OpenSenseMapClient, api_timestamp
from tests.osem_replay import Fault

MUENSTER_BBOX = "7.518768,51.891272,7.702789,52.011038"
WEEK = (datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 1, 21, 23, 59, 59, tzinfo=UTC))


def client_for(replay, **options):
    return OpenSenseMapClient(replay.url, backoff_s=0.01, timeout_s=(2.0, 2.0), **options)


def test_api_timestamps_have_milliseconds_and_z():
    assert api_timestamp(datetime(2024, 1, 15, 1, 2, 3, 456789, tzinfo=UTC)) == "2024-01-15T01:02:03.456Z"


def test_find_boxes_keeps_only_boxes_with_a_pm25_sensor(replay_api):
    boxes = client_for(replay_api).find_boxes(MUENSTER_BBOX)
    names = {box["name"] for box in boxes}
    assert "Testbox nur Temperatur" not in names
    assert {"Wetterstation Erpho", "Testbox ohne Messungen", "Bundeskanzleramt"} <= names


def test_retries_after_503s_then_succeeds(replay_api):
    replay_api.inject(*[Fault("status", status=503)] * 3)
    before = len(replay_api.requests)
    assert client_for(replay_api).find_boxes(MUENSTER_BBOX)
    assert len(replay_api.requests) - before == 4


@pytest.mark.parametrize("fault", [Fault("status", status=429), Fault("status", status=500), Fault("slow", delay_s=3)])
def test_retries_on_busy_server_errors_and_time_outs(replay_api, fault):
    replay_api.inject(fault)
    assert client_for(replay_api).find_boxes(MUENSTER_BBOX)


def test_a_persistent_failure_says_what_happened_and_how_to_go_on(replay_api):
    replay_api.inject(*[Fault("status", status=503)] * 4)
    with pytest.raises(ApiUnavailable) as raised:
        client_for(replay_api).find_boxes(MUENSTER_BBOX)
    assert "after 4 attempts" in str(raised.value) and "HTTP 503" in str(raised.value)
    assert "OSEM_OFFLINE=1" in str(raised.value)


def test_an_unreachable_api_is_reported_as_unavailable():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = OpenSenseMapClient(f"http://127.0.0.1:{port}", backoff_s=0.01, max_attempts=2)
    with pytest.raises(ApiUnavailable, match="could not connect"):
        client.find_boxes(MUENSTER_BBOX)


def test_a_refused_bbox_names_the_bbox_and_is_not_retried(replay_api):
    before = len(replay_api.requests)
    with pytest.raises(ApiRefused) as raised:
        client_for(replay_api).find_boxes("7.6,51.9,7.6,52.0")
    assert raised.value.status == 422
    assert "'7.6,51.9,7.6,52.0'" in str(raised.value) and "zero surface area" in str(raised.value)
    assert len(replay_api.requests) - before == 1


def test_a_time_range_the_api_refuses_is_explained(replay_api):
    client = client_for(replay_api)
    boxes = client.find_boxes(MUENSTER_BBOX)
    with pytest.raises(ApiRefused, match="time range"):
        client.fetch_pm25(boxes[:1], WEEK[1], WEEK[0])


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_a_broken_json_body_gives_a_clear_error_and_is_never_cached(replay_api, kind, tmp_path):
    replay_api.inject(Fault(kind, path_prefix="/boxes"))
    client = client_for(replay_api, cache_dir=tmp_path)
    with pytest.raises(ApiUnavailable, match="not valid JSON"):
        client.find_boxes(MUENSTER_BBOX)
    assert not list(tmp_path.iterdir())
    assert client.find_boxes(MUENSTER_BBOX)


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_broken_statistics_are_refused_not_half_read(replay_api, kind):
    client = client_for(replay_api)
    boxes = client.find_boxes(MUENSTER_BBOX)
    replay_api.inject(Fault(kind, path_prefix="/statistics"))
    with pytest.raises(ApiUnavailable, match="unexpected form"):
        client.fetch_pm25(boxes, *WEEK)


def test_hourly_means_come_as_a_tidy_table_with_box_columns(replay_api):
    client = client_for(replay_api)
    erpho = [box for box in client.find_boxes(MUENSTER_BBOX) if box["name"] == "Wetterstation Erpho"]
    table = client.fetch_pm25(erpho, *WEEK)
    assert list(table.columns) == ["sensorId", "boxId", "boxName", "time_start", "value"]
    assert set(table["boxName"]) == {"Wetterstation Erpho"}
    # Hourly windows aligned to the epoch: one more before and after the range may come back.
    assert 168 <= len(table) <= 170
    assert table["value"].between(0, 100).all()


def test_the_cache_answers_a_repeated_request_and_refresh_asks_again(replay_api, tmp_path):
    cached = client_for(replay_api, cache_dir=tmp_path)
    first = cached.find_boxes(MUENSTER_BBOX)
    before = len(replay_api.requests)
    assert cached.find_boxes(MUENSTER_BBOX) == first
    assert len(replay_api.requests) == before
    client_for(replay_api, cache_dir=tmp_path, refresh=True).find_boxes(MUENSTER_BBOX)
    assert len(replay_api.requests) == before + 1
