"""Step 1 run headless as a learner's kernel runs it: offline, and with an area saved earlier."""

import json

import pandas as pd

from pm25.geo import Aoi, save_aoi
from tests.notebooks import execute_notebook, stream_text


def test_offline_run_uses_the_bundled_recording_and_writes_both_files(tmp_path):
    printed = stream_text(
        execute_notebook("step_1_data_prep.ipynb", {"OSEM_OFFLINE": "1", "PM25_DATA_DIR": str(tmp_path)})
    )
    assert "OSEM_OFFLINE=1: using the bundled real recording" in printed
    assert "Using the default area, central Berlin" in printed
    assert "48 boxes with a PM2.5 sensor in the area, 106524 readings." in printed
    assert "stood inside once" not in printed and "⚠️" not in printed
    readings = pd.read_csv(tmp_path / "pm25_readings.csv")
    assert len(readings) == 106_524
    boxes = json.loads((tmp_path / "senseboxes.geojson").read_text())["features"]
    assert {box["properties"]["boxId"] for box in boxes} == set(readings["boxId"])


def test_offline_an_area_without_recorded_data_says_which_city_and_days_it_uses(tmp_path):
    env = {"OSEM_OFFLINE": "1", "PM25_DATA_DIR": str(tmp_path), "PM25_BBOX": "7.52,51.89,7.70,52.01"}
    printed = stream_text(execute_notebook("step_1_data_prep.ipynb", env))
    assert "⚠️ The bundled recording has no box in your area" in printed
    assert "It covers central Berlin, 26 Feb 2023 08:24 to 01 Mar 2023 08:24 UTC" in printed
    assert pd.read_csv(tmp_path / "pm25_readings.csv")["boxId"].nunique() == 48


def test_an_area_saved_earlier_is_used_and_named(tmp_path, replay_api):
    # A small area in the north-east of the city, around the boxes "Berliner Allee" and "Updown".
    save_aoi(Aoi.from_bbox((13.43, 52.54, 13.47, 52.56), "test"), tmp_path / "aoi.geojson")
    printed = stream_text(execute_notebook("step_1_data_prep.ipynb", {"PM25_DATA_DIR": str(tmp_path)}))
    assert "Using the area saved earlier in aoi.geojson" in printed
    assert "raw measurements" in printed
    readings = pd.read_csv(tmp_path / "pm25_readings.csv")
    assert set(readings["boxName"]) == {"Berliner Allee", "Updown"}
    assert len(readings) == 1699 + 1693
