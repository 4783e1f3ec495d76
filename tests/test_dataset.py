"""Step 1's result: what pm25_readings.csv and senseboxes.geojson hold, and what bad input gets."""

import json
import os
import socket
from datetime import UTC, datetime

import pandas as pd
import pytest

from pm25 import dataset
from pm25.config import Settings
from pm25.files import write_atomically
from pm25.geo import BUNDLED_AOI, Aoi, load_aoi
from pm25.opensensemap import OpenSenseMapClient, OpenSenseMapError
from pm25.readings import COLUMNS, load_readings

WEEK = (datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 1, 21, 23, 59, 59, tzinfo=UTC))


@pytest.fixture
def aoi():
    return load_aoi(BUNDLED_AOI, "bundled area")


def client_for(replay, **options):
    return OpenSenseMapClient(replay.url, backoff_s=0.01, timeout_s=(2.0, 2.0), **options)


def test_download_drops_moved_boxes_and_keeps_silent_ones(replay_api, aoi):
    data = dataset.download(client_for(replay_api), aoi, *WEEK)
    names = {feature["properties"]["name"] for feature in data.boxes}
    assert "Bundeskanzleramt" not in names and "Testbox nur Temperatur" not in names
    assert any("Bundeskanzleramt" in reason and "stood inside once" in reason for reason in data.dropped)
    silent = [feature for feature in data.boxes if feature["properties"]["name"] == "Testbox ohne Messungen"]
    assert silent and silent[0]["properties"]["readings"] == 0
    assert "Testbox ohne Messungen" in data.summary()


def test_saved_files_have_the_promised_columns_and_contents(replay_api, aoi, tmp_path):
    data = dataset.download(client_for(replay_api), aoi, *WEEK)
    readings_path, boxes_path = dataset.save(data, tmp_path)

    readings = pd.read_csv(readings_path)
    assert list(readings.columns) == COLUMNS
    assert readings.equals(readings.sort_values(["timestamp", "boxId"], ignore_index=True))
    assert readings["timestamp"].min() == "2024-01-15T00:00:00Z"
    assert readings["timestamp"].max() == "2024-01-21T23:00:00Z"
    assert readings.groupby("boxName").size()["Wetterstation Erpho"] == 168
    assert readings.groupby("boxName").size()["Nienberge Garten"] < 168  # the box that stopped sending
    assert load_readings(readings_path).rejected.empty  # what step 1 writes, step 2 accepts

    features = json.loads(boxes_path.read_text())["features"]
    assert {"boxId", "name", "sensorId", "sensorType", "exposure", "lastMeasurementAt", "readings"} == set(
        features[0]["properties"]
    )
    counts = readings.groupby("boxId").size()
    for feature in features:
        assert feature["properties"]["readings"] == counts.get(feature["properties"]["boxId"], 0)


def test_the_25_hour_means_of_the_replay_match_the_real_sample(replay_api, aoi):
    replayed = dataset.download(client_for(replay_api), aoi, *WEEK, window="90000000").readings
    sample = dataset.from_sample(aoi, *WEEK).readings
    merged = sample.merge(replayed, on=["boxId", "timestamp"], suffixes=("_sample", "_replay"))
    assert len(merged) == len(sample)
    assert (merged["value_sample"] - merged["value_replay"]).abs().max() < 0.01


def test_no_box_in_the_area_is_a_clear_error(replay_api):
    sea = Aoi.from_bbox((3.0, 54.0, 3.5, 54.5), "area in the North Sea")
    with pytest.raises(OpenSenseMapError, match=r"no senseBox with a PM2\.5 sensor"):
        dataset.download(client_for(replay_api), sea, *WEEK)


def test_boxes_without_readings_in_the_range_are_a_clear_error(replay_api, aoi):
    with pytest.raises(OpenSenseMapError, match="sent no readings"):
        dataset.download(
            client_for(replay_api), aoi, datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 2, tzinfo=UTC)
        )


def test_many_boxes_are_announced_before_fetching(replay_api, aoi, monkeypatch, capsys):
    monkeypatch.setattr(dataset, "MANY_BOXES", 3)
    dataset.download(client_for(replay_api), aoi, *WEEK)
    assert "fetching them takes a while" in capsys.readouterr().out


def test_offline_uses_the_bundled_sample_and_says_so(aoi, capsys, tmp_path):
    settings = Settings.from_env({"OSEM_OFFLINE": "1", "PM25_DATA_DIR": str(tmp_path)})
    data = dataset.get_pm25(settings, aoi)
    assert "OSEM_OFFLINE=1" in capsys.readouterr().out
    assert "bundled sample" in data.source
    assert "Bundeskanzleramt" not in set(data.readings["boxName"])


def test_an_unreachable_api_falls_back_to_the_sample_and_says_so(aoi, capsys, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    settings = Settings.from_env({"OSEM_API_URL": url, "PM25_DATA_DIR": str(tmp_path)})
    data = dataset.get_pm25(settings, aoi, OpenSenseMapClient(url, backoff_s=0.01, max_attempts=2))
    assert "Falling back to the bundled real sample" in capsys.readouterr().out
    assert len(data.readings) > 0


def test_the_sample_outside_its_dates_is_a_clear_error(aoi):
    with pytest.raises(OpenSenseMapError, match="14-22 January 2024"):
        dataset.from_sample(aoi, datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 2, tzinfo=UTC))


def test_readings_file_falls_back_to_the_sample_in_step_1_columns(tmp_path, capsys):
    path = dataset.readings_file(tmp_path)
    assert "no pm25_readings.csv" in capsys.readouterr().out
    assert list(pd.read_csv(path).columns) == COLUMNS
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
