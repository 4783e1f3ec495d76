"""Step 1's result: what pm25_readings.csv and senseboxes.geojson hold, and what bad input gets."""

import json
import os
import socket
from datetime import UTC, datetime

import pandas as pd
import pytest

from pm25 import files
from pm25.config import DEFAULT_BBOX, DEFAULT_FROM, DEFAULT_TO, Settings
from pm25.data import dataset
from pm25.data.geo import Aoi, default_aoi
from pm25.data.opensensemap import OpenSenseMapClient, OpenSenseMapError
from pm25.data.readings import COLUMNS, load_readings, recording_readings
from pm25.files import write_atomically
from tests.osem_replay import Fault

DAYS = (DEFAULT_FROM, DEFAULT_TO)
MUENSTER = Aoi.from_bbox((7.52, 51.89, 7.70, 52.01), "area around Münster")
SUMMER = (datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 2, tzinfo=UTC))
# A small area in the north-east of the city, around the boxes "Berliner Allee" and "Updown".
NORTH_EAST = Aoi.from_bbox((13.43, 52.54, 13.47, 52.56), "test area")


@pytest.fixture(scope="module")
def recording() -> pd.DataFrame:
    return recording_readings()


def client_for(replay, **options):
    return OpenSenseMapClient(replay.url, backoff_s=0.01, timeout_s=(2.0, 10.0), **options)


def test_the_default_area_holds_every_box_of_the_recording(recording):
    west, south, east, north = DEFAULT_BBOX
    assert recording["lon"].between(west, east).all() and recording["lat"].between(south, north).all()
    moments = pd.to_datetime(recording["timestamp"], utc=True)
    assert moments.min() >= pd.Timestamp(DEFAULT_FROM) and moments.max() <= pd.Timestamp(DEFAULT_TO)


def test_online_raw_download_equals_the_bundled_recording(replay_api):
    online = dataset.download(client_for(replay_api), default_aoi(), *DAYS)
    offline = dataset.from_recording(default_aoi(), *DAYS)
    assert len(online.readings) == 106_524
    assert online.readings.equals(offline.readings)


def test_download_keeps_silent_boxes_and_leaves_out_indoor_ones(replay_api):
    data = dataset.download(client_for(replay_api), default_aoi(), *DAYS)
    names = {feature["properties"]["name"] for feature in data.boxes}
    assert "Testbox drinnen" not in names and "Testbox nur Temperatur" not in names
    silent = [feature for feature in data.boxes if feature["properties"]["name"] == "Testbox ohne Messungen"]
    assert silent and silent[0]["properties"]["readings"] == 0
    assert "Testbox ohne Messungen" in data.summary()
    assert "raw measurements" in data.source


def test_a_moved_box_is_dropped_with_the_reason(replay_api):
    with pytest.raises(OpenSenseMapError, match="stands in your area today"):
        dataset.download(client_for(replay_api), MUENSTER, *DAYS)
    boxes, dropped = dataset.clip_to_aoi(client_for(replay_api).find_boxes(MUENSTER.api_bbox()), MUENSTER)
    assert boxes == [] and any("Bundeskanzleramt" in reason and "stood inside once" in reason for reason in dropped)


def test_saved_files_have_the_promised_columns_and_contents(replay_api, tmp_path):
    data = dataset.download(client_for(replay_api), NORTH_EAST, *DAYS)
    readings_path, boxes_path = dataset.save(data, tmp_path)

    readings = pd.read_csv(readings_path)
    assert list(readings.columns) == COLUMNS
    assert readings.equals(readings.sort_values(["timestamp", "boxId"], ignore_index=True))
    assert readings["timestamp"].min() == "2023-02-26T08:24:51.641Z"
    assert readings.groupby("boxName").size()["Berliner Allee"] == 1699
    assert load_readings(readings_path).rejected.empty  # what step 1 writes, step 2 accepts

    features = json.loads(boxes_path.read_text())["features"]
    assert {"boxId", "name", "sensorId", "sensorType", "exposure", "lastMeasurementAt", "readings"} == set(
        features[0]["properties"]
    )
    counts = readings.groupby("boxId").size()
    for feature in features:
        assert feature["properties"]["readings"] == counts.get(feature["properties"]["boxId"], 0)


def test_hourly_resolution_gives_one_mean_per_box_and_hour(replay_api, recording):
    data = dataset.download(client_for(replay_api), NORTH_EAST, *DAYS, resolution="1h")
    assert "hourly means" in data.source
    per_box = data.readings.groupby("boxName").size()
    assert per_box["Berliner Allee"] == 73
    assert data.readings["timestamp"].str.endswith(":00:00Z").all()


def test_no_box_in_the_area_is_a_clear_error(replay_api):
    sea = Aoi.from_bbox((3.0, 54.0, 3.5, 54.5), "area in the North Sea")
    with pytest.raises(OpenSenseMapError, match=r"no outdoor senseBox with a PM2\.5 sensor"):
        dataset.download(client_for(replay_api), sea, *DAYS)


def test_boxes_without_readings_in_the_range_are_a_clear_error(replay_api):
    with pytest.raises(OpenSenseMapError, match="sent no readings"):
        dataset.download(client_for(replay_api), NORTH_EAST, *SUMMER)


def test_many_boxes_are_announced_before_fetching(replay_api, monkeypatch, capsys):
    monkeypatch.setattr(dataset, "MANY_BOXES", 1)
    dataset.download(client_for(replay_api), NORTH_EAST, *DAYS)
    assert "fetching them takes a while" in capsys.readouterr().out


def test_offline_uses_the_bundled_recording_and_says_so(capsys, tmp_path):
    settings = Settings.from_env({"OSEM_OFFLINE": "1", "PM25_DATA_DIR": str(tmp_path)})
    data = dataset.get_pm25(settings, default_aoi())
    assert "OSEM_OFFLINE=1" in capsys.readouterr().out
    assert "bundled recording" in data.source and "Berlin" in data.source
    assert len(data.readings) == 106_524


def test_offline_clips_to_the_area_and_time_like_the_api(recording, capsys):
    start, end = datetime(2023, 2, 27, tzinfo=UTC), datetime(2023, 2, 28, tzinfo=UTC)
    data = dataset.from_recording(NORTH_EAST, start, end)
    moments = pd.to_datetime(data.readings["timestamp"], utc=True)
    assert moments.min() >= pd.Timestamp(start) and moments.max() <= pd.Timestamp(end)
    inside = recording[recording["lon"].between(13.43, 13.47) & recording["lat"].between(52.54, 52.56)]
    assert set(data.readings["boxName"]) == set(inside["boxName"]) == {"Berliner Allee", "Updown"}
    assert "⚠️" not in capsys.readouterr().out


def test_offline_never_says_a_box_moved(capsys):
    data = dataset.from_recording(MUENSTER, *DAYS)
    assert not any("stood inside once" in reason for reason in data.dropped)
    assert "stood inside once" not in data.summary() + capsys.readouterr().out


@pytest.mark.parametrize(
    ("aoi", "bbox", "warning"),
    [
        (MUENSTER, None, "no box in your area"),
        (default_aoi(), "52.44,13.29,52.57,13.50", "Did you swap latitude and longitude?"),
        (default_aoi(), "7.52,51.89,7.70,52.01", "no box in your area (bounding box 7.52,51.89,7.70,52.01)"),
    ],
)
def test_offline_outside_the_recording_uses_its_area_and_warns(aoi, bbox, warning, capsys):
    data = dataset.from_recording(aoi, *DAYS, bbox=bbox)
    printed = capsys.readouterr().out
    assert warning in printed and "It covers central Berlin, 26 Feb 2023 08:24 to 01 Mar 2023 08:24 UTC" in printed
    assert len(data.boxes) == 48 and len(data.readings) == 106_524


def test_offline_a_bbox_is_not_ignored(recording):
    data = dataset.from_recording(default_aoi(), *DAYS, bbox=NORTH_EAST.api_bbox())
    assert 0 < data.readings["boxId"].nunique() < 10


def test_offline_outside_the_recorded_days_uses_its_days_and_warns(capsys):
    data = dataset.from_recording(NORTH_EAST, *SUMMER)
    printed = capsys.readouterr().out
    assert "no measurements from 2023-06-01 00:00 to 2023-06-02 00:00 UTC" in printed
    assert "using all of its days" in printed
    assert len(data.readings) > 1000


def test_offline_an_unreadable_bbox_is_a_learner_error():
    with pytest.raises(OpenSenseMapError, match="not four comma-separated numbers"):
        dataset.from_recording(default_aoi(), *DAYS, bbox="13.29;52.44;13.50;52.57")


def test_an_unreachable_api_falls_back_to_the_recording_and_says_so(capsys, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    settings = Settings.from_env({"OSEM_API_URL": url, "PM25_DATA_DIR": str(tmp_path)})
    data = dataset.get_pm25(settings, default_aoi(), OpenSenseMapClient(url, backoff_s=0.01, max_attempts=2))
    assert "Falling back to the bundled real recording" in capsys.readouterr().out
    assert len(data.readings) == 106_524


def test_readings_file_falls_back_to_the_recording_in_step_1_columns(tmp_path, capsys):
    path = dataset.readings_file(tmp_path)
    printed = capsys.readouterr().out
    assert "no pm25_readings.csv" in printed and "central Berlin" in printed
    fallback = pd.read_csv(path)
    assert list(fallback.columns) == COLUMNS and len(fallback) == 106_524
    (tmp_path / "pm25_readings.csv").write_text(",".join(COLUMNS) + "\n")
    assert dataset.readings_file(tmp_path) == tmp_path / "pm25_readings.csv"


def test_a_failed_write_leaves_the_previous_file_and_no_litter(tmp_path, monkeypatch):
    target = tmp_path / "pm25_readings.csv"
    target.write_text("previous")

    def broken_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, "new contents")
    assert target.read_text() == "previous"
    assert [path.name for path in tmp_path.iterdir()] == ["pm25_readings.csv"]


def test_a_written_file_gets_the_usual_permissions_not_owner_only(tmp_path):
    # Files written in the Docker stack (uid 1000) must stay readable by the host user (another uid).
    write_atomically(tmp_path / "alerts.csv", "boxId\r\n")
    assert (tmp_path / "alerts.csv").stat().st_mode & 0o777 == 0o666 & ~files._UMASK


# -- relative humidity: online only, where a box has a humidity sensor -----------------------------------------


def hourly_humidity(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["boxId", "timestamp", "value"]).assign(boxName=lambda t: t["boxId"])


def test_humid_hours_are_those_whose_median_over_the_boxes_is_above_80_percent():
    humidity = hourly_humidity(
        [
            ("a", "2023-02-27T01:00:00Z", 79.0),
            ("b", "2023-02-27T01:00:00Z", 95.0),
            ("c", "2023-02-27T01:00:00Z", 81.0),
            ("a", "2023-02-27T02:00:00Z", 80.0),
            ("b", "2023-02-27T02:00:00Z", 80.0),  # exactly 80: not above
            ("a", "2023-02-27T03:00:00Z", 99.0),
            ("b", "2023-02-27T03:00:00Z", 20.0),
            ("c", "2023-02-27T03:00:00Z", 30.0),
        ]
    )
    assert list(dataset.humid_hours(humidity)) == [pd.Timestamp("2023-02-27T01:00:00Z")]
    assert dataset.humid_hours(humidity.iloc[:0]).empty


def test_online_the_humidity_of_boxes_with_a_humidity_sensor_comes_along(replay_api):
    data = dataset.download(client_for(replay_api), NORTH_EAST, *DAYS)
    assert set(data.humidity["boxName"]) == {"Updown"}  # "Berliner Allee" has no humidity sensor
    assert list(data.humidity.columns) == ["boxId", "boxName", "timestamp", "value"]
    moments = pd.to_datetime(data.humidity["timestamp"], utc=True)
    assert moments.min() >= pd.Timestamp(DAYS[0]).floor("h") and moments.max() <= pd.Timestamp(DAYS[1])
    humid = dataset.humid_hours(data.humidity)
    assert 0 < len(humid) < len(data.humidity)
    assert f"Relative humidity: 1 of 2 boxes have a humidity sensor; {len(humid)} hours above 80 %." in data.summary()


def test_the_humidity_covers_the_chosen_time_range_not_the_recordings(replay_api):
    start, end = datetime(2023, 2, 27, 6, 30, tzinfo=UTC), datetime(2023, 2, 27, 12, tzinfo=UTC)
    data = dataset.download(client_for(replay_api), NORTH_EAST, start, end)
    hours = sorted(set(data.humidity["timestamp"]))
    assert hours[0] == "2023-02-27T06:00:00Z" and hours[-1] == "2023-02-27T12:00:00Z" and len(hours) == 7


def test_hourly_resolution_brings_the_humidity_too(replay_api):
    data = dataset.download(client_for(replay_api), NORTH_EAST, *DAYS, resolution="1h")
    assert set(data.humidity["boxName"]) == {"Updown"}


def test_failing_humidity_loses_no_pm25_and_says_so_in_one_line(replay_api, capsys):
    replay_api.inject(*[Fault("status", status=503, path_prefix="/statistics")] * 4)
    data = dataset.download(client_for(replay_api), NORTH_EAST, *DAYS)
    assert len(data.readings) == 1699 + 1693
    assert data.humidity is None
    printed = [line for line in capsys.readouterr().out.splitlines() if "could not be fetched" in line]
    assert len(printed) == 1 and printed[0].startswith("Relative humidity") and "HTTP 503" in printed[0]
    assert "Relative humidity: not available" in data.summary()


def test_offline_there_is_no_humidity_and_the_summary_says_so():
    data = dataset.from_recording(default_aoi(), *DAYS)
    assert data.humidity is None
    assert dataset.humid_hours(data.humidity).empty
    assert "Relative humidity: the bundled recording has none." in data.summary()
