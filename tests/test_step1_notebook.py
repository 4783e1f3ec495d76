"""Step 1 run headless as a learner's kernel runs it: offline, and with an area saved earlier."""

import json

import pandas as pd

from pm25.geo import Aoi, save_aoi
from tests.notebooks import execute_notebook, stream_text


def test_offline_run_uses_the_bundled_sample_and_writes_both_files(tmp_path):
    printed = stream_text(
        execute_notebook("step_1_data_prep.ipynb", {"OSEM_OFFLINE": "1", "PM25_DATA_DIR": str(tmp_path)})
    )
    assert "OSEM_OFFLINE=1: using the bundled real sample" in printed
    assert "Using the bundled Münster area" in printed
    readings = pd.read_csv(tmp_path / "pm25_readings.csv")
    assert len(readings) > 0 and "Bundeskanzleramt" not in set(readings["boxName"])
    boxes = json.loads((tmp_path / "senseboxes.geojson").read_text())["features"]
    assert {box["properties"]["boxId"] for box in boxes} == set(readings["boxId"])


def test_an_area_saved_earlier_is_used_and_named(tmp_path, replay_api):
    # A small area around the Wetterstation Erpho and PGKN FS03, north-east of the centre.
    save_aoi(Aoi.from_bbox((7.64, 51.96, 7.65, 51.99), "test"), tmp_path / "aoi.geojson")
    printed = stream_text(execute_notebook("step_1_data_prep.ipynb", {"PM25_DATA_DIR": str(tmp_path)}))
    assert "Using the area saved earlier in aoi.geojson" in printed
    readings = pd.read_csv(tmp_path / "pm25_readings.csv")
    assert set(readings["boxName"]) == {"Wetterstation Erpho", "PGKN FS03", "Feinstaub_MS_PIUSALLEE"}
