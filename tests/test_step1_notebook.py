"""Step 1 run headless as a learner's kernel runs it: offline, with an area saved earlier, with wrong answers
and cells run out of order."""

import json
import re

import nbformat
import pandas as pd
import pytest
from nbclient.exceptions import CellExecutionError

from pm25.data.geo import Aoi, save_aoi
from pm25.learning.hints import hint
from pm25.learning.tasks import solution
from tests.notebooks import (
    SRC,
    cell_by_id,
    check_cell_id,
    execute_notebook,
    learner_error,
    run,
    stream_text,
    until,
    with_answer,
)
from tests.test_goals import NAME, numbered_list, readme_goals
from tests.test_reading_time import markdown_of

SOLVED_BBOX = solution("bounding_box")


def test_offline_run_uses_the_bundled_recording_and_writes_both_files(tmp_path):
    printed = stream_text(
        execute_notebook("step_1_data_prep.ipynb", {"OSEM_OFFLINE": "1", "PM25_DATA_DIR": str(tmp_path)})
    )
    assert "OSEM_OFFLINE=1: using the bundled real recording" in printed
    assert "Using the default area, central Berlin" in printed
    assert "48 boxes with a PM2.5 sensor in the area, 106524 readings." in printed
    assert "stood inside once" not in printed and "⚠️" not in printed
    assert "Relative humidity: the bundled recording has none." in printed
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
    humid = re.search(r"Relative humidity: 1 of 2 boxes have a humidity sensor; (\d+) hours above 80 %\.", printed)
    assert humid and int(humid[1]) > 0  # the hours the plot shades
    readings = pd.read_csv(tmp_path / "pm25_readings.csv")
    assert set(readings["boxName"]) == {"Berliner Allee", "Updown"}
    assert len(readings) == 1699 + 1693


STEP_1 = SRC / "step_1_data_prep.ipynb"


@pytest.mark.parametrize(
    ("task", "answer", "expected_hint"),
    [
        ("city_centre", "berlin_lat, berlin_lon = 13.4050, 52.5200", "You swapped them"),
        (
            "bounding_box",
            SOLVED_BBOX.replace(
                'f"{min(lons)},{min(lats)},{max(lons)},{max(lats)}"', "[min(lons), min(lats), max(lons), max(lats)]"
            ),
            "That is a list",
        ),
        (
            "bounding_box",
            SOLVED_BBOX.replace(
                'f"{min(lons)},{min(lats)},{max(lons)},{max(lats)}"',
                'f"{min(lats)},{min(lons)},{max(lats)},{max(lons)}"',
            ),
            "Longitude comes first",
        ),
        ("time_range", 'time_from = "2023-02-26"\ntime_to = "2023-03-01T09:00:00.000Z"', "a date alone"),
        (
            "time_range",
            'time_from = "2023-03-01T09:00:00.000Z"\ntime_to = "2023-02-26T08:00:00.000Z"',
            "did you swap them",
        ),
    ],
)
def test_a_wrong_answer_in_step_1_gets_its_hint(task, answer, expected_hint, tmp_path):
    notebook = with_answer(nbformat.read(STEP_1, as_version=4), task, answer)
    assert expected_hint in learner_error(notebook, SRC, {"OSEM_OFFLINE": "1", "PM25_DATA_DIR": str(tmp_path)})


def test_a_learners_own_right_answer_is_confirmed_and_used(tmp_path):
    answer = "berlin_lat, berlin_lon = 52.5163, 13.3777"
    notebook = with_answer(nbformat.read(STEP_1, as_version=4), "city_centre", answer)
    printed = stream_text(run(until(notebook, check_cell_id("city_centre")), SRC, {"PM25_DATA_DIR": str(tmp_path)}))
    assert "✅ Right: (52.5163, 13.3777) is 1.9 km from the centre of Berlin." in printed


def test_a_cell_run_before_the_cells_it_needs_says_so_in_one_line(tmp_path):
    notebook = nbformat.read(STEP_1, as_version=4)
    # Task 3's check without Task 2's cell before it
    notebook.cells = [cell_by_id(notebook, "imports"), cell_by_id(notebook, check_cell_id("bounding_box"))]
    with pytest.raises(CellExecutionError) as raised:
        run(notebook, SRC, {"PM25_DATA_DIR": str(tmp_path)})
    assert raised.value.ename == "NameError"
    shown = next(output for output in notebook.cells[1].outputs if output.output_type == "error")["traceback"]
    assert shown == [hint("aoi")]


# -- reading: the goals it serves, and honest about humidity (issue 24); its length: test_reading_time.py ------


def test_step_1_opens_with_the_readmes_goals_it_serves_word_for_word():
    top = nbformat.read(STEP_1, as_version=4).cells[0].source
    goals = numbered_list(top.split("Learning goals", 1)[1])
    assert [NAME.match(goal)["name"] for goal in goals] == ["Sensor streams", "openSenseMap"]
    assert all(goal in readme_goals() for goal in goals)


def test_step_1_says_what_pm25_is_and_what_humidity_does_to_it():
    text = "\n".join(markdown_of(nbformat.read(STEP_1, as_version=4)))
    assert "aerodynamic" in text
    assert "steadily worse" not in text  # the data cannot tell worse air from wet particles
    assert "The bundled recording has no humidity" in text and "70 %" in text and "80 %" in text
