"""The openSenseMap replay answers like the spec (docs/opensensemap-api.md) and like the real sample."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
import requests

from tests import osem_replay
from tests.osem_replay import SAMPLE_CSV, Fault, ReplayServer

MUENSTER = "7.518768,51.891272,7.702789,52.011038"
BERLIN_BOX = "5d6e465a953683001a2b62c5"
ERPHO_BOX, ERPHO_PM25 = "591f578c51d34600116a8ea5", "59458624a4ad590011186665"
STUCK_BOX = "5abd221b850005001b1aff35"
NIENBERGE_BOX = "5e98843845f937001cf26c6d"
SILENT_BOX_NAME, THERMO_BOX_NAME = "Testbox ohne Messungen", "Testbox nur Temperatur"
TIMEOUT = 10


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
    defaults = {"bbox": MUENSTER, "phenomenon": "PM2.5", "operation": "arithmeticMean", "format": "tidy",
                "from-date": "2024-01-15T00:00:00Z", "to-date": "2024-01-21T23:59:59Z", "window": "1h"}
    return get(api, "/statistics/descriptive", **{**defaults, **params})


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


def test_recorded_boxes_are_the_sample_boxes_plus_two_synthetic_ones(api):
    with SAMPLE_CSV.open(encoding="utf-8") as file:
        sample_ids = {row["boxId"] for row in csv.DictReader(file)}
    names = {box["name"] for box in api.boxes}
    assert {box["_id"] for box in api.boxes} >= sample_ids
    assert len(api.boxes) == len(sample_ids) + 2
    assert {SILENT_BOX_NAME, THERMO_BOX_NAME} <= names


def test_each_real_box_has_pm25_and_pm10_sensors_with_micro_sign_units(api):
    erpho = next(box for box in api.boxes if box["_id"] == ERPHO_BOX)
    by_title = {sensor["title"]: sensor for sensor in erpho["sensors"]}
    assert set(by_title) == {"PM2.5", "PM10"}
    assert by_title["PM2.5"]["_id"] == ERPHO_PM25
    assert by_title["PM2.5"]["unit"] == "\u00b5g/m\u00b3"
    assert by_title["PM2.5"]["sensorType"] == "SDS 011"
    assert by_title["PM10"]["_id"] != ERPHO_PM25


def test_muenster_bbox_returns_the_berlin_box_through_its_history(api):
    boxes = get(api, "/boxes", bbox=MUENSTER).json()
    berlin = next(box for box in boxes if box["_id"] == BERLIN_BOX)
    assert berlin["name"] == "Bundeskanzleramt"
    assert berlin["currentLocation"]["coordinates"] == [13.369128, 52.520151]
    history = box_named(api, "Bundeskanzleramt")["loc"]
    assert history[0]["geometry"]["coordinates"] == [7.62, 51.96]


def test_a_berlin_bbox_finds_only_the_berlin_box(api):
    boxes = get(api, "/boxes", bbox="13.2,52.4,13.5,52.6").json()
    assert [box["_id"] for box in boxes] == [BERLIN_BOX]


def test_default_listing_has_measurement_ids_and_no_location_history(api):
    box = get(api, "/boxes", bbox=MUENSTER).json()[0]
    assert "loc" not in box
    assert isinstance(box["sensors"][0]["lastMeasurement"], str)
    assert len(box["sensors"][0]["lastMeasurement"]) == 24


def test_full_listing_populates_last_measurement(api):
    box = get(api, "/boxes", bbox=MUENSTER, full="true").json()[0]
    assert set(box["sensors"][0]["lastMeasurement"]) == {"value", "createdAt"}
    assert isinstance(box["sensors"][0]["lastMeasurement"]["value"], str)


def test_minimal_listing_has_only_five_keys(api):
    box = get(api, "/boxes", bbox=MUENSTER, minimal="true").json()[0]
    assert set(box) == {"_id", "name", "currentLocation", "exposure", "lastMeasurementAt"}


def test_date_and_phenomenon_filter_boxes_by_their_measurements(api):
    found = get(api, "/boxes", bbox=MUENSTER, date="2024-01-20T12:00:00Z", phenomenon="PM2.5").json()
    names = {box["name"] for box in found}
    assert "Wetterstation Erpho" in names
    assert "Nienberge Garten" not in names  # its four windows end on 2024-01-19
    assert SILENT_BOX_NAME not in names and THERMO_BOX_NAME not in names
    assert "loc" in found[0]


def test_boxes_geojson_is_a_feature_collection_of_points(api):
    collection = get(api, "/boxes", bbox=MUENSTER, format="geojson").json()
    assert collection["type"] == "FeatureCollection"
    feature = collection["features"][0]
    assert feature["geometry"]["type"] == "Point"
    assert "currentLocation" not in feature["properties"] and "_id" in feature["properties"]


def test_exposure_outside_allowed_set_is_rejected(api):
    assert_error(get(api, "/boxes", exposure="space"), 422, "UnprocessableEntity",
                 "Illegal value for parameter exposure. allowed values: indoor, outdoor, mobile, unknown")


@pytest.mark.parametrize(
    ("bbox", "detail"),
    [
        ("7.5,51.9,7.7", "Invalid number of coordinates."),
        ("7.5,51.9,east,52.0", "Supplied values can not be parsed as floats."),
        ("51.9,7.5,52.0,97.7", "Supplied coordinates are outside of -180, -90, 180, 90 (lngSW, latSW, lngNE, latNE)."),
        ("7.5,51.9,7.5,52.0", "Supplied bounding box has zero surface area."),
    ],
)
def test_bad_bbox_gives_the_api_detail(api, bbox, detail):
    message = f"Illegal value for parameter bbox. {detail}"
    assert_error(get(api, "/boxes", bbox=bbox), 422, "UnprocessableEntity", message)
    assert_error(statistics(api, bbox=bbox), 422, "UnprocessableEntity", message)


def test_near_finds_boxes_within_max_distance_nearest_first(api):
    boxes = get(api, "/boxes", near="7.645,51.964", maxDistance=3000).json()
    assert [box["name"] for box in boxes][:2] == ["Wetterstation Erpho", "Feinstaub_MS_PIUSALLEE"]
    assert "Bundeskanzleramt" not in {box["name"] for box in boxes}


def test_repeated_scalar_parameter_is_400(api):
    response = requests.get(api.url + "/boxes?format=json&format=geojson", timeout=TIMEOUT)
    assert_error(response, 400, "BadRequest", "Parameter format must only be specified once")


# ---------------------------------------------------------------- one box, its sensors


def test_box_by_id_has_history_and_populated_sensors(api):
    response = get(api, f"/boxes/{ERPHO_BOX}")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    box = response.json()
    assert box["name"] == "Wetterstation Erpho" and "loc" in box
    assert box["sensors"][0]["lastMeasurement"]["createdAt"] == "2024-01-21T23:55:00.000Z"


def test_box_by_id_as_geojson_is_one_feature(api):
    feature = get(api, f"/boxes/{ERPHO_BOX}", format="geojson").json()
    assert feature["type"] == "Feature"
    assert feature["geometry"]["coordinates"] == [7.645218, 51.96422]
    assert feature["properties"]["name"] == "Wetterstation Erpho"


def test_unknown_box_is_404_and_malformed_id_is_422(api):
    assert_error(get(api, "/boxes/" + "0" * 24), 404, "NotFound", "Box not found")
    assert_error(get(api, "/boxes/not-an-id"), 422, "UnprocessableEntity",
                 "Parameter boxId is not parseable as datatype id")


def test_box_sensors_lists_latest_values(api):
    listing = get(api, f"/boxes/{ERPHO_BOX}/sensors").json()
    assert listing["_id"] == ERPHO_BOX
    assert [sensor["title"] for sensor in listing["sensors"]] == ["PM2.5", "PM10"]


def test_box_sensors_with_count_gives_newest_measurements_first(api):
    listing = get(api, f"/boxes/{ERPHO_BOX}/sensors", count=3).json()
    assert listing["name"] == "Wetterstation Erpho"
    times = [m["createdAt"] for m in listing["sensors"][0]["lastMeasurements"]["measurements"]]
    assert times == ["2024-01-21T23:55:00.000Z", "2024-01-21T23:45:00.000Z", "2024-01-21T23:35:00.000Z"]


def test_count_above_100_is_rejected(api):
    assert_error(get(api, f"/boxes/{ERPHO_BOX}/sensors", count=101), 422, "UnprocessableEntity",
                 "Illegal value for parameter count. Supplied value 101 is outside of allowed range (> 100)")


def test_single_sensor_and_its_value_only(api):
    sensor = get(api, f"/boxes/{ERPHO_BOX}/sensors/{ERPHO_PM25}").json()
    value = get(api, f"/boxes/{ERPHO_BOX}/sensors/{ERPHO_PM25}", onlyValue="true").json()
    assert sensor["title"] == "PM2.5"
    assert value == sensor["lastMeasurement"]["value"]


def test_unknown_sensor_is_404(api):
    unknown = "ab" * 12
    assert_error(get(api, f"/boxes/{ERPHO_BOX}/sensors/{unknown}"), 404, "NotFound",
                 f"Sensor with id {unknown} does not exist")


def test_now_moves_the_latest_measurement(api):
    api.now = datetime(2024, 1, 18, 12, 0, 30, tzinfo=UTC)
    sensor = get(api, f"/boxes/{ERPHO_BOX}/sensors/{ERPHO_PM25}").json()
    box = get(api, f"/boxes/{ERPHO_BOX}").json()
    assert sensor["lastMeasurement"]["createdAt"] == "2024-01-18T11:55:00.000Z"
    assert box["lastMeasurementAt"] == "2024-01-18T11:55:00.000Z"
    api.now = datetime(2024, 1, 18, 12, 5, tzinfo=UTC)  # a reading at exactly `now` counts
    sensor = get(api, f"/boxes/{ERPHO_BOX}/sensors/{ERPHO_PM25}").json()
    assert sensor["lastMeasurement"]["createdAt"] == "2024-01-18T12:05:00.000Z"


def test_synthetic_silent_box_has_no_measurements(api):
    silent = box_named(api, SILENT_BOX_NAME)
    assert "lastMeasurementAt" not in silent
    assert all("lastMeasurement" not in sensor for sensor in silent["sensors"])
    assert any(sensor["title"] == "PM2.5" for sensor in silent["sensors"])


def test_synthetic_thermometer_box_has_no_pm_sensor(api):
    thermo = box_named(api, THERMO_BOX_NAME)
    assert [sensor["title"] for sensor in thermo["sensors"]] == ["Temperatur"]


# ---------------------------------------------------------------- raw data of one sensor


def test_data_is_newest_first_with_both_ends_inclusive(api):
    rows = get(api, f"/boxes/{ERPHO_BOX}/data/{ERPHO_PM25}",
               **{"from-date": "2024-01-16T00:05:00Z", "to-date": "2024-01-16T00:45:00.000Z"}).json()
    assert [row["createdAt"] for row in rows] == [
        f"2024-01-16T00:{minute}:00.000Z" for minute in ("45", "35", "25", "15", "05")
    ]
    assert isinstance(rows[0]["value"], str) and rows[0]["location"] == [7.645218, 51.96422]


def test_data_defaults_to_48_hours_before_now(api):
    rows = get(api, f"/boxes/{ERPHO_BOX}/data/{ERPHO_PM25}").json()
    assert rows[0]["createdAt"] == "2024-01-21T23:55:00.000Z"
    assert rows[-1]["createdAt"] == "2024-01-20T00:05:00.000Z"
    assert len(rows) == 48 * 6


def test_data_as_csv(api):
    response = get(api, f"/boxes/{ERPHO_BOX}/data/{ERPHO_PM25}", format="csv", download="true",
                   **{"from-date": "2024-01-16T00:00:00Z", "to-date": "2024-01-16T00:20:00Z"})
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == f"attachment; filename={ERPHO_PM25}.csv"
    rows = csv_rows(response)
    assert rows[0] == ["createdAt", "value"]
    assert [row[0] for row in rows[1:]] == ["2024-01-16T00:15:00.000Z", "2024-01-16T00:05:00.000Z"]


def test_data_as_csv_with_semicolons(api):
    response = get(api, f"/boxes/{ERPHO_BOX}/data/{ERPHO_PM25}", format="csv", delimiter="semicolon")
    assert response.text.startswith("createdAt;value\n2024-01-21T23:55:00.000Z;")


def test_data_returns_only_the_newest_rows_up_to_the_cap(api, monkeypatch):
    monkeypatch.setattr(osem_replay, "MAX_DATA_ROWS", 100)  # the recorded series are shorter than 10,000
    rows = get(api, f"/boxes/{ERPHO_BOX}/data/{ERPHO_PM25}",
               **{"from-date": "2020-01-01T00:00:00Z", "to-date": "2025-01-01T00:00:00Z"}).json()
    assert len(rows) == 100
    assert rows[0]["createdAt"] == "2024-01-23T19:55:00.000Z"  # the last reading of the sample's last window


def test_data_of_unknown_sensor_is_empty(api):
    assert get(api, f"/boxes/{ERPHO_BOX}/data/{'ab' * 12}").json() == []


# ---------------------------------------------------------------- descriptive statistics


def test_tidy_25h_windows_reproduce_the_sample(api):
    response = statistics(api, window="90000000", columns="boxId,boxName,phenomenon,sensorType,unit")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    header, *rows = csv_rows(response)
    assert header == ["sensorId", "boxId", "boxName", "phenomenon", "sensorType", "unit", "time_start",
                      "arithmeticMean_90000000"]
    replayed = {(row[0], row[6]): float(row[7]) for row in rows}
    with SAMPLE_CSV.open(encoding="utf-8") as file:
        sample = {(row["sensorId_y"], row["day"]): float(row["value"]) for row in csv.DictReader(file)
                  if row["value"]}
    assert replayed.keys() == sample.keys()
    assert all(abs(replayed[key] - sample[key]) < 0.01 for key in sample)


def test_tidy_header_echoes_columns_in_requested_order_and_window_as_typed(api):
    header = csv_rows(statistics(api, window="25h", columns="unit,boxId"))[0]
    assert header == ["sensorId", "unit", "boxId", "time_start", "arithmeticMean_25h"]


def test_hourly_windows_are_aligned_to_the_epoch(api):
    response = statistics(api, boxId=ERPHO_BOX, bbox=None,
                          **{"from-date": "2024-01-16T00:30:00Z", "to-date": "2024-01-16T02:10:00Z"})
    rows = csv_rows(response)[1:]
    starts = [row[1] for row in rows]
    # floor(from) .. floor(to) + 1 h: (2 - 0) + 2 windows
    assert starts == [f"2024-01-16T0{hour}:00:00.000Z" for hour in range(4)]
    raw = get(api, f"/boxes/{ERPHO_BOX}/data/{ERPHO_PM25}",
              **{"from-date": "2024-01-16T01:00:01Z", "to-date": "2024-01-16T02:00:00Z"}).json()
    hourly_mean = sum(float(row["value"]) for row in raw) / len(raw)
    assert abs(float(rows[1][2]) - hourly_mean) < 1e-9


def test_a_reading_on_a_boundary_counts_towards_the_earlier_window(api):
    rows = csv_rows(statistics(api, boxId=ERPHO_BOX, bbox=None, window="5m", operation="max",
                               **{"from-date": "2024-01-16T00:00:00Z", "to-date": "2024-01-16T00:10:00Z"}))
    # Readings at 00:05 and 00:15 belong to the windows starting 00:00 and 00:10.
    assert [row[1] for row in rows[1:]] == ["2024-01-16T00:00:00.000Z", "2024-01-16T00:10:00.000Z"]


def test_wide_csv_has_one_column_per_window_and_truncated_labels(api):
    header, *rows = csv_rows(statistics(api, format="csv", boxId=ERPHO_BOX, bbox=None,
                                        **{"from-date": "2024-01-16T00:30:00Z", "to-date": "2024-01-16T02:10:00Z"}))
    assert header == ["sensorId", *(f"pm2-5_2024-01-16T0{hour}Z" for hour in range(4))]
    assert [row[0] for row in rows] == [ERPHO_PM25]


def test_daily_wide_csv_labels_by_date(api):
    header = csv_rows(statistics(api, format="csv", window="1d"))[0]
    assert header[1] == "pm2-5_2024-01-15Z" and header[-1] == "pm2-5_2024-01-22Z"
    assert len(header) == 1 + 8


def test_json_format_keys_windows_by_iso_start(api):
    response = statistics(api, format="json", window="1d", boxId=ERPHO_BOX, bbox=None, columns="boxName")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    [document] = response.json()
    assert document["sensorId"] == ERPHO_PM25 and document["boxName"] == "Wetterstation Erpho"
    assert "2024-01-15T00:00:00.000Z" in document and isinstance(document["2024-01-15T00:00:00.000Z"], float)


@pytest.mark.parametrize("operation", ["min", "max", "median", "sum", "standardDeviation"])
def test_other_operations_agree_with_the_raw_values(api, operation):
    import statistics as stats

    rows = csv_rows(statistics(api, boxId=ERPHO_BOX, bbox=None, operation=operation,
                               **{"from-date": "2024-01-16T01:30:00Z", "to-date": "2024-01-16T01:30:00Z"}))
    raw = get(api, f"/boxes/{ERPHO_BOX}/data/{ERPHO_PM25}",
              **{"from-date": "2024-01-16T01:00:01Z", "to-date": "2024-01-16T02:00:00Z"}).json()
    values = [float(row["value"]) for row in raw]
    expected = {"min": min, "max": max, "median": stats.median, "sum": sum, "standardDeviation": stats.pstdev}
    assert rows[0][-1] == f"{operation}_1h"
    assert abs(float(rows[1][2]) - expected[operation](values)) < 1e-9


def test_stuck_sensor_is_constant_within_a_window(api):
    rows = csv_rows(statistics(api, boxId=STUCK_BOX, bbox=None, operation="standardDeviation", window="25h"))
    assert rows[1:] and all(float(row[2]) == 0 for row in rows[1:])


def test_nienberge_garten_has_only_four_windows(api):
    rows = csv_rows(statistics(api, boxId=NIENBERGE_BOX, bbox=None, window="25h"))
    assert len(rows) == 1 + 4


def test_boxes_without_data_give_the_header_only(api):
    silent_id = box_named(api, SILENT_BOX_NAME)["_id"]
    response = statistics(api, boxId=silent_id, bbox=None)
    assert response.status_code == 200
    assert response.text == "sensorId,time_start,arithmeticMean_1h\n"


def test_no_boxes_in_bbox_is_404(api):
    assert_error(statistics(api, bbox="-30,-10,-20,0"), 404, "NotFound", "No senseBoxes found")


def test_both_or_neither_box_selector_is_400(api):
    assert_error(statistics(api, boxId=ERPHO_BOX), 400, "BadRequest", "please specify only boxId or bbox")
    assert_error(statistics(api, bbox=None), 400, "BadRequest", "please specify either boxId or bbox")


def test_missing_required_parameter_is_400(api):
    assert_error(statistics(api, **{"to-date": None}), 400, "BadRequest", "missing required parameter toDate")


@pytest.mark.parametrize("bad", ["2024-01-15", "2024-01-15T00:00:00+00:00", "2024-01-15T00:00Z"])
def test_bad_timestamp_is_422_naming_the_alias(api, bad):
    assert_error(statistics(api, **{"from-date": bad}), 422, "UnprocessableEntity",
                 f"Illegal value for parameter fromDate (from-date). Invalid timestamp '{bad}'.")


def test_from_after_to_is_409(api):
    response = statistics(api, **{"from-date": "2024-01-21T00:00:00Z", "to-date": "2024-01-15T00:00:00Z"})
    assert_error(response, 409, "InvalidArgument", "Invalid time frame specified: fromDate "
                 "(2024-01-21T00:00:00.000Z) is after toDate (2024-01-15T00:00:00.000Z)")


@pytest.mark.parametrize("window", ["30000", "59s", "soon"])
def test_window_under_a_minute_is_400(api, window):
    assert_error(statistics(api, window=window), 400, "BadRequest",
                 "Invalid window length. Smallest window size is 1 minute.")


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
    path = f"/boxes/{ERPHO_BOX}/data/{ERPHO_PM25}"
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
