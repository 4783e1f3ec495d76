"""The openSenseMap replay answers like the spec (docs/opensensemap-api.md) and like the real recording."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pandas as pd
import pytest
import requests

from tests import osem_replay
from tests.osem_replay import RECORDING_CSV, Fault, ReplayServer

BERLIN = "13.29,52.44,13.50,52.57"
MUENSTER = "7.518768,51.891272,7.702789,52.011038"
BUNDESKANZLERAMT = "5d6e465a953683001a2b62c5"
BOX, BOX_PM25 = "5a7f2eb1398b82001189eb65", "5a7f2eb1398b82001189eb68"  # "Berliner Allee", every ~2.5 min
BOX_NAME, BOX_LOCATION = "Berliner Allee", [13.4628, 52.5507]
UPDOWN = "5afdcb33223bd8001995fb21"  # a box with a (made-up) humidity sensor
# Four consecutive measurements of BOX just after midnight on 27 February 2023, and its last two, newest first.
MIDNIGHT = [f"2023-02-27T00:{time}Z" for time in ("01:06.088", "03:34.210", "06:02.272", "08:32.898")]
LAST = ["2023-03-01T08:22:07.065Z", "2023-03-01T08:19:39.063Z"]
SILENT_BOX_NAME, THERMO_BOX_NAME = "Testbox ohne Messungen", "Testbox nur Temperatur"
INDOOR_BOX_NAME = "Testbox drinnen"
TIMEOUT = 30


@pytest.fixture(scope="module")
def recording() -> pd.DataFrame:
    return pd.read_csv(RECORDING_CSV, dtype={"value": str})


@pytest.fixture(scope="module")
def server():
    with ReplayServer() as replay:
        yield replay


@pytest.fixture
def api(server: ReplayServer) -> ReplayServer:
    """The module's replay with its default clock and no faults pending."""
    default_now = server.now
    server.clear_faults()
    yield server
    server.clear_faults()
    server.now = default_now


def get(api: ReplayServer, path: str, **params) -> requests.Response:
    return requests.get(api.url + path, params=params, timeout=TIMEOUT)


def statistics(api: ReplayServer, **params) -> requests.Response:
    defaults = {
        "bbox": BERLIN,
        "phenomenon": "PM2.5",
        "operation": "arithmeticMean",
        "format": "tidy",
        "from-date": "2023-02-26T08:00:00Z",
        "to-date": "2023-03-01T09:00:00Z",
        "window": "1h",
    }
    return get(api, "/statistics/descriptive", **{**defaults, **params})


def bulk(api: ReplayServer, **params) -> requests.Response:
    """GET /boxes/data (the many-box download), by default for BOX around midnight of 27 February."""
    defaults = {
        "boxId": BOX,
        "phenomenon": "PM2.5",
        "from-date": "2023-02-27T00:00:00Z",
        "to-date": "2023-02-27T00:10:00Z",
    }
    return get(api, "/boxes/data", **{**defaults, **params})


def csv_rows(response: requests.Response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8"))))


def assert_error(response: requests.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {"code": code, "message": message}


def box_named(api: ReplayServer, name: str) -> dict:
    return next(box for box in api.boxes if box["name"] == name)


# ---------------------------------------------------------------- server basics


def test_server_listens_on_loopback_and_records_requests(api):
    assert api.url.startswith("http://127.0.0.1:") and not api.url.endswith("/")
    before = len(api.requests)
    get(api, "/boxes", bbox=MUENSTER)
    assert api.requests[before:] == [f"/boxes?bbox={MUENSTER.replace(',', '%2C')}"]


def test_stop_closes_the_port():
    with ReplayServer() as replay:
        url = replay.url
        assert requests.get(url + "/boxes", timeout=TIMEOUT).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/boxes", timeout=TIMEOUT)


def test_unknown_route_gives_restify_404(api):
    assert_error(get(api, "/nothing/here"), 404, "ResourceNotFound", "/nothing/here does not exist")


# ---------------------------------------------------------------- recorded boxes


def test_recorded_boxes_are_the_recording_boxes_plus_three_synthetic_ones(api, recording):
    names = {box["name"] for box in api.boxes}
    assert {box["_id"] for box in api.boxes} >= set(recording["boxId"])
    assert len(api.boxes) == recording["boxId"].nunique() + 3
    assert {SILENT_BOX_NAME, THERMO_BOX_NAME, INDOOR_BOX_NAME} <= names


def test_each_real_box_has_pm25_and_pm10_sensors_with_micro_sign_units(api):
    box = box_named(api, BOX_NAME)
    by_title = {sensor["title"]: sensor for sensor in box["sensors"]}
    assert set(by_title) == {"PM2.5", "PM10"}
    assert by_title["PM2.5"]["_id"] == BOX_PM25
    assert by_title["PM2.5"]["unit"] == "\u00b5g/m\u00b3"
    assert by_title["PM2.5"]["sensorType"] == "SDS 011"
    assert by_title["PM10"]["_id"] != BOX_PM25


def test_muenster_bbox_returns_the_berlin_box_through_its_history(api):
    boxes = get(api, "/boxes", bbox=MUENSTER).json()
    assert [box["_id"] for box in boxes] == [BUNDESKANZLERAMT]
    assert boxes[0]["name"] == "Bundeskanzleramt"
    assert boxes[0]["currentLocation"]["coordinates"] == [13.3691, 52.5202]
    assert box_named(api, "Bundeskanzleramt")["loc"][0]["geometry"]["coordinates"] == [7.62, 51.96]


def test_a_berlin_bbox_finds_the_recorded_and_synthetic_boxes(api, recording):
    found = {box["_id"] for box in get(api, "/boxes", bbox=BERLIN).json()}
    assert found == {box["_id"] for box in api.boxes}
    assert set(recording["boxId"]) < found


def test_exposure_filter_leaves_out_the_indoor_box(api):
    names = {box["name"] for box in get(api, "/boxes", bbox=BERLIN, exposure="outdoor").json()}
    assert INDOOR_BOX_NAME not in names and BOX_NAME in names


def test_default_listing_has_measurement_ids_and_no_location_history(api):
    box = get(api, "/boxes", bbox=BERLIN).json()[0]
    assert "loc" not in box
    assert isinstance(box["sensors"][0]["lastMeasurement"], str)
    assert len(box["sensors"][0]["lastMeasurement"]) == 24


def test_full_listing_populates_last_measurement(api):
    box = get(api, "/boxes", bbox=BERLIN, full="true").json()[0]
    assert set(box["sensors"][0]["lastMeasurement"]) == {"value", "createdAt"}
    assert isinstance(box["sensors"][0]["lastMeasurement"]["value"], str)


def test_minimal_listing_has_only_five_keys(api):
    box = get(api, "/boxes", bbox=BERLIN, minimal="true").json()[0]
    assert set(box) == {"_id", "name", "currentLocation", "exposure", "lastMeasurementAt"}


def test_date_and_phenomenon_filter_boxes_by_their_measurements(api):
    found = get(api, "/boxes", bbox=BERLIN, date="2023-02-27T12:00:00Z", phenomenon="PM2.5").json()
    names = {box["name"] for box in found}
    assert BOX_NAME in names
    assert SILENT_BOX_NAME not in names and THERMO_BOX_NAME not in names
    assert "loc" in found[0]


def test_boxes_geojson_is_a_feature_collection_of_points(api):
    collection = get(api, "/boxes", bbox=BERLIN, format="geojson").json()
    assert collection["type"] == "FeatureCollection"
    feature = collection["features"][0]
    assert feature["geometry"]["type"] == "Point"
    assert "currentLocation" not in feature["properties"] and "_id" in feature["properties"]


def test_exposure_outside_allowed_set_is_rejected(api):
    assert_error(
        get(api, "/boxes", exposure="space"),
        422,
        "UnprocessableEntity",
        "Illegal value for parameter exposure. allowed values: indoor, outdoor, mobile, unknown",
    )


@pytest.mark.parametrize(
    ("bbox", "detail"),
    [
        ("13.3,52.4,13.5", "Invalid number of coordinates."),
        ("13.3,52.4,east,52.6", "Supplied values can not be parsed as floats."),
        (
            "52.4,13.3,52.6,113.5",
            "Supplied coordinates are outside of -180, -90, 180, 90 (lngSW, latSW, lngNE, latNE).",
        ),
        ("13.3,52.4,13.3,52.6", "Supplied bounding box has zero surface area."),
    ],
)
def test_bad_bbox_gives_the_api_detail(api, bbox, detail):
    message = f"Illegal value for parameter bbox. {detail}"
    assert_error(get(api, "/boxes", bbox=bbox), 422, "UnprocessableEntity", message)
    assert_error(statistics(api, bbox=bbox), 422, "UnprocessableEntity", message)
    assert_error(bulk(api, boxId=None, bbox=bbox), 422, "UnprocessableEntity", message)


def test_near_finds_boxes_within_max_distance_nearest_first(api):
    boxes = get(api, "/boxes", near=",".join(map(str, BOX_LOCATION)), maxDistance=500).json()
    assert [box["name"] for box in boxes][:1] == [BOX_NAME]
    assert "Bundeskanzleramt" not in {box["name"] for box in boxes}


def test_repeated_scalar_parameter_is_400(api):
    response = requests.get(api.url + "/boxes?format=json&format=geojson", timeout=TIMEOUT)
    assert_error(response, 400, "BadRequest", "Parameter format must only be specified once")


# ---------------------------------------------------------------- one box, its sensors


def test_box_by_id_has_history_and_populated_sensors(api):
    response = get(api, f"/boxes/{BOX}")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    box = response.json()
    assert box["name"] == BOX_NAME and "loc" in box
    assert box["sensors"][0]["lastMeasurement"]["createdAt"] == LAST[0]


def test_box_by_id_as_geojson_is_one_feature(api):
    feature = get(api, f"/boxes/{BOX}", format="geojson").json()
    assert feature["type"] == "Feature"
    assert feature["geometry"]["coordinates"] == BOX_LOCATION
    assert feature["properties"]["name"] == BOX_NAME


def test_unknown_box_is_404_and_malformed_id_is_422(api):
    assert_error(get(api, "/boxes/" + "0" * 24), 404, "NotFound", "Box not found")
    assert_error(
        get(api, "/boxes/not-an-id"), 422, "UnprocessableEntity", "Parameter boxId is not parseable as datatype id"
    )


def test_box_sensors_lists_latest_values(api):
    listing = get(api, f"/boxes/{BOX}/sensors").json()
    assert listing["_id"] == BOX
    assert [sensor["title"] for sensor in listing["sensors"]] == ["PM2.5", "PM10"]


def test_box_sensors_with_count_gives_newest_measurements_first(api):
    listing = get(api, f"/boxes/{BOX}/sensors", count=2).json()
    assert listing["name"] == BOX_NAME
    times = [m["createdAt"] for m in listing["sensors"][0]["lastMeasurements"]["measurements"]]
    assert times == LAST


def test_count_above_100_is_rejected(api):
    assert_error(
        get(api, f"/boxes/{BOX}/sensors", count=101),
        422,
        "UnprocessableEntity",
        "Illegal value for parameter count. Supplied value 101 is outside of allowed range (> 100)",
    )


def test_single_sensor_and_its_value_only(api):
    sensor = get(api, f"/boxes/{BOX}/sensors/{BOX_PM25}").json()
    value = get(api, f"/boxes/{BOX}/sensors/{BOX_PM25}", onlyValue="true").json()
    assert sensor["title"] == "PM2.5"
    assert value == sensor["lastMeasurement"]["value"]


def test_unknown_sensor_is_404(api):
    unknown = "ab" * 12
    assert_error(
        get(api, f"/boxes/{BOX}/sensors/{unknown}"), 404, "NotFound", f"Sensor with id {unknown} does not exist"
    )


def test_now_moves_the_latest_measurement(api):
    api.now = datetime(2023, 2, 27, 0, 5, tzinfo=UTC)
    sensor = get(api, f"/boxes/{BOX}/sensors/{BOX_PM25}").json()
    box = get(api, f"/boxes/{BOX}").json()
    assert sensor["lastMeasurement"]["createdAt"] == MIDNIGHT[1]
    assert box["lastMeasurementAt"] == MIDNIGHT[1]
    api.now = datetime(2023, 2, 27, 0, 6, 2, 272000, tzinfo=UTC)  # a reading at exactly `now` counts
    sensor = get(api, f"/boxes/{BOX}/sensors/{BOX_PM25}").json()
    assert sensor["lastMeasurement"]["createdAt"] == MIDNIGHT[2]


def test_synthetic_silent_box_has_no_measurements(api):
    silent = box_named(api, SILENT_BOX_NAME)
    assert "lastMeasurementAt" not in silent
    assert all("lastMeasurement" not in sensor for sensor in silent["sensors"])
    assert any(sensor["title"] == "PM2.5" for sensor in silent["sensors"])


def test_synthetic_thermometer_box_has_no_pm_sensor(api):
    thermo = box_named(api, THERMO_BOX_NAME)
    assert [sensor["title"] for sensor in thermo["sensors"]] == ["Temperatur"]


def test_every_recorded_box_but_one_has_a_made_up_humidity_sensor_measuring_with_its_pm25(api, recording):
    with_humidity = {
        box["name"] for box in api.boxes if any(sensor["title"] == "rel. Luftfeuchte" for sensor in box["sensors"])
    }
    assert with_humidity == set(recording["boxName"]) - {BOX_NAME}  # "Berliner Allee": a box without one
    updown = osem_replay._BOXES_BY_ID[UPDOWN]
    pm25, humidity = updown.sensors[0], updown.sensors[-1]
    assert (humidity.title, humidity.unit, humidity.sensor_type) == ("rel. Luftfeuchte", "%", "BME280")
    assert humidity.times == pm25.times  # one box sends all its sensors at once
    assert all(0 <= float(value) <= 100 for value in humidity.values)


def test_the_made_up_humidity_is_humid_at_night_and_dry_in_the_afternoon(api):
    means = statistics(api, bbox=None, boxId=UPDOWN, phenomenon="rel. Luftfeuchte").text.splitlines()[1:]
    by_hour = {row.split(",")[1]: float(row.split(",")[2]) for row in means}
    assert by_hour["2023-02-27T03:00:00.000Z"] > 80 > by_hour["2023-02-27T15:00:00.000Z"]


# ---------------------------------------------------------------- raw data of one sensor


def test_data_is_newest_first_with_both_ends_inclusive(api):
    rows = get(api, f"/boxes/{BOX}/data/{BOX_PM25}", **{"from-date": MIDNIGHT[0], "to-date": MIDNIGHT[2]}).json()
    assert [row["createdAt"] for row in rows] == MIDNIGHT[2::-1]
    assert isinstance(rows[0]["value"], str) and rows[0]["location"] == BOX_LOCATION


def test_data_defaults_to_48_hours_before_now(api, recording):
    rows = get(api, f"/boxes/{BOX}/data/{BOX_PM25}").json()
    assert rows[0]["createdAt"] == LAST[0]
    times = pd.to_datetime(recording.loc[recording["boxId"] == BOX, "createdAt"], utc=True)
    expected = times[times >= pd.Timestamp(osem_replay.DEFAULT_NOW) - pd.Timedelta(hours=48)]
    assert len(rows) == len(expected) > 1000


def test_data_as_csv(api):
    response = get(
        api,
        f"/boxes/{BOX}/data/{BOX_PM25}",
        format="csv",
        download="true",
        **{"from-date": MIDNIGHT[0], "to-date": MIDNIGHT[1]},
    )
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == f"attachment; filename={BOX_PM25}.csv"
    rows = csv_rows(response)
    assert rows == [["createdAt", "value"], [MIDNIGHT[1], "37.1"], [MIDNIGHT[0], "40.77"]]


def test_data_as_csv_with_semicolons(api):
    response = get(api, f"/boxes/{BOX}/data/{BOX_PM25}", format="csv", delimiter="semicolon")
    assert response.text.startswith(f"createdAt;value\n{LAST[0]};")


def test_data_returns_only_the_newest_rows_up_to_the_cap(api, monkeypatch):
    monkeypatch.setattr(osem_replay, "MAX_DATA_ROWS", 100)  # the recorded series are shorter than 10,000
    rows = get(
        api, f"/boxes/{BOX}/data/{BOX_PM25}", **{"from-date": "2020-01-01T00:00:00Z", "to-date": "2025-01-01T00:00:00Z"}
    ).json()
    assert len(rows) == 100
    assert rows[0]["createdAt"] == LAST[0]


def test_data_of_unknown_sensor_is_empty(api):
    assert get(api, f"/boxes/{BOX}/data/{'ab' * 12}").json() == []


# ---------------------------------------------------------------- raw data of many boxes (/boxes/data)


def test_bulk_data_excludes_both_ends_of_the_range(api):
    rows = csv_rows(bulk(api, **{"from-date": MIDNIGHT[0], "to-date": MIDNIGHT[3]}))
    assert [row[1] for row in rows[1:]] == [MIDNIGHT[2], MIDNIGHT[1]]  # newest first


def test_bulk_data_is_a_csv_download_with_the_default_columns(api):
    response = bulk(api)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=opensensemap_org-download-PM2.5-sensorId-createdAt-value-lat-lon-20230301_090000.csv"
    )
    header, *rows = csv_rows(response)
    assert header == ["sensorId", "createdAt", "value", "lat", "lon"]
    assert rows[-1] == [BOX_PM25, MIDNIGHT[0], "40.77", "52.5507", "13.4628"]
    assert response.text.endswith("\n")
    assert "Content-Disposition" not in bulk(api, download="false").headers


def test_bulk_columns_replace_the_default_and_set_the_order(api):
    assert csv_rows(bulk(api, columns="exposure"))[:2] == [["exposure"], ["outdoor"]]
    header, first = csv_rows(bulk(api, columns="boxName,value,createdAt,unit,sensorType"))[:2]
    assert header == ["boxName", "value", "createdAt", "unit", "sensorType"]
    assert first == [BOX_NAME, "39.2", MIDNIGHT[3], "µg/m³", "SDS 011"]


def test_bulk_json_rows_always_have_created_at_and_value_as_text(api):
    response = bulk(api, format="json", columns="boxId,lat")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()[0] == {"createdAt": MIDNIGHT[3], "value": "39.2", "boxId": BOX, "lat": 52.5507}


def test_bulk_bbox_over_the_whole_recording_returns_every_measurement_once(api, recording):
    rows = csv_rows(
        bulk(
            api,
            boxId=None,
            bbox=BERLIN,
            exposure="outdoor",
            columns="sensorId,createdAt,value",
            **{"from-date": "2023-02-26T00:00:00Z", "to-date": "2023-03-02T00:00:00Z"},
        )
    )
    replayed = sorted(tuple(row) for row in rows[1:])
    assert replayed == sorted(recording[["sensorId", "createdAt", "value"]].itertuples(index=False, name=None))


def test_bulk_bbox_filters_by_where_the_measurement_was_taken(api):
    rows = csv_rows(bulk(api, boxId=None, bbox="13.46,52.55,13.47,52.56", columns="boxName"))
    assert {row[0] for row in rows[1:]} == {BOX_NAME}
    assert bulk(api, boxId=None, bbox="3.0,54.0,3.5,54.5").text == "sensorId,createdAt,value,lat,lon\n"


def test_bulk_exposure_selects_boxes(api):
    params = {"boxId": None, "bbox": BERLIN, "columns": "boxName"}
    everyone = {row[0] for row in csv_rows(bulk(api, **params))[1:]}
    outdoor = {row[0] for row in csv_rows(bulk(api, exposure="outdoor", **params))[1:]}
    assert everyone - outdoor == {INDOOR_BOX_NAME}


def test_bulk_defaults_to_the_two_days_before_now(api):
    api.now = datetime(2023, 2, 28, 8, 24, 39, 302000, tzinfo=UTC)
    times = [row[1] for row in csv_rows(bulk(api, **{"from-date": None, "to-date": None}))[1:]]
    assert max(times) < "2023-02-28T08:24:39.302Z" and min(times) > "2023-02-26T08:24:39.302Z"
    assert min(times) < "2023-02-26T08:30:00Z" and max(times) > "2023-02-28T08:20:00Z"


def test_bulk_errors_follow_the_api(api):
    assert_error(bulk(api, bbox=BERLIN), 400, "BadRequest", "please specify only boxId or bbox")
    assert_error(bulk(api, boxId=None), 400, "BadRequest", "please specify either boxId or bbox")
    assert_error(bulk(api, phenomenon=None), 400, "BadRequest", "missing required parameter phenomenon")
    assert_error(bulk(api, boxId="0" * 24), 404, "NotFound", "No senseBoxes found")
    assert bulk(api, columns="colour").status_code == 422
    assert_error(
        bulk(api, **{"from-date": "2023-02-28T00:00:00Z"}),
        409,
        "InvalidArgument",
        "Invalid time frame specified: fromDate (2023-02-28T00:00:00.000Z) is after toDate (2023-02-27T00:10:00.000Z)",
    )


# ---------------------------------------------------------------- descriptive statistics


def test_tidy_hourly_means_are_those_of_the_raw_recording(api, recording):
    header, *rows = csv_rows(statistics(api, exposure="outdoor", columns="boxId"))
    assert header == ["sensorId", "boxId", "time_start", "arithmeticMean_1h"]
    replayed = pd.DataFrame(rows, columns=["sensorId", "boxId", "hour", "mean"]).astype({"mean": float})
    times = pd.to_datetime(recording["createdAt"], utc=True)
    # A window covers (start, start + 1 h]: a value on the hour counts towards the hour before.
    hours = (times.dt.ceil("h") - pd.Timedelta(hours=1)).dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    expected = (
        recording.assign(hour=hours, value=recording["value"].astype(float))
        .groupby(["sensorId", "hour"])["value"]
        .mean()
    )
    merged = replayed.set_index(["sensorId", "hour"])["mean"]
    assert set(merged.index) == set(expected.index)
    assert (merged.sort_index() - expected.sort_index()).abs().max() < 1e-9


def test_tidy_header_echoes_columns_in_requested_order_and_window_as_typed(api):
    header = csv_rows(statistics(api, window="25h", columns="unit,boxId"))[0]
    assert header == ["sensorId", "unit", "boxId", "time_start", "arithmeticMean_25h"]


def test_hourly_windows_are_aligned_to_the_epoch(api):
    response = statistics(
        api, boxId=BOX, bbox=None, **{"from-date": "2023-02-27T00:30:00Z", "to-date": "2023-02-27T02:10:00Z"}
    )
    rows = csv_rows(response)[1:]
    # floor(from) .. floor(to) + 1 h: (2 - 0) + 2 windows
    assert [row[1] for row in rows] == [f"2023-02-27T0{hour}:00:00.000Z" for hour in range(4)]
    raw = get(
        api,
        f"/boxes/{BOX}/data/{BOX_PM25}",
        **{"from-date": "2023-02-27T01:00:00.001Z", "to-date": "2023-02-27T02:00:00Z"},
    ).json()
    hourly_mean = sum(float(row["value"]) for row in raw) / len(raw)
    assert abs(float(rows[1][2]) - hourly_mean) < 1e-9


def test_a_reading_on_a_boundary_counts_towards_the_earlier_window(api):
    indoor = box_named(api, INDOOR_BOX_NAME)["_id"]  # measures at minute 5, 15, 25, ... exactly
    rows = csv_rows(
        statistics(
            api,
            boxId=indoor,
            bbox=None,
            window="5m",
            operation="max",
            **{"from-date": "2023-02-27T00:00:00Z", "to-date": "2023-02-27T00:10:00Z"},
        )
    )
    # Readings at 00:05 and 00:15 belong to the windows starting 00:00 and 00:10.
    assert [row[1] for row in rows[1:]] == ["2023-02-27T00:00:00.000Z", "2023-02-27T00:10:00.000Z"]


def test_wide_csv_has_one_column_per_window_and_truncated_labels(api):
    header, *rows = csv_rows(
        statistics(
            api,
            format="csv",
            boxId=BOX,
            bbox=None,
            **{"from-date": "2023-02-27T00:30:00Z", "to-date": "2023-02-27T02:10:00Z"},
        )
    )
    assert header == ["sensorId", *(f"pm2-5_2023-02-27T0{hour}Z" for hour in range(4))]
    assert [row[0] for row in rows] == [BOX_PM25]


def test_daily_wide_csv_labels_by_date(api):
    header = csv_rows(statistics(api, format="csv", window="1d"))[0]
    assert header[1] == "pm2-5_2023-02-26Z" and header[-1] == "pm2-5_2023-03-02Z"
    assert len(header) == 1 + 5


def test_json_format_keys_windows_by_iso_start(api):
    response = statistics(api, format="json", window="1d", boxId=BOX, bbox=None, columns="boxName")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    [document] = response.json()
    assert document["sensorId"] == BOX_PM25 and document["boxName"] == BOX_NAME
    assert isinstance(document["2023-02-27T00:00:00.000Z"], float)


@pytest.mark.parametrize("operation", ["min", "max", "median", "sum", "standardDeviation"])
def test_other_operations_agree_with_the_raw_values(api, operation):
    import statistics as stats

    rows = csv_rows(
        statistics(
            api,
            boxId=BOX,
            bbox=None,
            operation=operation,
            **{"from-date": "2023-02-27T01:30:00Z", "to-date": "2023-02-27T01:30:00Z"},
        )
    )
    raw = get(
        api,
        f"/boxes/{BOX}/data/{BOX_PM25}",
        **{"from-date": "2023-02-27T01:00:00.001Z", "to-date": "2023-02-27T02:00:00Z"},
    ).json()
    values = [float(row["value"]) for row in raw]
    expected = {"min": min, "max": max, "median": stats.median, "sum": sum, "standardDeviation": stats.pstdev}
    assert rows[0][-1] == f"{operation}_1h"
    assert abs(float(rows[1][2]) - expected[operation](values)) < 1e-9


def test_the_rarely_sending_box_has_few_hours(api):
    tempelhof = box_named(api, "Tempelhofer Damm / Paradestrasse - Outside")
    rows = csv_rows(statistics(api, boxId=tempelhof["_id"], bbox=None))
    assert 1 < len(rows) - 1 < 72


def test_outdoor_statistics_leave_out_the_indoor_box(api):
    indoor = box_named(api, INDOOR_BOX_NAME)["sensors"][0]["_id"]
    assert indoor in {row[0] for row in csv_rows(statistics(api))[1:]}
    assert indoor not in {row[0] for row in csv_rows(statistics(api, exposure="outdoor"))[1:]}


def test_boxes_without_data_give_the_header_only(api):
    silent_id = box_named(api, SILENT_BOX_NAME)["_id"]
    response = statistics(api, boxId=silent_id, bbox=None)
    assert response.status_code == 200
    assert response.text == "sensorId,time_start,arithmeticMean_1h\n"


def test_no_boxes_in_bbox_is_404(api):
    assert_error(statistics(api, bbox="-30,-10,-20,0"), 404, "NotFound", "No senseBoxes found")


def test_both_or_neither_box_selector_is_400(api):
    assert_error(statistics(api, boxId=BOX), 400, "BadRequest", "please specify only boxId or bbox")
    assert_error(statistics(api, bbox=None), 400, "BadRequest", "please specify either boxId or bbox")


def test_missing_required_parameter_is_400(api):
    assert_error(statistics(api, **{"to-date": None}), 400, "BadRequest", "missing required parameter toDate")


@pytest.mark.parametrize("bad", ["2023-02-27", "2023-02-27T00:00:00+00:00", "2023-02-27T00:00Z"])
def test_bad_timestamp_is_422_naming_the_alias(api, bad):
    message = f"Illegal value for parameter fromDate (from-date). Invalid timestamp '{bad}'."
    assert_error(statistics(api, **{"from-date": bad}), 422, "UnprocessableEntity", message)
    assert_error(bulk(api, **{"from-date": bad}), 422, "UnprocessableEntity", message)


def test_from_after_to_is_409(api):
    response = statistics(api, **{"from-date": "2023-03-01T00:00:00Z", "to-date": "2023-02-27T00:00:00Z"})
    assert_error(
        response,
        409,
        "InvalidArgument",
        "Invalid time frame specified: fromDate (2023-03-01T00:00:00.000Z) is after toDate (2023-02-27T00:00:00.000Z)",
    )


@pytest.mark.parametrize("window", ["30000", "59s", "soon"])
def test_window_under_a_minute_is_400(api, window):
    assert_error(
        statistics(api, window=window), 400, "BadRequest", "Invalid window length. Smallest window size is 1 minute."
    )


def test_operation_outside_allowed_set_is_422(api):
    response = statistics(api, operation="rangeMax")
    assert response.status_code == 422
    assert response.json()["message"].startswith("Illegal value for parameter operation. allowed values: ")


def test_statistics_download_is_an_attachment_by_default(api):
    assert statistics(api).headers["Content-Disposition"].startswith("attachment; filename=opensensemap_org-")
    assert "Content-Disposition" not in statistics(api, download="false").headers


# ---------------------------------------------------------------- fault injection


def test_status_fault_replies_with_restify_error_once(api):
    api.inject(Fault("status", status=503))
    assert_error(get(api, "/boxes"), 503, "ServiceUnavailable", "injected fault: status 503")
    assert get(api, "/boxes").status_code == 200


def test_slow_fault_makes_a_client_time_out(api):
    api.inject(Fault("slow", delay_s=1.0))
    with pytest.raises(requests.ReadTimeout):
        requests.get(api.url + "/boxes", timeout=0.2)
    assert get(api, "/boxes").status_code == 200


def test_malformed_fault_is_neither_json_nor_csv(api):
    api.inject(Fault("malformed"))
    response = get(api, "/boxes")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    with pytest.raises(csv.Error):
        list(csv.reader(io.StringIO(response.text), strict=True))


def test_truncated_fault_gives_the_first_half_of_the_real_body(api):
    path = f"/boxes/{BOX}/data/{BOX_PM25}"
    real = get(api, path).text
    api.inject(Fault("truncated"))
    cut = get(api, path)
    assert cut.status_code == 200
    assert cut.text == real[: len(real) // 2]


def test_faults_are_used_up_in_order(api):
    api.inject(Fault("status", status=500), Fault("status", status=429))
    assert [get(api, "/boxes").status_code for _ in range(3)] == [500, 429, 200]


def test_fault_applies_only_under_its_path_prefix(api):
    api.inject(Fault("status", status=502, path_prefix="/statistics"))
    assert get(api, "/boxes").status_code == 200
    assert statistics(api).status_code == 502
    assert statistics(api).status_code == 200


def test_clear_faults_drops_pending_faults(api):
    api.inject(Fault("status"))
    api.clear_faults()
    assert get(api, "/boxes").status_code == 200


def test_unknown_fault_kind_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        Fault("gremlins")
