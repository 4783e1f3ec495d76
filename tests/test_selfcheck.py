"""The self-checks of the learner's Kafka code: the solutions pass, typical mistakes get their hint."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pm25 import selfcheck
from pm25.config import BUNDLED_DATA_DIR
from pm25.contract import Reading
from pm25.tasks import WrongAnswer, solved_values

RECORDING = BUNDLED_DATA_DIR / "berlin_pm25_raw_2023-02-26.csv.gz"


@pytest.fixture(scope="module")
def berlin_stream() -> list[Reading]:
    """The bundled raw Berlin recording as the producer sends it: in event-time order."""
    table = pd.read_csv(RECORDING, dtype={"boxId": str, "sensorId": str, "createdAt": str})
    table = table.sort_values(["createdAt", "boxId"], kind="stable")
    return [
        Reading(row.boxId, row.boxName, row.sensorId, row.lat, row.lon, datetime.fromisoformat(row.createdAt),
                row.value)
        for row in table.itertuples()
    ]  # fmt: skip


def few_readings(boxes: int = 4, per_box: int = 3) -> list[Reading]:
    start = datetime(2023, 2, 26, 8, tzinfo=UTC)
    return [
        Reading(f"{box:024x}", f"Box {box}", f"{box + 100:024x}", 52.5, 13.4, start + timedelta(minutes=i), 5.0 + i)
        for i in range(per_box)
        for box in range(1, boxes + 1)
    ]


class LastThreeRows:
    """The typical mistake: the mean of a box's last 3 readings instead of its 24-hour window."""

    def __init__(self, threshold=15.0, window_hours=24, min_hours=18):
        self.threshold = threshold
        self.rows = defaultdict(lambda: deque(maxlen=3))
        self.exceeded = set()

    def process(self, reading):
        rows = self.rows[reading.box_id]
        rows.append(reading.value)
        mean = sum(rows) / len(rows)
        if mean > self.threshold and reading.box_id not in self.exceeded:
            self.exceeded.add(reading.box_id)
            return "exceeded"
        if mean <= self.threshold and reading.box_id in self.exceeded:
            self.exceeded.discard(reading.box_id)
            return "resolved"
        return None


class MeanOfAllValues:
    """The typical mistake that real data hides: the mean of every value in the window, not of the hourly means."""

    def __init__(self, threshold=15.0, window_hours=24, min_hours=18):
        self.threshold, self.window_hours, self.min_hours = threshold, window_hours, min_hours
        self.values = defaultdict(deque)  # box_id -> (clock hour, value) of the window's readings, oldest first
        self.sums = defaultdict(float)
        self.hours = defaultdict(Counter)  # box_id -> readings per clock hour in the window
        self.exceeded = set()

    def process(self, reading):
        hour = reading.timestamp.replace(minute=0, second=0, microsecond=0)
        values, hours = self.values[reading.box_id], self.hours[reading.box_id]
        values.append((hour, reading.value))
        self.sums[reading.box_id] += reading.value
        hours[hour] += 1
        while values[0][0] <= hour - timedelta(hours=self.window_hours):
            old, value = values.popleft()
            self.sums[reading.box_id] -= value
            hours[old] -= 1
            if not hours[old]:
                del hours[old]
        if len(hours) < self.min_hours:
            return None
        mean = self.sums[reading.box_id] / len(values)
        if mean > self.threshold and reading.box_id not in self.exceeded:
            self.exceeded.add(reading.box_id)
            return "exceeded"
        if mean <= self.threshold and reading.box_id in self.exceeded:
            self.exceeded.discard(reading.box_id)
            return "resolved"
        return None


def test_window_detector_solution_gives_the_reference_alerts_on_the_berlin_recording(berlin_stream):
    check = selfcheck.window_detector_check(berlin_stream)
    message = check(solved_values("window_detector")["WindowDetector"])
    assert "same alerts" in message
    assert " 0 exceeded" not in message  # the recording does cross the threshold: the comparison means something


def test_mean_of_last_three_rows_is_reported_with_the_first_differing_alert(berlin_stream):
    check = selfcheck.window_detector_check(berlin_stream)
    first_difference = r"The first difference is at reading [\d,]+ \(box .+\): Detector gives"
    with pytest.raises(WrongAnswer, match=first_difference) as hint:
        check(LastThreeRows)
    assert "yours gives" in str(hint.value)


def test_mean_of_all_values_gets_its_own_hint_though_the_berlin_alerts_agree(berlin_stream):
    with pytest.raises(WrongAnswer) as hint:
        selfcheck.window_detector_check(berlin_stream)(MeanOfAllValues)
    said = str(hint.value)
    assert said.startswith("On a hand-made box"), said  # the Berlin day raised no difference
    assert "(23 × 7.5 + 30) / 24 = 8.44 µg/m³, no alert" in said
    assert "Average each hour first" in said


@pytest.mark.parametrize(("threshold", "window_hours", "min_hours"), [(25.0, 72, 54), (15.0, 3, 1), (0.5, 24, 18)])
def test_the_hand_made_box_catches_the_mean_of_all_values_with_other_settings(threshold, window_hours, min_hours):
    check = selfcheck.window_detector_check([], threshold, window_hours, min_hours)
    with pytest.raises(WrongAnswer, match="Average each hour first"):
        check(MeanOfAllValues)
    assert "none on a box whose one busy hour" in check(solved_values("window_detector")["WindowDetector"])


def test_window_detector_that_returns_something_else_is_told_what_to_return(berlin_stream):
    class ReturnsTrue(LastThreeRows):
        def process(self, reading):
            return True

    with pytest.raises(WrongAnswer, match="must return"):
        selfcheck.window_detector_check(berlin_stream[:10])(ReturnsTrue)


def test_key_field_timestamp_gets_its_hint():
    with pytest.raises(WrongAnswer, match="lose their order"):
        selfcheck.key_field_check()("timestamp")


def test_producer_solution_shows_one_partition_per_box(bootstrap_servers):
    solution = solved_values("producer")
    message = selfcheck.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(**{
        name: solution[name] for name in ("to_json", "send_readings")
    })
    assert "12 readings arrived" in message
    assert all(f"Box {box}: 3 readings, on partition " in message for box in range(1, 5))


def test_the_producer_practice_has_several_readings_of_each_of_a_few_boxes(berlin_stream):
    practice = selfcheck.practice_sample(berlin_stream, boxes=3, per_box=4)
    per_box = Counter(reading.box_id for reading in practice)
    assert sorted(per_box.values()) == [4, 4, 4]
    assert practice == [reading for reading in berlin_stream if reading in practice]  # in the stream's order


def test_the_producer_practice_makes_do_with_an_area_of_few_readings():
    readings = few_readings(boxes=2, per_box=3)
    assert selfcheck.practice_sample(readings, boxes=3, per_box=4) == readings


def test_producer_without_flush_is_told_to_flush(bootstrap_servers):
    to_json = solved_values("producer")["to_json"]

    def send_readings(producer, topic, readings):
        for reading in readings:
            producer.send(topic, key=reading["boxId"], value=reading)

    with pytest.raises(WrongAnswer, match="flush"):
        selfcheck.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(to_json, send_readings)


def test_producer_without_key_is_told_to_send_the_box_as_key(bootstrap_servers):
    to_json = solved_values("producer")["to_json"]

    def send_readings(producer, topic, readings):
        for reading in readings:
            producer.send(topic, value=reading)
        producer.flush()

    with pytest.raises(WrongAnswer, match="no key"):
        selfcheck.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(to_json, send_readings)


def test_to_json_returning_text_is_told_to_encode(bootstrap_servers):
    send_readings = solved_values("producer")["send_readings"]
    with pytest.raises(WrongAnswer, match="must return bytes"):
        selfcheck.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(str, send_readings)


def test_consumer_loop_solution_commits_everything_it_processed(bootstrap_servers):
    check = selfcheck.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    message = check(solved_values("consumer_loop")["run_loop"])
    assert "processed all 12 records" in message
    assert "add up to 12" in message


def test_consumer_loop_committing_before_processing_is_told_a_crash_would_lose_records(bootstrap_servers):
    def run_loop(consumer, process, stop):
        while not stop():
            batch = consumer.poll(timeout_ms=500)
            consumer.commit()
            for records in batch.values():
                for record in records:
                    process(record)

    check = selfcheck.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    with pytest.raises(WrongAnswer, match="before processing it"):
        check(run_loop)


def test_consumer_loop_without_commit_is_told_to_commit(bootstrap_servers):
    def run_loop(consumer, process, stop):
        while not stop():
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    process(record)

    check = selfcheck.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    with pytest.raises(WrongAnswer, match="Nothing was committed"):
        check(run_loop)
