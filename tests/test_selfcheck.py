"""The self-checks of the learner's Kafka code: the solutions pass, typical mistakes get their hint."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError

from pm25.config import BUNDLED_DATA_DIR
from pm25.data.contract import Reading
from pm25.learning import consumer_checks, detector_checks, producer_checks
from pm25.learning.tasks import WrongAnswer, solved_values
from tests import wrong_answers

RECORDING = BUNDLED_DATA_DIR / "berlin_pm25_raw_2023-02-26.csv.gz"


@pytest.fixture(scope="module")
def berlin_stream() -> list[Reading]:
    """The bundled raw Berlin recording as the producer sends it: in event-time order."""
    table = pd.read_csv(RECORDING, dtype={"boxId": str, "sensorId": str, "createdAt": str})
    table = table.sort_values(["createdAt", "boxId"], kind="stable")
    return [
        Reading(
            row.boxId, row.boxName, row.sensorId, row.lat, row.lon, datetime.fromisoformat(row.createdAt), row.value
        )
        for row in table.itertuples()
    ]


def few_readings(boxes: int = 4, per_box: int = 3) -> list[Reading]:
    start = datetime(2023, 2, 26, 8, tzinfo=UTC)
    return [
        Reading(f"{box:024x}", f"Box {box}", f"{box + 100:024x}", 52.5, 13.4, start + timedelta(minutes=i), 5.0 + i)
        for i in range(per_box)
        for box in range(1, boxes + 1)
    ]


SOLUTION = wrong_answers.detector_class(wrong_answers.SOLUTION)


def wrong_detector(name: str) -> type:
    return wrong_answers.detector_class(getattr(wrong_answers, name))


def test_window_detector_solution_gives_the_reference_alerts_on_the_berlin_recording(berlin_stream):
    check = detector_checks.window_detector_check(berlin_stream)
    message = check(SOLUTION)
    assert "same alerts" in message
    assert " 0 exceeded" not in message  # the recording does cross the threshold: the comparison means something


def test_a_mistake_without_a_hint_of_its_own_is_shown_its_first_differing_alert(berlin_stream):
    check = detector_checks.window_detector_check(berlin_stream)
    first_difference = r"The first difference is at reading [\d,]+ \(box .+\): Detector gives .+, yours gives"
    with pytest.raises(WrongAnswer, match=first_difference) as hint:
        check(wrong_detector("LATEST_HOUR_ONLY"))
    assert "Hand-made box" not in str(hint.value)  # the recording shows it


# Each typical mistake and what its hint must say with the default settings: the mistake, on which hand-made box.
HINTS_WITH_THE_DEFAULTS = {
    "DECIDES_INSIDE_THE_HOUR": [  # the rule before issue 24: it decided on the open hour too
        'one reading of 30 µg/m³ in each hour, yours says "exceeded" at reading 18 (17:00), while its hour is still '
        "open; Detector says it at reading 19 (18:00)",
        "Decide only when a reading's hour is newer than every hour of its box",
    ],
    "DECIDES_AT_EVERY_READING": [  # a learner trial wrote it; the recording showed it only as a first difference
        '2 readings of 30 µg/m³ in each hour, yours says "exceeded" at reading 36 (17:30), while its hour is still '
        "open; Detector says it at reading 37 (18:00)",
        "Decide only when a reading's hour is newer than every hour of its box",
    ],
    "NEVER_RESOLVES": [  # the recording has no "resolved" alert at all: only a hand-made box shows this
        'Yours never says "resolved". On a hand-made box with one reading of 30 µg/m³ in each of 24 hours',
        'Detector says "resolved" at reading 41, when the 24-hour mean is back at or below 15 µg/m³',
    ],
    "WINDOW_OF_25_HOURS": [
        "yours says it only at reading 42",
        "drop every hour more than 24 hours before H",
    ],
    "EXCEEDED_AT_THRESHOLD": [
        'mean is exactly 15 µg/m³ at reading 19, Detector gives no alert, yours gives "exceeded"',
        "(mean > threshold)",
    ],
    "RESOLVED_ONLY_BELOW": [
        'mean is exactly 15 µg/m³ at reading 27, Detector gives "resolved", yours gives no alert',
        "(mean <= threshold)",
    ],
    "COUNTS_READINGS": [
        '60 readings of 30 µg/m³, all in one hour, then one in the next hour, yours says "exceeded" at reading 61',
        "count the hours with data (not the readings)",
    ],
    "HOUR_NOT_TRUNCATED": [
        '60 readings of 30 µg/m³, all in one hour, then one in the next hour, yours says "exceeded" at reading 19',
        "Is your `hour` the clock hour, the timestamp without minutes, seconds and microseconds?",
    ],
    "LAST_THREE_ROWS": [
        '60 readings of 30 µg/m³, all in one hour, then one in the next hour, yours says "exceeded" at reading 1',
        "count the hours with data (not the readings)",
    ],
    "MEAN_OF_ALL_VALUES": [  # the recording's alerts agree with it: only a hand-made box shows this
        "On a hand-made box with one reading of 7.5 µg/m³ in each of 23 hours",
        "(23 × 7.5 + 30) / 24 = 8.44 µg/m³, no alert",
        "Average each hour first",
    ],
}


@pytest.mark.parametrize("wrong_answer", sorted(HINTS_WITH_THE_DEFAULTS))
def test_each_typical_mistake_gets_its_own_hint(berlin_stream, wrong_answer):
    with pytest.raises(WrongAnswer) as hint:
        detector_checks.window_detector_check(berlin_stream)(wrong_detector(wrong_answer))
    for words in HINTS_WITH_THE_DEFAULTS[wrong_answer]:
        assert words in str(hint.value)


# The first sentence of each hint says what the mistake is, before the hand-made box that shows it.
LEADS = {
    "DECIDES_INSIDE_THE_HOUR": "Yours decides while a reading's hour is still open.",
    "DECIDES_AT_EVERY_READING": "Yours decides while a reading's hour is still open.",
    "NEVER_RESOLVES": 'Yours never says "resolved".',
    "WINDOW_OF_25_HOURS": 'Yours says "resolved" too late: your window keeps hours that have left it.',
    "EXCEEDED_AT_THRESHOLD": "Yours decides wrongly when the mean is exactly the threshold.",
    "RESOLVED_ONLY_BELOW": "Yours decides wrongly when the mean is exactly the threshold.",
    "COUNTS_READINGS": "Yours decides with fewer than 18 hours with data.",
    "HOUR_NOT_TRUNCATED": "Yours decides with fewer than 18 hours with data.",
    "LAST_THREE_ROWS": "Yours decides with fewer than 18 hours with data.",
    "MEAN_OF_ALL_VALUES": "Yours averages the readings; the rule averages the hourly means.",
}


@pytest.mark.parametrize("wrong_answer", sorted(LEADS))
def test_each_hint_starts_with_one_short_sentence_that_names_the_mistake(berlin_stream, wrong_answer):
    with pytest.raises(WrongAnswer) as hint:
        detector_checks.window_detector_check(berlin_stream)(wrong_detector(wrong_answer))
    assert str(hint.value).startswith(LEADS[wrong_answer] + " ")


OTHER_SETTINGS = [(25.0, 72, 54), (15.0, 3, 1), (0.5, 24, 18)]
HINTS = {
    "DECIDES_INSIDE_THE_HOUR": "while its hour is still open",
    "DECIDES_AT_EVERY_READING": "while its hour is still open",
    "NEVER_RESOLVES": 'Yours never says "resolved"',
    "WINDOW_OF_25_HOURS": "your window keeps hours that have left it",
    "EXCEEDED_AT_THRESHOLD": "The threshold itself is not exceeded",
    "RESOLVED_ONLY_BELOW": "The threshold itself is not exceeded",
    "COUNTS_READINGS": "count the hours with data (not the readings)",
    "HOUR_NOT_TRUNCATED": "Is your `hour` the clock hour",
    "MEAN_OF_ALL_VALUES": "Average each hour first",
}


@pytest.mark.parametrize(("threshold", "window_hours", "min_hours"), OTHER_SETTINGS)
@pytest.mark.parametrize("wrong_answer", sorted(HINTS))
def test_the_hand_made_boxes_name_each_mistake_with_other_settings(threshold, window_hours, min_hours, wrong_answer):
    if wrong_answer == "COUNTS_READINGS" and min_hours == 1:
        pytest.skip("with 1 hour enough, a reading is always enough: counting readings is no mistake")
    hint = HINTS[wrong_answer]
    if wrong_answer == "HOUR_NOT_TRUNCATED" and min_hours == 1:
        hint = HINTS["DECIDES_INSIDE_THE_HOUR"]  # what is left of the mistake: a reading's own hour counts as closed
    check = detector_checks.window_detector_check([], threshold, window_hours, min_hours)
    with pytest.raises(WrongAnswer, match=re.escape(hint)):
        check(wrong_detector(wrong_answer))


@pytest.mark.parametrize(
    ("threshold", "window_hours", "min_hours", "boxes"),
    [
        (15.0, 24, 18, 6),
        (25.0, 72, 54, 6),
        (15.0, 3, 1, 5),
        (0.5, 24, 18, 6),
        (12.3, 24, 18, 5),
        (33.33, 168, 126, 5),
    ],  # no exact tie in floats: no box at the threshold
)
def test_the_solution_passes_every_hand_made_box_with_other_settings(threshold, window_hours, min_hours, boxes):
    said = detector_checks.window_detector_check([], threshold, window_hours, min_hours)(SOLUTION)
    assert f"the same on {boxes} hand-made boxes" in said, said


def test_window_detector_that_returns_something_else_is_told_what_to_return(berlin_stream):
    class ReturnsTrue(SOLUTION):
        def process(self, reading):
            return True

    with pytest.raises(WrongAnswer, match="must return"):
        detector_checks.window_detector_check(berlin_stream[:10])(ReturnsTrue)


def test_a_misspelt_key_field_is_told_its_spelling():
    with pytest.raises(WrongAnswer, match="'boxid' is not a field of a reading: did you mean 'boxId'"):
        producer_checks.key_field_check()("boxid")


def test_an_unknown_key_field_is_told_the_fields():
    with pytest.raises(WrongAnswer, match="'id' is not a field of a reading; the task cell names four"):
        producer_checks.key_field_check()("id")


def test_a_key_encoded_by_the_learner_is_told_that_the_producer_encodes_it():
    # key=reading["boxId"].encode(): the check's producer encodes text keys itself, so the key arrives as b"b'...'".
    assert "key_serializer" in producer_checks.key_hint(b"b'582473be'", "582473be")
    assert "key_serializer" not in producer_checks.key_hint(b"Garten", "582473be")


def test_key_field_timestamp_gets_its_hint():
    with pytest.raises(WrongAnswer, match="lose their order"):
        producer_checks.key_field_check()("timestamp")


def test_producer_solution_shows_one_partition_per_box(bootstrap_servers):
    solution = solved_values("producer")
    message = producer_checks.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(
        **{name: solution[name] for name in ("to_json", "send_readings")}
    )
    assert "11 readings arrived" in message and "the 1 send that failed was counted" in message
    assert sum(f"Box {box}: 3 readings, on partition " in message for box in range(1, 5)) == 3


def test_producer_that_does_not_count_failed_sends_is_told_to_keep_the_futures(bootstrap_servers):
    to_json = solved_values("producer")["to_json"]

    def send_readings(producer, topic, readings):  # the old solution: flush() and trust it
        for reading in readings:
            producer.send(topic, key=reading["boxId"], value=reading)
        producer.flush()

    with pytest.raises(WrongAnswer, match=r"returned None.*flush\(\) also returns when sends failed.*failed\(\)"):
        producer_checks.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(to_json, send_readings)


def test_producer_that_counts_failures_before_flush_is_told_to_count_after_it(bootstrap_servers):
    to_json = solved_values("producer")["to_json"]

    def send_readings(producer, topic, readings):
        futures = [producer.send(topic, key=reading["boxId"], value=reading) for reading in readings]
        failed = sum(future.failed() for future in futures)
        producer.flush()
        return failed

    with pytest.raises(WrongAnswer, match=r"returned 0: 1 of the 12 sends failed.*after flush\(\)"):
        producer_checks.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(to_json, send_readings)


def test_the_producer_practice_has_several_readings_of_each_of_a_few_boxes(berlin_stream):
    practice = producer_checks.practice_sample(berlin_stream, boxes=3, per_box=4)
    per_box = Counter(reading.box_id for reading in practice)
    assert sorted(per_box.values()) == [4, 4, 4]
    assert practice == [reading for reading in berlin_stream if reading in practice]  # in the stream's order


def test_the_producer_practice_makes_do_with_an_area_of_few_readings():
    readings = few_readings(boxes=2, per_box=3)
    assert producer_checks.practice_sample(readings, boxes=3, per_box=4) == readings


def test_producer_without_flush_is_told_to_flush(bootstrap_servers):
    to_json = solved_values("producer")["to_json"]

    def send_readings(producer, topic, readings):
        for reading in readings:
            producer.send(topic, key=reading["boxId"], value=reading)

    with pytest.raises(WrongAnswer, match="flush"):
        producer_checks.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(to_json, send_readings)


def test_producer_without_key_is_told_to_send_the_box_as_key(bootstrap_servers):
    to_json = solved_values("producer")["to_json"]

    def send_readings(producer, topic, readings):
        for reading in readings:
            producer.send(topic, value=reading)
        producer.flush()

    with pytest.raises(WrongAnswer, match="no key"):
        producer_checks.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(to_json, send_readings)


def test_to_json_returning_text_is_told_to_encode(bootstrap_servers):
    send_readings = solved_values("producer")["send_readings"]
    with pytest.raises(WrongAnswer, match="must return bytes"):
        producer_checks.producer_check({"bootstrap_servers": bootstrap_servers}, few_readings())(str, send_readings)


def make_consumer_with(**changed):
    """The solution's make_consumer with some of its settings changed (None: left out)."""

    subscribe = changed.pop("subscribe", True)

    def make_consumer(kafka_options, topic, group_id):
        settings = {"group_id": group_id, "auto_offset_reset": "earliest", "enable_auto_commit": False, **changed}
        consumer = KafkaConsumer(**kafka_options, **{k: v for k, v in settings.items() if v is not None})
        if subscribe:
            consumer.subscribe([topic])
        return consumer

    return make_consumer


MAKE_CONSUMER = make_consumer_with()


@pytest.mark.parametrize(
    ("make_consumer", "hint"),
    [
        (make_consumer_with(group_id="my-group"), r"group_id is 'my-group', not the group_id the function was given"),
        (make_consumer_with(group_id=None), r"no group_id.*group_id=group_id"),
        (make_consumer_with(auto_offset_reset=None), r"auto_offset_reset is 'latest'.*\"earliest\""),
        (make_consumer_with(enable_auto_commit=None), r"commits by itself.*enable_auto_commit=False"),
        (make_consumer_with(subscribe=False), r"not subscribed.*consumer\.subscribe\(\[topic\]\)"),
    ],
    ids=["another group", "no group", "latest", "auto-commit", "not subscribed"],
)
def test_a_consumer_made_wrong_gets_the_hint_for_its_setting(bootstrap_servers, make_consumer, hint):
    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    with pytest.raises(WrongAnswer, match=hint):
        check(make_consumer, solved_values("consumer_loop")["run_loop"])


def test_committing_after_each_record_is_told_what_commit_without_arguments_commits(bootstrap_servers):
    def run_loop(consumer, process, stop):
        while not stop():
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    process(record)
                    consumer.commit()

    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    with pytest.raises(
        WrongAnswer,
        match=r"before processing it.*commit\(\) without arguments commits the position of "
        r"every partition polled.*OffsetAndMetadata\(record\.offset \+ 1\)",
    ):
        check(MAKE_CONSUMER, run_loop)


def test_consumer_loop_solution_commits_everything_it_processed(bootstrap_servers):
    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    message = check(**{name: solved_values("consumer_loop")[name] for name in ("make_consumer", "run_loop")})
    assert "processed all 12 records" in message
    assert "add up to 12" in message
    assert "went on after the commit the check made fail" in message


def test_consumer_loop_check_says_before_the_loop_runs_that_it_makes_a_commit_fail(bootstrap_servers, capsys):
    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    message = check(**{name: solved_values("consumer_loop")[name] for name in ("make_consumer", "run_loop")})
    printed = capsys.readouterr().out
    announced = printed.find("The check makes your loop's first commit fail on purpose")
    assert 0 <= announced < printed.index("The commit failed; polling goes on."), printed
    commits = int(re.search(r"committed (\d+) time", message)[1])
    assert f"committed {commits} time{'' if commits == 1 else 's'}, each after a batch" in message


def loop(commit_every_poll=False, catch=True, close=True):
    """The consumer loop of the solution, with one of its parts left out."""

    def run_loop(consumer, process, stop):
        try:
            while not stop():
                batch = consumer.poll(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        process(record)
                if batch or commit_every_poll:
                    try:
                        consumer.commit()
                    except CommitFailedError:
                        if not catch:
                            raise
        finally:
            if close:
                consumer.close()

    return run_loop


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (loop(commit_every_poll=True), r"after a poll that returned nothing.*if batch:"),
        (loop(catch=False), r"CommitFailedError.*catch it"),
        (loop(close=False), r"never closed.*finally"),
    ],
    ids=["commits when idle", "a failed commit stops it", "not closed"],
)
def test_consumer_loop_without_one_of_its_parts_gets_the_hint_for_it(bootstrap_servers, answer, hint):
    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    with pytest.raises(WrongAnswer, match=hint):
        check(MAKE_CONSUMER, answer)


def test_consumer_loop_committing_before_processing_is_told_a_crash_would_lose_records(bootstrap_servers):
    def run_loop(consumer, process, stop):
        while not stop():
            batch = consumer.poll(timeout_ms=500)
            consumer.commit()
            for records in batch.values():
                for record in records:
                    process(record)

    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    with pytest.raises(WrongAnswer, match="before processing it"):
        check(MAKE_CONSUMER, run_loop)


def test_consumer_loop_without_commit_is_told_to_commit(bootstrap_servers):
    def run_loop(consumer, process, stop):
        while not stop():
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    process(record)

    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    with pytest.raises(WrongAnswer, match="Nothing was committed"):
        check(MAKE_CONSUMER, run_loop)


def test_consumer_loop_that_never_polls_gets_a_verdict_within_seconds(bootstrap_servers):
    def run_loop(consumer, process, stop):
        while not stop():
            pass  # never polls

    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    started = time.monotonic()
    with pytest.raises(WrongAnswer, match=r"poll\(\) was never called"):
        check(MAKE_CONSUMER, run_loop)
    assert time.monotonic() - started < 20


def test_consumer_loop_that_skips_records_gets_a_verdict_within_seconds(bootstrap_servers):
    def run_loop(consumer, process, stop):
        while not stop():
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                process(records[0])  # only the first of each batch

    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    started = time.monotonic()
    with pytest.raises(WrongAnswer, match="records were processed: process every record"):
        check(MAKE_CONSUMER, run_loop)
    assert time.monotonic() - started < 30


def test_consumer_loop_over_the_batch_dict_itself_is_told_what_a_batch_holds(bootstrap_servers):
    def run_loop(consumer, process, stop):
        while not stop():
            for record in consumer.poll(timeout_ms=500):  # the dict's keys: TopicPartitions
                process(record)

    check = consumer_checks.consumer_loop_check({"bootstrap_servers": bootstrap_servers}, few_readings())
    with pytest.raises(WrongAnswer, match=r"got TopicPartition\(topic=.*loop over batch\.values\(\)") as hint:
        check(MAKE_CONSUMER, run_loop)
    assert str(hint.value).count("TopicPartition") == 1, "the partition is named once"
