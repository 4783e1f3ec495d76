"""The producer's input: the readings CSV written in step 1, checked row by row against the contract.

A row that breaks the contract is set aside with its line number and reason, so one bad row never
stops the other readings from being sent, and the learner can see what was wrong with it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pm25.config import BUNDLED_DATA_DIR
from pm25.data.contract import (
    EXAMPLE_TIMESTAMP,
    InvalidMessage,
    Reading,
    check_id,
    check_lat,
    check_lon,
    check_value,
    show,
)

COLUMNS = ["boxId", "boxName", "sensorId", "lat", "lon", "timestamp", "value"]
# Every raw PM2.5 measurement of 48 outdoor senseBoxes in central Berlin, 2023-02-26 to 2023-03-01.
RECORDING_CSV = BUNDLED_DATA_DIR / "berlin_pm25_raw_2023-02-26.csv.gz"
RECORDING_COLUMNS = ["boxId", "boxName", "exposure", "sensorId", "sensorType", "lat", "lon", "createdAt", "value"]
SHOWN_REJECTIONS = 10

# Plain decimal numbers only: float() would also take 'nan', '1_000' and digits of other scripts.
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


@dataclass
class LoadedReadings:
    """The readings of one CSV file that can be sent, and the rows that cannot, with the reason."""

    readings: list[Reading]  # valid rows, in file order
    rejected: pd.DataFrame  # columns: line, reason, then the row's raw text in COLUMNS
    source: Path

    def summary(self) -> str:
        kept = f"{len(self.readings)} readings from {self.source.name} are ready to send"
        if self.rejected.empty:
            return f"{kept}; no row was rejected."
        lines = [f"{kept}; {len(self.rejected)} rows were rejected:"]
        shown = self.rejected.head(SHOWN_REJECTIONS)
        lines += [f"  line {row.line}: {row.reason}" for row in shown.itertuples()]
        if len(self.rejected) > SHOWN_REJECTIONS:
            lines.append(f"  ... and {len(self.rejected) - SHOWN_REJECTIONS} more (see .rejected)")
        return "\n".join(lines)


def load_readings(path: Path | str) -> LoadedReadings:
    """Read pm25_readings.csv (as written by step 1) into Readings, setting bad rows aside."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run step 1 first, which downloads the readings and writes this file."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet may have put a BOM in front
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text (unreadable byte at position {error.start}); "
            "save it as UTF-8, or run step 1 again to write it afresh."
        ) from None
    return parse_readings_csv(text, path)


def parse_readings_csv(text: str, source: Path) -> LoadedReadings:
    """Like load_readings, for CSV text already in memory; `source` only names it in messages."""
    reader = csv.reader(io.StringIO(text, newline=""))
    positions: dict[str, int] | None = None  # column -> cell index, once the header is read
    header_width, readings, rejected = 0, [], []
    while True:
        first_line = reader.line_num + 1  # a quoted cell may span lines; report where the row starts
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # e.g. a cell longer than the csv module allows; the reader goes on
            rejected.append({"line": first_line, "reason": f"unreadable CSV ({error})"})
            continue
        if not row:
            continue  # blank line
        if positions is None:
            positions, header_width = _column_positions([cell.strip() for cell in row], source), len(row)
            continue
        raw = {column: row[index].strip() if index < len(row) else "" for column, index in positions.items()}
        try:
            if len(row) != header_width:
                raise InvalidMessage(
                    f"{len(row)} cells, but the header has {header_width} "
                    "(a comma or line break inside a name must be in double quotes)"
                )
            readings.append(_reading(raw))
        except InvalidMessage as error:
            rejected.append({"line": first_line, "reason": error.reason, **raw})
    if positions is None:
        raise ValueError(f"{source} is empty; it should start with the header {','.join(COLUMNS)}.")
    return LoadedReadings(readings, pd.DataFrame(rejected, columns=["line", "reason", *COLUMNS]), source)


def _column_positions(cells: list[str], source: Path) -> dict[str, int]:
    missing = [column for column in COLUMNS if column not in cells]
    if missing:
        raise ValueError(
            f"{source} has no column {', '.join(repr(column) for column in missing)}: its header is "
            f"{','.join(cells)!r}, expected {','.join(COLUMNS)!r}. Run step 1 again to write it afresh."
        )
    return {column: cells.index(column) for column in COLUMNS}


def _reading(raw: dict[str, str]) -> Reading:
    """The Reading in one row, or InvalidMessage naming every problem of the row."""
    problems = []

    def checked(check, column):
        try:
            return check(column, raw[column])
        except InvalidMessage as error:
            problems.append(error.reason)

    box_id = checked(_present_id, "boxId")
    sensor_id = checked(_present_id, "sensorId")
    lat = checked(lambda column, text: check_lat(_number(column, text)), "lat")
    lon = checked(lambda column, text: check_lon(_number(column, text)), "lon")
    timestamp = checked(_any_iso_time, "timestamp")
    value = checked(lambda column, text: check_value(_number(column, text)), "value")
    if problems:
        raise InvalidMessage("; ".join(problems))
    return Reading(box_id, raw["boxName"], sensor_id, lat, lon, timestamp, value)


def _present(column: str, text: str) -> str:
    if not text:
        raise InvalidMessage(f"{column} is missing")
    return text


def _present_id(column: str, text: str) -> str:
    return check_id(column, _present(column, text))


def _number(column: str, text: str) -> float:
    if not _DECIMAL.fullmatch(_present(column, text)):
        hint = " (write decimals with a point, not a comma)" if re.fullmatch(r"-?[0-9]+,[0-9]+", text) else ""
        raise InvalidMessage(f"{column} {show(text)} is not a number{hint}")
    return float(text)  # may be inf ('1e999'): the range checks reject it


def _any_iso_time(column: str, text: str) -> datetime:
    """Any ISO 8601 time (the file may come from a spreadsheet); one without a zone is taken as UTC."""
    _present(column, text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidMessage(f"{column} {show(text)} is not a time like '{EXAMPLE_TIMESTAMP}'") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def recording_readings(recording_csv: Path = RECORDING_CSV) -> pd.DataFrame:
    """The bundled raw Berlin recording in COLUMNS, ready to be written as pm25_readings.csv.

    One row per measurement, sorted by time, then box, as a live stream would bring them.
    (Step 1 clips it to the area and time range like an API answer: see pm25.data.dataset.from_recording.)
    """
    table = pd.read_csv(recording_csv, dtype={"boxId": str, "boxName": str, "sensorId": str, "createdAt": str})
    missing = [column for column in RECORDING_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{recording_csv} is not the bundled recording: it has no column {', '.join(missing)}.")
    frame = table.rename(columns={"createdAt": "timestamp"})
    return frame.sort_values(["timestamp", "boxId"], ignore_index=True)[COLUMNS]
