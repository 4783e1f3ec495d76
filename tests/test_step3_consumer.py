"""Step 3's consumer, run as the notebook runs it, on a stream whose alerts we know."""

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from html import escape

import nbformat
import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from nbclient.exceptions import CellExecutionError

from pm25.data.contract import Reading, encode
from pm25.learning.tasks import solution
from pm25.polling import wait_until
from pm25.streaming import codec, commits, outputs
from tests.faults.support import boxes_geojson as stream_boxes_geojson
from tests.faults.support import committed_total, produce, random_walk_stream, read_topic
from tests.notebooks import SRC, cell_by_id, cell_index, execute_notebook, run, small_readings, stream_text, with_answer

BOX_A, BOX_B, BOX_C = "a" * 24, "b" * 24, "c" * 24
SENSOR = "d" * 24
START = datetime(2024, 1, 15, tzinfo=UTC)


def reading(box_id, hour, value, name=None):
    name = name or {BOX_A: "Alpha", BOX_B: "Beta"}[box_id]
    return Reading(box_id, name, SENSOR, 51.96, 7.62, START + timedelta(hours=hour), value)


def known_stream():
    """Alpha: 30 for 18 hours -> exceeded when hour 18 begins, on 18 closed hours of data; then 0 -> the
    24 hours before hour 30 have a mean of 15 ((12 * 30 + 12 * 0) / 24): resolved. Beta stays at 5."""
    messages = [(BOX_A, encode(reading(BOX_A, hour, 30.0))) for hour in range(18)]
    messages += [(BOX_A, encode(reading(BOX_A, hour, 0.0))) for hour in range(18, 31)]
    messages += [(BOX_B, encode(reading(BOX_B, hour, 5.0))) for hour in range(30)]
    messages += [
        (BOX_A, encode(reading(BOX_A, 30, 99.0))),  # duplicate of Alpha's newest, hour 30
        (BOX_A, encode(reading(BOX_A, 29.5, 99.0))),  # late: hour 29 is closed
        (BOX_B, b"this is not JSON"),
        (BOX_B, json.dumps({"boxId": BOX_B, "boxName": "Beta"}).encode()),
        (BOX_B, encode(reading(BOX_B, 31, 5.0)).replace(b'"value":5.0', b'"value":999.9')),
        (BOX_A, encode(reading(BOX_A, 24 * 365 * 75, 99.0))),  # 2099: a sensor clock in the future
    ]
    return messages


def boxes_geojson(path):
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [7.62, 51.96]},
            "properties": {"boxId": box_id, "name": name, "readings": 0},
        }
        for box_id, name in ((BOX_A, "Alpha"), (BOX_B, "Beta"), (BOX_C, "Gamma (silent)"))
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


@pytest.fixture
def prepared(bootstrap_servers, topic, tmp_path):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    with KafkaProducer(bootstrap_servers=bootstrap_servers) as producer:
        for key, value in known_stream():
            producer.send(topic, key=key.encode(), value=value)
        producer.flush()
    boxes_geojson(tmp_path / "senseboxes.geojson")
    small_readings(tmp_path)
    env = {
        "PM25_TOPIC": topic,
        "PM25_ALERT_TOPIC": f"{topic}_alerts",
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_CONSUMER_GROUP": f"{topic}_group",
        "PM25_IDLE_TIMEOUT_S": "3",
    }
    return env, tmp_path


def test_consumer_finds_the_known_alerts_keeps_bad_messages_and_commits(prepared, bootstrap_servers, topic):
    env, data_dir = prepared
    printed = stream_text(execute_notebook("step_3_event_processing.ipynb", env))

    alerts = pd.read_csv(data_dir / "output" / "alerts.csv")
    assert list(alerts.columns) == ["boxId", "boxName", "event", "timestamp", "mean", "n_hours"]
    assert alerts[["boxName", "event", "timestamp", "n_hours"]].values.tolist() == [
        ["Alpha", "exceeded", "2024-01-15T18:00:00Z", 18],
        ["Alpha", "resolved", "2024-01-16T06:00:00Z", 24],
    ]
    assert alerts["mean"].tolist() == pytest.approx([30.0, 15.0])
    assert "'duplicates': 1, 'late': 1" in printed
    assert "Alerts: yours: 2 alerts, package: 2 alerts, the same." in printed  # the example answers' alerts
    assert "Send-to-alert latency: no reading was sent while this consumer ran" in printed  # all of it was backlog
    # Disorder on purpose: what was sent late and twice is what the detector counted, and the alerts stay.
    assert re.search(r"Sent late: ([1-9]\d*), twice: ([1-9]\d*)\. .*'duplicates': \2, 'late': \1\}", printed)
    assert re.search(r"Alerts: (\d+) in order, \1 with disorder: the same\.", printed)
    # The two clocks: the 63 readings that keep the contract, arriving now, measured in January 2024.
    assert re.search(r"By arrival time: 63 readings in \d+ buckets of 1s \(the fullest: \d+\), from 20\d\d-", printed)
    assert (
        "By event time: 63 readings in 31 buckets of 1h (the fullest: 3), "
        "from 2024-01-15 00:00:00+00:00 to 2024-01-16 06:00:00+00:00."
    ) in printed

    published = read_topic(bootstrap_servers, f"{topic}_alerts")
    assert [(record.key.decode(), json.loads(record.value)["event"]) for record in published] == [
        (BOX_A, "exceeded"),
        (BOX_A, "resolved"),
    ]
    assert set(json.loads(published[0].value)) == {
        "boxId",
        "boxName",
        "event",
        "timestamp",
        "mean",
        "n_hours",
        "threshold",
        "window_hours",
    }

    rejected = pd.read_csv(data_dir / "output" / "rejected.csv")
    assert len(rejected) == 4
    assert rejected["reason"].str.contains("a sensor clock in the future").sum() == 1
    assert rejected["reason"].str.contains("not JSON").sum() == 1
    assert rejected["reason"].str.contains("missing field").sum() == 1
    assert rejected["reason"].str.startswith("sensor saturated: value 999.9").sum() == 1

    status = pd.read_csv(data_dir / "output" / "sensor_status.csv").set_index("boxName")
    assert status.loc["Gamma (silent)", "status"] == "inactive"
    assert status.loc["Alpha", "status"] == "active"
    daily = pd.read_csv(data_dir / "output" / "daily_means.csv")
    assert daily[["boxName", "date", "n_hours", "above_who"]].values.tolist() == [
        ["Alpha", "2024-01-15", 24, True],  # 18 hours of 30 and 6 of 0: 22.5
        ["Beta", "2024-01-15", 24, False],
    ]
    for name in ("sensor_status_map.html", "pm25_rolling_mean.png"):
        assert (data_dir / "output" / name).stat().st_size > 1000

    with KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=f"{topic}_group") as consumer:
        committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3))
    assert committed == len(known_stream())


# A learner's detector that passes its check (the hand-made boxes and step 1's readings) but never decides
# about Alpha, a box only the stream holds: whatever step 3 shows and sends about Alpha tells whose alerts they are.
NEVER_DECIDES_ABOUT_ALPHA = """
class WindowDetector(WindowDetector):
    def decide(self, box_id, buckets, hour):
        return None if box_id == "a" * 24 else super().decide(box_id, buckets, hour)
"""
SAYS_IT_MADE_THE_CONSUMER = """
example_make_consumer = make_consumer


def make_consumer(kafka_options, topic, group_id):
    print(f"The learner's make_consumer({topic!r}, {group_id!r})")
    return example_make_consumer(kafka_options, topic, group_id)
"""


def test_the_stream_runs_the_learners_detector_and_consumer_with_detector_beside(prepared, bootstrap_servers, topic):
    env, data_dir = prepared
    notebook = nbformat.read(SRC / "step_3_event_processing.ipynb", as_version=4)
    notebook = with_answer(notebook, "window_detector", solution("window_detector") + NEVER_DECIDES_ABOUT_ALPHA)
    notebook = with_answer(notebook, "consumer_loop", solution("consumer_loop") + SAYS_IT_MADE_THE_CONSUMER)
    printed = stream_text(run(notebook, SRC, env))

    assert f"The learner's make_consumer({topic!r}, '{topic}_group')" in printed
    assert (
        "❗ Alerts: yours: 0 alerts, package: 2 alerts. They differ from alert 1 on: yours none, "
        "package EXCEEDED Alpha at Mon 15 Jan 18:00."
    ) in printed
    assert pd.read_csv(data_dir / "output" / "alerts.csv").empty  # the learner's alerts are the ones written
    assert read_topic(bootstrap_servers, f"{topic}_alerts") == []  # and published


# A learner's loop that says what it does, so that its lines show whose loop ran on the stream.
LOOP_THAT_COUNTS_ITS_BATCHES = """

def run_loop(consumer, process, stop):
    try:
        while not stop():
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    process(record)
            if batch:
                print(f"The learner's loop: {sum(map(len, batch.values()))} records")
                try:
                    consumer.commit()
                except CommitFailedError:
                    print("The commit failed; polling goes on.")
    finally:
        consumer.close()
"""


def test_the_stream_runs_the_learners_loop_and_commits_what_it_processed(prepared, bootstrap_servers, topic):
    env, _ = prepared
    notebook = nbformat.read(SRC / "step_3_event_processing.ipynb", as_version=4)
    notebook = with_answer(notebook, "consumer_loop", solution("consumer_loop") + LOOP_THAT_COUNTS_ITS_BATCHES)
    loop_cell = cell_by_id(run(notebook, SRC, env), "poll-loop")
    printed = "".join(output.get("text", "") for output in loop_cell.outputs if output.output_type == "stream")

    batches = [int(count) for count in re.findall(r"The learner's loop: (\d+) records", printed)]
    assert sum(batches) == len(known_stream()), printed
    assert committed_total(bootstrap_servers, f"{topic}_group", topic) == len(known_stream())
    assert "Alerts: yours: 2 alerts, package: 2 alerts, the same." in printed


def test_a_rerun_in_the_same_group_rebuilds_state_without_publishing_alerts_again(prepared, bootstrap_servers, topic):
    env, data_dir = prepared
    execute_notebook("step_3_event_processing.ipynb", env)
    first = (data_dir / "output" / "alerts.csv").read_text()
    execute_notebook("step_3_event_processing.ipynb", env)
    assert (data_dir / "output" / "alerts.csv").read_text() == first
    assert len(read_topic(bootstrap_servers, f"{topic}_alerts")) == 2


def run_expecting_error(env) -> str:
    with pytest.raises(CellExecutionError) as failure:
        execute_notebook("step_3_event_processing.ipynb", env)
    return str(failure.value)


@pytest.mark.parametrize("topic_state", ["missing", "empty"])
def test_step_3_before_step_2_says_run_step_2_first_keeps_earlier_outputs_and_creates_no_topic(
    topic_state, bootstrap_servers, topic, tmp_path
):
    if topic_state == "empty":
        with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
            admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    earlier = tmp_path / "output" / "alerts.csv"
    earlier.parent.mkdir()
    earlier.write_text("an earlier run's alerts\n")
    small_readings(tmp_path)
    env = {
        "PM25_TOPIC": topic,
        "PM25_ALERT_TOPIC": f"{topic}_alerts",
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_IDLE_TIMEOUT_S": "2",
    }
    said = run_expecting_error(env)
    assert f"❌ The topic '{topic}' is empty or missing: run step 2 first. Or let step 3 replay the readings" in said
    assert "Traceback" not in said
    assert earlier.read_text() == "an earlier run's alerts\n"
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        assert (topic in admin.list_topics()) == (topic_state == "empty")


def test_a_member_that_processed_no_reading_ends_well_and_says_so(bootstrap_servers, topic, tmp_path):
    # Only broken messages: nothing reaches the detector, as for a member of a group that got no partition.
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    with KafkaProducer(bootstrap_servers=bootstrap_servers) as producer:
        for number in range(3):
            producer.send(topic, key=BOX_A.encode(), value=b"this is not JSON", partition=number)
        producer.flush()
    boxes_geojson(tmp_path / "senseboxes.geojson")
    small_readings(tmp_path)
    env = {
        "PM25_TOPIC": topic,
        "PM25_ALERT_TOPIC": f"{topic}_alerts",
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_IDLE_TIMEOUT_S": "2",
    }
    printed = stream_text(execute_notebook("step_3_event_processing.ipynb", env))  # raises on a traceback

    assert "This member processed no reading" in printed
    assert "'Last 3 rows': 0 alerts." in printed
    assert len(pd.read_csv(tmp_path / "output" / "rejected.csv")) == 3
    assert pd.read_csv(tmp_path / "output" / "daily_means.csv").empty


def test_a_member_with_some_partitions_writes_the_days_of_its_boxes_to_a_file_of_its_own(tmp_path):
    daily = pd.DataFrame({"boxId": [BOX_A, BOX_B], "boxName": ["Alpha", "Beta"], "date": ["2024-01-15"] * 2})
    share = commits.Share((0,), 3, frozenset({BOX_A}))
    outputs.write_outputs(tmp_path, [], codec.Rejected(), pd.DataFrame(columns=["boxId"]), share, daily=daily)
    assert not (tmp_path / "daily_means.csv").exists()  # the whole topic's file is not this member's to write
    assert pd.read_csv(tmp_path / "daily_means_partitions_0.csv")["boxName"].tolist() == ["Alpha"]


def test_step_3_prints_its_send_to_alert_latency_for_readings_sent_while_it_runs(prepared, bootstrap_servers, topic):
    env, _ = prepared
    env["PM25_IDLE_TIMEOUT_S"] = "5"
    backlog = len(known_stream())
    paced = [reading(BOX_C, hour, 5.0, name="Gamma (silent)") for hour in range(40)]
    sent = threading.Event()

    def replay():  # as step 2 in replay mode: readings one by one while step 3 runs
        # The group commits only once this member has its partitions and has processed the backlog.
        wait_until(
            lambda: committed_total(bootstrap_servers, env["PM25_CONSUMER_GROUP"], topic) >= backlog,
            240,
            "step 3 to process the backlog",
        )
        with KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=0) as producer:
            for paced_reading in paced:
                producer.send(topic, key=BOX_C.encode(), value=encode(paced_reading)).get(timeout=10)
        sent.set()

    producer_thread = threading.Thread(target=replay, daemon=True)
    producer_thread.start()
    printed = stream_text(execute_notebook("step_3_event_processing.ipynb", env))
    producer_thread.join(timeout=10)
    assert sent.is_set(), "the paced readings were not all sent"

    said = re.search(
        r"Send-to-alert latency of the (\d+) readings sent while this consumer ran: median (\d+) ms, "
        r"99th percentile (\d+) ms",
        printed,
    )
    assert said, printed
    count, median, p99 = map(int, said.groups())
    assert count == len(paced)
    assert 0 < median <= p99 < 10_000  # generous: a shared 2-core machine; the broker holds a fetch 50 ms


RECORD_THE_MAP = """
map_states = []  # after each update: whether the replay was still sending, the map's note, every marker's colour
draw = live_map.update


def recording_update(*args):
    draw(*args)
    colours = tuple(marker.fill_color for marker in live_map.markers.values())
    map_states.append((not live_replay.finished.is_set(), live_map.note.value, colours))


live_map.update = recording_update
"""
REPORT_THE_MAP = """
while_sending = [(note, colours) for sending, note, colours in map_states if sending]
print("Map:", json.dumps({"states while sending": len({colours for _, colours in while_sending}),
                          "notes while sending": sorted({note for note, _ in while_sending}),
                          "first differs from last": while_sending[0][1] != map_states[-1][2],
                          "note at the end": live_map.note.value}))
"""


def with_cell_after(notebook, after_id: str, source: str, cell_id: str):
    """A copy of the notebook with a code cell `source` after the cell `after_id`."""
    changed = nbformat.from_dict(notebook)
    after = cell_index(changed.cells, after_id)
    cell = nbformat.v4.new_code_cell(source)
    cell.id = cell_id
    changed.cells.insert(after + 1, cell)
    return changed


def test_the_live_view_draws_the_map_while_readings_arrive_provisional_until_the_end(topic, tmp_path):
    small_readings(tmp_path)  # three boxes, three days: about 14 s at this speed
    env = {
        "PM25_TOPIC": topic,
        "PM25_ALERT_TOPIC": f"{topic}_alerts",
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_LIVE_SPEEDUP": "18000",
        "PM25_IDLE_TIMEOUT_S": "3",
    }
    notebook = nbformat.read(SRC / "step_3_event_processing.ipynb", as_version=4)
    notebook = with_cell_after(notebook, "live-map", RECORD_THE_MAP, "record-the-map")
    notebook = with_cell_after(notebook, "poll-loop", REPORT_THE_MAP, "report-the-map")
    printed = stream_text(run(notebook, SRC, env))

    assert "'duplicates': 0, 'late': 0}" in printed  # a fresh topic: nothing sent before counts as late
    assert "Alerts: yours: " in printed and ", the same." in printed
    drawn = json.loads(re.search(r"^Map: (.*)$", printed, re.MULTILINE).group(1))
    assert drawn["states while sending"] >= 2, drawn  # the map changed while the replay still sent: live
    assert drawn["first differs from last"], drawn
    assert [note.split("</b>")[0] for note in drawn["notes while sending"]] == ["<b>Provisional"]
    assert drawn["note at the end"].startswith("<b>Final</b>")


@pytest.fixture
def walk(bootstrap_servers, topic):
    """12 boxes for 30 hours on a topic of 3 partitions: every partition holds some boxes."""
    readings = random_walk_stream(12, 30, seed=7)
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    produce(bootstrap_servers, topic, readings)
    return readings


@pytest.fixture
def other_member(bootstrap_servers, topic, walk):
    """Another member of step 3's group, holding some partitions while step 3 runs, as in step 3b."""
    group = f"{topic}_group"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    stop = threading.Event()

    def poll():  # a member takes part in a rebalance only from inside poll()
        while not stop.is_set():
            consumer.poll(timeout_ms=100)

    worker = threading.Thread(target=poll, daemon=True)
    worker.start()
    wait_until(consumer.assignment, 60, "the other member to get its partitions")
    yield group
    stop.set()
    worker.join(timeout=10)
    consumer.close()


def test_a_member_with_some_partitions_names_its_map_and_plot_after_them(topic, tmp_path, walk, other_member):
    readings = walk
    (tmp_path / "senseboxes.geojson").write_text(stream_boxes_geojson(readings), encoding="utf-8")
    small_readings(tmp_path)
    env = {
        "PM25_TOPIC": topic,
        "PM25_ALERT_TOPIC": f"{topic}_alerts",
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_CONSUMER_GROUP": other_member,
        "PM25_IDLE_TIMEOUT_S": "3",
    }
    notebook = execute_notebook("step_3_event_processing.ipynb", env)

    output = tmp_path / "output"
    for whole_topic in ("sensor_status.csv", "sensor_status_map.html", "pm25_rolling_mean.png"):
        assert not (output / whole_topic).exists(), whole_topic
    [status_file] = output.glob("sensor_status_partitions_*.csv")
    partitions = status_file.stem.removeprefix("sensor_status")
    page = (output / f"sensor_status_map{partitions}.html").read_text(encoding="utf-8")
    assert (output / f"pm25_rolling_mean{partitions}.png").stat().st_size > 1000
    mine = set(pd.read_csv(status_file)["boxName"])
    assert 0 < len(mine) < 12
    for name in {r.box_name for r in readings}:  # the map shows this member's boxes, no other member's
        assert (json.dumps(escape(name))[1:-1] in page) == (name in mine), name
    shown = cell_by_id(notebook, "status-table").outputs[-1]["data"]["text/html"]  # the table as the learner sees it
    assert {name for name in {r.box_name for r in readings} if f">{name}<" in shown} == mine
