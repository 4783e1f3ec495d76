"""Loading the producer's input: good rows are kept, bad rows are set aside with line and reason."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pm25.data.contract import Reading, validate
from pm25.data.readings import COLUMNS, RECORDING_CSV, load_readings, parse_readings_csv, recording_readings

HEADER = ",".join(COLUMNS)
GOOD_ROW = (
    "591f578c51d34600116a8ea5,Wetterstation Erpho,59458624a4ad590011186665,51.96422,7.645218,2024-01-15T00:00:00Z,11.5"
)
SOURCE = Path("pm25_readings.csv")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pm25_readings.csv"
    path.write_text(text, encoding="utf-8")
    return path


def with_cell(column: str, value: str) -> str:
    cells = next(csv.reader([GOOD_ROW]))
    cells[COLUMNS.index(column)] = value
    out = io.StringIO()
    csv.writer(out).writerow(cells)  # the default line end "\r\n" makes it quote \r and \n in cells
    return out.getvalue().removesuffix("\r\n")


def only_reason(text: str) -> str:
    loaded = parse_readings_csv(text, SOURCE)
    assert loaded.readings == [] and len(loaded.rejected) == 1
    return loaded.rejected.loc[0, "reason"]


# --- good files ---


def test_a_good_row_becomes_a_reading(tmp_path):
    loaded = load_readings(write(tmp_path, f"{HEADER}\n{GOOD_ROW}\n"))
    assert loaded.readings == [
        Reading(
            box_id="591f578c51d34600116a8ea5",
            box_name="Wetterstation Erpho",
            sensor_id="59458624a4ad590011186665",
            lat=51.96422,
            lon=7.645218,
            timestamp=datetime(2024, 1, 15, tzinfo=UTC),
            value=11.5,
        )
    ]
    assert loaded.rejected.empty and list(loaded.rejected.columns) == ["line", "reason", *COLUMNS]
    assert loaded.summary() == "1 readings from pm25_readings.csv are ready to send; no row was rejected."


def test_extra_columns_any_order_spaces_bom_crlf_and_blank_lines_are_fine(tmp_path):
    cells = dict(zip(COLUMNS, next(csv.reader([GOOD_ROW])), strict=True))
    order = ["value", "note", *reversed(COLUMNS[:-1])]
    header = ",".join(order)
    row = ", ".join(cells.get(column, "n/a") for column in order)
    path = tmp_path / "r.csv"
    path.write_bytes(f"\ufeff{header}\r\n\r\n{row}\r\n\r\n".encode())
    loaded = load_readings(path)
    assert loaded.rejected.empty
    assert [reading.value for reading in loaded.readings] == [11.5]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-01-15T00:00:00Z",
        "2024-01-15T00:00:00.000Z",
        "2024-01-15 00:00:00+00:00",
        "2024-01-15T01:00:00+01:00",
        "2024-01-15T00:00:00",
    ],
)
def test_timestamps_in_any_iso_form_are_read_as_utc(timestamp):
    loaded = parse_readings_csv(f"{HEADER}\n{with_cell('timestamp', timestamp)}\n", SOURCE)
    assert loaded.readings[0].timestamp == datetime(2024, 1, 15, tzinfo=UTC)


def test_an_empty_box_name_is_allowed():
    assert parse_readings_csv(f"{HEADER}\n{with_cell('boxName', '')}\n", SOURCE).readings[0].box_name == ""


# --- every reason a row is rejected ---

BAD_CELLS = [
    ("boxId", "", "boxId is missing"),
    ("boxId", "abc", "boxId 'abc' is not 24 hexadecimal characters"),
    ("sensorId", "", "sensorId is missing"),
    ("timestamp", "", "timestamp is missing"),
    ("timestamp", "yesterday", "timestamp 'yesterday' is not a time like '2024-01-15T00:00:00Z'"),
    ("timestamp", "2024-02-30T00:00:00Z", "timestamp '2024-02-30T00:00:00Z' is not a time"),
    ("value", "", "value is missing"),
    ("value", "abc", "value 'abc' is not a number"),
    ("value", "12,5", "value '12,5' is not a number (write decimals with a point, not a comma)"),
    ("value", "nan", "value 'nan' is not a number"),
    ("value", "1_000", "value '1_000' is not a number"),
    ("value", "١٢", "value '١٢' is not a number"),
    ("value", "1e999", "value inf is not a finite number"),
    ("value", "-3", "value -3.0 is below 0"),
    ("value", "999.9", "sensor saturated: value 999.9 is 999.9 or more, the sensor's out-of-range mark"),
    ("lat", "", "lat is missing"),
    ("lat", "95", "lat 95.0 is outside -90..90"),
    ("lon", "", "lon is missing"),
    ("lon", "-181", "lon -181.0 is outside -180..180"),
]


@pytest.mark.parametrize(("column", "cell", "reason"), BAD_CELLS, ids=[f"{c}={v!r}" for c, v, _ in BAD_CELLS])
def test_a_bad_cell_rejects_the_row_with_its_reason(column, cell, reason):
    assert only_reason(f"{HEADER}\n{with_cell(column, cell)}\n").startswith(reason)


def test_every_problem_of_a_row_is_named():
    row = ",Box,59458624a4ad590011186665,51.9,7.6,,abc"
    assert only_reason(f"{HEADER}\n{row}\n") == "boxId is missing; timestamp is missing; value 'abc' is not a number"


def test_a_row_with_too_many_or_too_few_cells_is_rejected():
    shifted = GOOD_ROW.replace("Wetterstation Erpho", "Erpho, Münster")
    assert only_reason(f"{HEADER}\n{shifted}\n") == (
        "8 cells, but the header has 7 (a comma or line break inside a name must be in double quotes)"
    )
    assert only_reason(f"{HEADER}\n591f578c51d34600116a8ea5\n").startswith("1 cells, but the header has 7")


def test_rejected_rows_keep_their_line_number_and_raw_cells(tmp_path):
    text = "\n".join(
        [HEADER, GOOD_ROW, with_cell("value", "abc"), "", with_cell("boxName", "two\nlines"), with_cell("lat", "95")]
    )
    loaded = load_readings(write(tmp_path, text + "\n"))
    assert [reading.box_name for reading in loaded.readings] == ["Wetterstation Erpho", "two\nlines"]
    assert loaded.rejected["line"].tolist() == [3, 7]  # line 4 is blank, the quoted name spans 5 and 6
    assert loaded.rejected.loc[0, "value"] == "abc" and loaded.rejected.loc[1, "lat"] == "95"
    assert loaded.summary().splitlines()[1:] == [
        "  line 3: value 'abc' is not a number",
        "  line 7: lat 95.0 is outside -90..90 (did you swap lat and lon?)",
    ]


def test_summary_lists_ten_rejections_and_counts_the_rest():
    loaded = parse_readings_csv("\n".join([HEADER] + [with_cell("value", "x")] * 12), SOURCE)
    lines = loaded.summary().splitlines()
    assert lines[0] == "0 readings from pm25_readings.csv are ready to send; 12 rows were rejected:"
    assert lines[10] == "  line 11: value 'x' is not a number"
    assert lines[11] == "  ... and 2 more (see .rejected)"


# --- files that cannot be read at all ---


def test_a_missing_file_says_to_run_step_1(tmp_path):
    with pytest.raises(FileNotFoundError, match="run step 1 first"):
        load_readings(tmp_path / "pm25_readings.csv")


def test_wrong_columns_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"has no column 'lat', 'value': its header is 'boxId,"):
        load_readings(write(tmp_path, "boxId,boxName,sensorId,lon,timestamp\n"))


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_an_empty_file_says_what_header_it_needs(tmp_path, text):
    with pytest.raises(ValueError, match=f"is empty; it should start with the header {HEADER}"):
        load_readings(write(tmp_path, text))


def test_a_file_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "pm25_readings.csv"
    path.write_bytes(f"{HEADER}\n{GOOD_ROW}\n".replace("Erpho", "Münster").encode("latin-1"))
    with pytest.raises(ValueError, match=r"is not UTF-8 text.*save it as UTF-8"):
        load_readings(path)


def test_a_cell_too_long_for_the_csv_module_rejects_only_its_row():
    text = f"{HEADER}\n{with_cell('boxName', 'x' * 200_000)}\n{GOOD_ROW}\n"
    loaded = parse_readings_csv(text, SOURCE)
    assert len(loaded.readings) == 1
    assert loaded.rejected.loc[0, "reason"].startswith("unreadable CSV (field larger than field limit")


# --- properties: never crash, keep every good row, count every row ---

hex_ids = st.text("0123456789abcdef", min_size=24, max_size=24)
good_readings = st.builds(
    Reading,
    box_id=hex_ids,
    box_name=st.text().map(str.strip),  # the loader strips spaces around every cell
    sensor_id=hex_ids,
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    timestamp=st.datetimes(timezones=st.just(UTC)),
    value=st.floats(0, 999.9, exclude_max=True),
)
any_cell = st.text() | st.sampled_from(["", "nan", "-1", "999.9", "1e999", "2024-01-15T00:00:00Z", "95"])
any_row = st.lists(any_cell, min_size=len(COLUMNS), max_size=len(COLUMNS))


def as_cells(reading: Reading) -> list[str]:
    message = reading.as_message()
    return [message[column] if isinstance(message[column], str) else repr(message[column]) for column in COLUMNS]


@given(st.lists(good_readings | any_row, max_size=8))
def test_good_rows_are_kept_and_every_row_is_counted(rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(as_cells(row) if isinstance(row, Reading) else row for row in rows)
    loaded = parse_readings_csv(out.getvalue(), SOURCE)
    assert len(loaded.readings) + len(loaded.rejected) == len(rows)
    kept = iter(loaded.readings)
    good = [row for row in rows if isinstance(row, Reading)]
    assert all(reading in kept for reading in good)  # every good row, in file order
    assert all(validate(reading.as_message()) == [] for reading in loaded.readings)


@given(st.text())
def test_any_text_after_the_header_is_loaded_without_crashing(body):
    loaded = parse_readings_csv(f"{HEADER}\n{body}", SOURCE)
    records = [row for row in csv.reader(io.StringIO(body, newline="")) if row]
    assert len(loaded.readings) + len(loaded.rejected) == len(records)
    assert all(isinstance(reason, str) and reason for reason in loaded.rejected["reason"])


# --- the bundled recording ---


def test_recording_is_converted_to_the_readings_columns():
    recording = recording_readings(RECORDING_CSV)
    assert list(recording.columns) == COLUMNS
    assert len(recording) == 106_524
    assert recording["boxId"].nunique() == 48
    first = recording.iloc[0]
    assert (first["boxId"], first["sensorId"], first["timestamp"], first["value"]) == (
        "5c2bca0e2c80100019218e6b",
        "5c2bca0e2c80100019218e6e",
        "2023-02-26T08:24:39.302Z",
        3.27,
    )
    assert recording.equals(recording.sort_values(["timestamp", "boxId"], ignore_index=True))


def test_recording_written_as_csv_loads_without_rejections(tmp_path):
    path = tmp_path / "pm25_readings.csv"
    recording_readings(RECORDING_CSV).to_csv(path, index=False)
    loaded = load_readings(path)
    assert len(loaded.readings) == 106_524 and loaded.rejected.empty
    assert loaded.readings[0].timestamp == datetime(2023, 2, 26, 8, 24, 39, 302000, tzinfo=UTC)  # milliseconds kept


def test_a_file_that_is_not_the_recording_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("boxId,value\n" + "a" * 24 + ",1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not the bundled recording"):
        recording_readings(path)
