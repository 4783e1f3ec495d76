"""Step 2's producer, run as the notebook runs it: what lands on the topic, and what the learner is told."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import nbformat
import pytest

from pm25.data import contract
from pm25.data.readings import recording_readings
from pm25.errors import LearnerError
from pm25.learning import tasks
from pm25.rules.detector import Detector
from tests.faults.support import NotebookCells, random_walk_stream, read_topic, readings_csv
from tests.notebooks import SRC, cell_index, execute_notebook, run, stream_text, with_answer, with_solutions

HEADER = "boxId,boxName,sensorId,lat,lon,timestamp,value"
BOXES = {"a" * 24: "Alpha", "b" * 24: "Beta", "c" * 24: "Gamma Südviertel"}
SENSOR = "d" * 24
START = datetime(2024, 1, 15, tzinfo=UTC)
SEND_CELL = "send-loop"  # step 2's send loop

# The bad rows, each with what the notebook must say about it. Line numbers count the header as line 1.
INVALID_ROWS = [
    (f",Nobody,{SENSOR},51.96,7.62,2024-01-15T01:00:00Z,10.0", "boxId is missing"),
    (f"{'a' * 24},Alpha,{SENSOR},51.96,7.62,yesterday at noon,10.0", "timestamp 'yesterday at noon' is not a time"),
    (f"{'b' * 24},Beta,{SENSOR},51.96,7.62,2024-01-15T02:00:00Z,abc", "value 'abc' is not a number"),
    (f"{'c' * 24},Gamma Südviertel,{SENSOR},51.96,7.62,2024-01-15T02:00:00Z,-1", "value -1.0 is below 0"),
    (f"{'a' * 24},Alpha,{SENSOR},51.96,7.62,2024-01-15T03:00:00Z,999.9", "out-of-range mark"),
]


def valid_row(box_id: str, hour: float, value: float) -> str:
    moment = contract.format_timestamp(START + timedelta(hours=hour))
    return f"{box_id},{BOXES[box_id]},{SENSOR},51.96,7.62,{moment},{value}"


def write_csv_with_bad_rows(folder) -> tuple[list[str], dict[int, str]]:
    """Four hours of three boxes, in step 1's order (time, then box), with the bad rows in between.

    Returns the valid rows and {line number: expected reason} for the bad ones.
    """
    valid = [valid_row(box_id, hour, 5.0 + hour + index) for hour in range(4) for index, box_id in enumerate(BOXES)]
    lines, bad_lines = [HEADER], {}
    bad = iter(INVALID_ROWS)
    for number, row in enumerate(valid):
        lines.append(row)
        if number % 2 == 1 and (next_bad := next(bad, None)):
            lines.append(next_bad[0])
            bad_lines[len(lines)] = next_bad[1]
    assert len(bad_lines) == len(INVALID_ROWS)
    (folder / "pm25_readings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return valid, bad_lines


def printed_count(printed: str, label: str) -> int:
    match = re.search(rf"^{label}:\s+(\d+)", printed, re.MULTILINE)
    assert match, f"the notebook did not print '{label}:'\n{printed}"
    return int(match.group(1))


def check_messages(records: list) -> list[contract.Reading]:
    """Each record: key = boxId in UTF-8, value valid against the schema and decodable. Returns the readings."""
    readings = []
    for record in records:
        message = json.loads(record.value.decode("utf-8"))
        assert contract.validate(message) == [], message
        reading = contract.decode(record.value)
        assert record.key == reading.box_id.encode("utf-8")
        readings.append(reading)
    return readings


def per_key_order(records: list) -> dict[str, list[datetime]]:
    """Each key's timestamps in the order a consumer sees them (partition by partition, offset by offset)."""
    order: dict[str, list[datetime]] = {}
    for record in sorted(records, key=lambda record: (record.partition, record.offset)):
        order.setdefault(record.key.decode(), []).append(contract.decode(record.value).timestamp)
    return order


def test_bulk_sends_each_valid_row_once_keyed_by_box_and_reports_the_rejected_rows(bootstrap_servers, topic, tmp_path):
    valid, bad_lines = write_csv_with_bad_rows(tmp_path)
    env = {"PM25_TOPIC": topic, "PM25_DATA_DIR": str(tmp_path), "PM25_PRODUCER_MODE": "bulk"}
    printed = stream_text(execute_notebook("step_2_producer.ipynb", env))

    records = read_topic(bootstrap_servers, topic)
    readings = check_messages(records)
    sent_rows = sorted((r.box_id, contract.format_timestamp(r.timestamp), r.value) for r in readings)
    expected_rows = sorted((row.split(",")[0], row.split(",")[5], float(row.split(",")[6])) for row in valid)
    assert sent_rows == expected_rows  # exactly one message per valid row, none for a bad one
    assert {r.box_name for r in readings} == set(BOXES.values())  # the umlaut survived

    for key, timestamps in per_key_order(records).items():
        assert timestamps == sorted(timestamps), f"box {key} out of order: {timestamps}"
    partitions_per_box = {}
    for record in records:
        partitions_per_box.setdefault(record.key, set()).add(record.partition)
    assert all(len(partitions) == 1 for partitions in partitions_per_box.values())

    assert f"{len(valid)} readings from pm25_readings.csv are ready to send; {len(bad_lines)} rows were rejected" in (
        printed
    )
    for line, reason in bad_lines.items():
        assert re.search(rf"^  line {line}: .*{re.escape(reason)}", printed, re.MULTILINE), (line, reason, printed)

    assert printed_count(printed, "rows read") == len(valid) + len(bad_lines)
    assert printed_count(printed, "rejected") == len(bad_lines)
    assert printed_count(printed, "sent") == len(valid)
    assert printed_count(printed, "acknowledged") == len(valid)
    assert printed_count(printed, "failed") == 0
    assert "Every message sent was acknowledged by the broker." in printed
    assert f"Created topic '{topic}' with 3 partitions" in printed


def test_without_a_file_from_step_1_the_bundled_recording_is_sent_with_a_note(bootstrap_servers, topic, tmp_path):
    env = {"PM25_TOPIC": topic, "PM25_DATA_DIR": str(tmp_path), "PM25_PRODUCER_MODE": "bulk"}
    printed = stream_text(execute_notebook("step_2_producer.ipynb", env))

    assert f"There is no pm25_readings.csv from step 1 in {tmp_path}" in printed
    assert "the bundled real recording" in printed
    sample = recording_readings()
    records = read_topic(bootstrap_servers, topic)
    check_messages(records[:: len(records) // 500])  # the contract's shape; the bulk test validates every message
    sent = sorted((r.box_id, r.timestamp) for r in map(contract.decode, (record.value for record in records)))
    assert sent == sorted(zip(sample["boxId"], sample["timestamp"].map(contract.parse_timestamp), strict=True))
    assert printed_count(printed, "acknowledged") == len(sample)
    assert "Every message sent was acknowledged by the broker." in printed


def test_replay_sends_each_reading_once_in_timestamp_order_at_the_pace_of_event_time(
    bootstrap_servers, topic, tmp_path
):
    # Six readings ten minutes apart, written out of order: replay must sort them by time.
    # The notebook's speedup is 3600, so ten minutes of event time take 1/6 s of wall time.
    box_ids = list(BOXES)
    rows = [valid_row(box_ids[step % 3], step / 6, 10.0 + step) for step in range(6)]
    shuffled = [rows[index] for index in (3, 0, 5, 1, 4, 2)]
    (tmp_path / "pm25_readings.csv").write_text("\n".join([HEADER, *shuffled]) + "\n", encoding="utf-8")
    env = {"PM25_TOPIC": topic, "PM25_DATA_DIR": str(tmp_path), "PM25_PRODUCER_MODE": "replay"}
    printed = stream_text(execute_notebook("step_2_producer.ipynb", env))

    records = read_topic(bootstrap_servers, topic)
    check_messages(records)
    by_send_time = sorted(records, key=lambda record: (record.timestamp, record.partition, record.offset))
    sent_order = [contract.decode(record.value).timestamp for record in by_send_time]
    assert sent_order == [START + timedelta(minutes=10 * step) for step in range(6)]  # each once, in time order
    # Paced: the last reading is 50 minutes of event time after the first, i.e. 50 / 60 s at speedup 3600.
    assert by_send_time[-1].timestamp - by_send_time[0].timestamp >= 800
    assert "Mode: replay" in printed
    assert printed_count(printed, "acknowledged") == 6


def test_the_send_cell_run_again_after_it_closed_the_producer_says_to_run_the_producer_cell(
    bootstrap_servers, topic, tmp_path, monkeypatch
):
    valid, _ = write_csv_with_bad_rows(tmp_path)
    for variable, value in {"PM25_TOPIC": topic, "PM25_DATA_DIR": str(tmp_path), "PM25_PRODUCER_MODE": "bulk"}.items():
        monkeypatch.setenv(variable, value)
    cells = NotebookCells("step_2_producer.ipynb")
    cells.run_until(SEND_CELL)  # sends everything and closes the producer, as the notebook does
    assert cells["report"].acknowledged == len(valid)

    with pytest.raises(LearnerError, match="producer is closed: run the producer cell, then this one"):
        cells.run(SEND_CELL)  # as the lag exercise of step 3 invites: only this cell again
    assert cells["report"].failed == 0  # no message is counted as failed, nothing blames the broker
    assert len(read_topic(bootstrap_servers, topic)) == len(valid)


PRODUCER_TASK, PRODUCER_CHECK = "producer", "producer-check"  # the learner's producer and its check


def test_the_whole_send_goes_through_the_learners_to_json_and_step_3_decodes_every_message(
    bootstrap_servers, topic, tmp_path
):
    # A right answer of the learner's own, byte for byte unlike the package's serializer (sorted, spaced keys).
    own = tasks.solution("producer").replace("json.dumps(reading)", "json.dumps(reading, sort_keys=True, indent=1)")
    assert own != tasks.solution("producer")
    notebook = with_answer(with_solutions(nbformat.read(SRC / "step_2_producer.ipynb", as_version=4)), "producer", own)
    valid, _ = write_csv_with_bad_rows(tmp_path)
    env = {"PM25_TOPIC": topic, "PM25_DATA_DIR": str(tmp_path), "PM25_PRODUCER_MODE": "bulk"}
    printed = stream_text(run(notebook, SRC, env))

    assert "each box's on one partition, and the 1 send that failed was counted" in printed  # checked, not replaced
    records = read_topic(bootstrap_servers, topic)
    assert len(records) == len(valid)
    readings = check_messages(records)  # the schema's fields, keyed by box, and step 3's decoder accepts each
    for record, reading in zip(records, readings, strict=True):
        assert record.value == json.dumps(reading.as_message(), sort_keys=True, indent=1).encode("utf-8")


@pytest.mark.parametrize("key", ["sensorId", "timestamp"])
def test_a_wrong_key_in_the_learners_send_readings_is_the_key_in_the_topic(
    key, bootstrap_servers, topic, tmp_path, monkeypatch
):
    valid, _ = write_csv_with_bad_rows(tmp_path)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "PM25_TOPIC": topic,
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_PRODUCER_MODE": "bulk",
    }
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    cells = NotebookCells("step_2_producer.ipynb")
    wrong_key = tasks.solution("producer").replace('reading["boxId"]', f'reading["{key}"]')
    cells.cells[cell_index(cells.cells, PRODUCER_TASK)].source = wrong_key
    cells.run_before(PRODUCER_CHECK)
    with pytest.raises(tasks.WrongAnswer, match="not its box's id"):
        cells.run(PRODUCER_CHECK)
    checked, sent = (cell_index(cells.cells, cell_id) for cell_id in (PRODUCER_CHECK, SEND_CELL))
    for number in range(checked + 1, sent + 1):  # the learner runs on
        cells._run(number)

    records = read_topic(bootstrap_servers, topic)
    assert len(records) == cells["report"].acknowledged == len(valid)
    assert sorted(record.key for record in records) == sorted(
        json.loads(record.value)[key].encode("utf-8") for record in records
    )
    assert {record.key for record in records} != {json.loads(record.value)["boxId"].encode() for record in records}


def test_readings_sent_late_and_twice_on_purpose_are_counted_by_step_3s_detector(bootstrap_servers, topic, tmp_path):
    readings = random_walk_stream(boxes=4, steps=60, seed=7)
    (tmp_path / "pm25_readings.csv").write_text(readings_csv(readings), encoding="utf-8")
    env = {
        "PM25_TOPIC": topic,
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_PRODUCER_MODE": "bulk",
        "PM25_LATE_SHARE": "0.1",
        "PM25_DUPLICATE_SHARE": "0.1",
    }
    printed = stream_text(execute_notebook("step_2_producer.ipynb", env))

    said = re.search(r"^disorder: +(\d+) sent late, (\d+) sent twice", printed, re.MULTILINE)
    assert said, printed
    late, twice = map(int, said.groups())
    assert late > 0 and twice > 0
    records = read_topic(bootstrap_servers, topic)
    assert len(records) == printed_count(printed, "acknowledged") == len(readings) + late + twice
    detector = Detector()
    for record in sorted(records, key=lambda record: (record.partition, record.offset)):  # each box in its order
        detector.process(contract.decode(record.value))
    assert (detector.counts["late"], detector.counts["duplicates"]) == (late, twice)
    assert detector.counts["processed"] == len(readings)


def test_live_mode_sends_the_latest_measurements_through_the_learners_code(
    bootstrap_servers, topic, tmp_path, monkeypatch, replay_api
):
    monkeypatch.setattr(replay_api, "now", datetime(2023, 2, 27, tzinfo=UTC))  # restored after the test
    write_csv_with_bad_rows(tmp_path)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "PM25_TOPIC": topic,
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_PRODUCER_MODE": "live",
        "OSEM_API_URL": replay_api.url,
        "OSEM_OFFLINE": "0",
    }
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    cells = NotebookCells("step_2_producer.ipynb")
    cells.run_before(SEND_CELL)
    cells.namespace["live_minutes"] = 0  # one poll, not five minutes of them
    cells.run(SEND_CELL)

    records = read_topic(bootstrap_servers, topic)
    assert len(records) == cells["report"].acknowledged > 0
    for reading in check_messages(records):  # keyed by box, decodable by step 3
        assert reading.timestamp <= replay_api.now
