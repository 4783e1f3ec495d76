"""Step 3's loop interrupted anywhere (as Kernel -> Interrupt does), then run again, as TEACHERS.md invites:
every reading reaches the detector exactly once, and the group commits exactly what was sent.

The notebook's own cells run in this process, one by one in one namespace, like a kernel runs them; the
interrupt is a real SIGINT, raised at the k-th call of the step where it lands.
"""

from __future__ import annotations

import json
import linecache
import os
import signal
from collections import Counter

import pytest
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError

from pm25.errors import LearnerError, StoppedByYou
from pm25.rules.detector import Detector
from tests.faults.support import (
    CLOSE_CELL,
    DETECTOR_CELL,
    LOOP_CELL,
    NotebookCells,
    committed_total,
    create_topic,
    data_folder,
    produce,
    random_walk_stream,
    read_topic,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OFFSETS_CELL = "subscribe"  # the consumer subscribes with a listener that commits what was processed

BOXES, STEPS = 12, 150  # 1,800 readings: four batches of poll()


@pytest.fixture
def stream(bootstrap_servers, topic, rng):
    readings = random_walk_stream(BOXES, STEPS, seed=rng.randrange(1000))
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, readings)
    return readings


@pytest.fixture
def step3(bootstrap_servers, topic, tmp_path, monkeypatch, stream):
    """Step 3's cells with this test's settings; the consumer and alert producer are closed at the end."""
    data_folder(tmp_path, stream)
    for variable, value in {
        "PM25_TOPIC": topic,
        "PM25_ALERT_TOPIC": f"{topic}_alerts",
        "PM25_DATA_DIR": str(tmp_path),
        "PM25_CONSUMER_GROUP": f"{topic}_group",
        "PM25_IDLE_TIMEOUT_S": "2",
        "MPLBACKEND": "Agg",
    }.items():
        monkeypatch.setenv(variable, value)
    cells = NotebookCells()
    yield cells
    if "alert_producer" in cells.namespace:
        cells.run(CLOSE_CELL)


def interrupt_at(monkeypatch, cls, method: str, k: int, when=lambda result: True) -> list[int]:
    """Send SIGINT to this process at the k-th call of cls.method (counting calls where `when(result)`)."""
    original, calls = getattr(cls, method), [0]

    def interrupted(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if when(result):
            calls[0] += 1
            if calls[0] == k:
                signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(cls, method, interrupted)
    return calls


def published_alerts(bootstrap_servers, topic) -> Counter:
    return Counter(
        (m["boxId"], m["event"], m["timestamp"])
        for m in map(json.loads, (r.value for r in read_topic(bootstrap_servers, f"{topic}_alerts")))
    )


def alert_keys(alerts) -> Counter:
    return Counter((alert.box_id, alert.event, alert.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")) for alert in alerts)


def assert_every_reading_once(step3, stream, bootstrap_servers, topic, capsys):
    detector = step3["detector"]
    assert detector.counts["processed"] == len(stream), detector.counts
    assert detector.counts["duplicates"] == detector.counts["late"] == 0, detector.counts
    assert len(step3["history"]) == len(stream)
    assert committed_total(bootstrap_servers, f"{topic}_group", topic) == len(stream)
    step3.run(CLOSE_CELL)  # the alert producer delivers what is left
    assert published_alerts(bootstrap_servers, topic) == alert_keys(step3["alerts"])
    assert step3["alerts"], "the stream should raise alerts"


@pytest.mark.parametrize("where", ["process", "poll", "commit"])
def test_an_interrupt_anywhere_in_the_loop_then_the_loop_again_processes_every_reading_once(
    where, step3, stream, bootstrap_servers, topic, monkeypatch, rng, capsys
):
    if where == "process":  # inside the handling of the k-th message (the interrupt waits for it)
        ks = [1, rng.randrange(2, len(stream)), len(stream)]
        patch = (Detector, "process", lambda result: True)
    elif where == "poll":  # just after poll() returned a batch, before any of it is processed
        ks = [1, rng.randrange(2, 4)]
        patch = (KafkaConsumer, "poll", bool)
    else:  # just after the k-th commit
        ks = [1, rng.randrange(2, 4)]
        patch = (KafkaConsumer, "commit", lambda result: True)
    step3.run_before(LOOP_CELL)
    for k in ks:
        with monkeypatch.context() as patched:
            calls = interrupt_at(patched, *patch[:2], k=k, when=patch[2])
            try:
                step3.run(LOOP_CELL)
            except StoppedByYou:
                assert calls[0] >= k
            else:
                assert calls[0] < k, f"the interrupt at {where} #{k} was not seen"
    step3.run(LOOP_CELL)  # and once more, with no interrupt, to the end
    assert_every_reading_once(step3, stream, bootstrap_servers, topic, capsys)


def test_a_rerun_in_a_group_that_committed_everything_never_moves_its_commit_back(
    step3, stream, bootstrap_servers, topic, monkeypatch
):
    step3.run_until(LOOP_CELL)
    step3.run(CLOSE_CELL)
    assert committed_total(bootstrap_servers, f"{topic}_group", topic) == len(stream)

    rerun = NotebookCells()  # the same group again: it re-reads the topic from the start to rebuild its windows
    rerun.run_before(LOOP_CELL)
    with monkeypatch.context() as patched, pytest.raises(StoppedByYou):
        interrupt_at(patched, KafkaConsumer, "poll", k=2, when=bool)  # after one batch was processed and committed
        rerun.run(LOOP_CELL)
    try:
        assert rerun["offsets"].messages_read < len(stream), "the rebuild should have been cut short"
        assert committed_total(bootstrap_servers, f"{topic}_group", topic) == len(stream)
    finally:
        rerun.run(CLOSE_CELL)


EVICTS = os.environ.get("PM25_BROKER_EVICTS") == "1"  # set by make test-kafka: real Kafka
NEVER_EVICTS = "the embedded broker never evicts, so a lost member's partitions stay with it (PM25_BROKER_EVICTS=1)"


@pytest.mark.parametrize(
    "how",
    [
        "rebalance",
        pytest.param("evicted", marks=pytest.mark.skipif(not EVICTS, reason=NEVER_EVICTS)),
    ],
)
def test_a_refused_commit_is_reported_and_polling_goes_on_without_losing_a_reading(
    how, step3, stream, bootstrap_servers, topic, monkeypatch, rng, capsys
):
    """What a real Kafka does to a member that missed its heartbeats: its next commit fails.

    "rebalance": the group rebalanced meanwhile and the member keeps its partitions. "evicted": its
    generation is gone, its partitions are lost and come back only after the broker has expired the old
    membership (session time-out), so the idle time-out is longer than the session time-out.
    """
    if how == "evicted":
        monkeypatch.setenv("PM25_IDLE_TIMEOUT_S", "15")
    failing = rng.randrange(1, 4)
    original, calls = KafkaConsumer.commit, [0]

    def commit(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == failing:
            if how == "evicted":  # as after IllegalGenerationError: its partitions are lost, it rejoins
                # (keeping its member id: the embedded broker would keep a member that left as a new one for good)
                self._coordinator.reset_generation(member_id=self._coordinator._generation.member_id)
            self._coordinator.request_rejoin()
            raise CommitFailedError("the group rebalanced (injected)")
        return original(self, *args, **kwargs)

    step3.run_before(LOOP_CELL)  # the consumer-loop self-check commits too: count only the loop's commits
    monkeypatch.setattr(KafkaConsumer, "commit", commit)
    step3.run(LOOP_CELL)
    assert "⚠️ The commit failed, polling goes on (CommitFailedError)" in capsys.readouterr().out
    detector = step3["detector"]
    assert committed_total(bootstrap_servers, f"{topic}_group", topic) == len(stream)
    if how == "rebalance":  # it kept its partitions and went on where it was
        assert detector.counts["processed"] == len(stream), detector.counts
    step3.run(CLOSE_CELL)
    published = published_alerts(bootstrap_servers, topic)
    expected = alert_keys(step3["alerts"])
    assert set(published) == set(expected) and not expected - published, "an alert is missing from the topic"
    step3.run(DETECTOR_CELL)  # a fresh detector with the same settings, fed the whole stream at once
    assert alert_keys(filter(None, map(step3["detector"].process, stream))) == expected


def test_a_new_consumer_with_the_last_ones_detector_says_to_run_from_the_detector_cell(step3, stream):
    step3.run_until(LOOP_CELL)
    step3.run(CLOSE_CELL)
    for cell_id in ("consumer", "alert-producer", "process-record"):
        step3.run(cell_id)  # a learner runs the consumer's cells again, but not the detector's
    with pytest.raises(LearnerError, match=r"count each as late\. Run the cells from `detector = Hardened"):
        step3.run(OFFSETS_CELL)  # the new member would re-read every reading into windows that hold it already

    step3.run(DETECTOR_CELL)  # as the message says
    for cell_id in ("process-record", OFFSETS_CELL, LOOP_CELL):
        step3.run(cell_id)
    assert step3["detector"].counts["late"] == 0
    assert step3["detector"].counts["processed"] == len(stream)


# The learner's class, with a slip that only one reading in the middle of the stream reaches, and fixed.
RAISES_ON_ONE_READING = """
class WindowDetector(Solved):
    def process(self, reading):
        if reading == FAILING:
            return reading.value - timedelta(hours=1)
        SEEN.append(reading)
        return super().process(reading)
"""
DETECTOR_FIXED = RAISES_ON_ONE_READING.replace("reading == FAILING", "False")


def learners_cell(step3, source: str, cell: str) -> None:
    """Run `source` as a learner's cell: its lines where inspect and pm25.learning.tasks find them."""
    linecache.cache[cell] = (len(source), None, source.splitlines(True), cell)
    exec(compile(source, cell, "exec"), step3.namespace)


def test_an_error_in_the_learners_detector_on_the_stream_is_one_line_and_a_rerun_after_the_fix_goes_on(
    step3, stream, bootstrap_servers, topic, capsys
):
    step3.run_until("window-detector-check")
    step3.namespace.update(Solved=step3["WindowDetector"], FAILING=stream[len(stream) // 2], SEEN=[])
    learners_cell(step3, RAISES_ON_ONE_READING, "<the learner's cell>")
    step3.run_from_until(DETECTOR_CELL, "live-map")

    with pytest.raises(LearnerError) as stopped:
        step3.run(LOOP_CELL)
    message = str(stopped.value)
    assert message.startswith(
        "Your code stopped at line 5 of its cell, `return reading.value - timedelta(hours=1)`, "
        "with TypeError: unsupported operand"
    ), message
    assert "\n" not in message
    processed = step3["offsets"].messages_read
    assert 0 < processed < len(stream)
    assert committed_total(bootstrap_servers, f"{topic}_group", topic) == processed  # what was processed is kept

    learners_cell(step3, DETECTOR_FIXED, "<the learner's cell, fixed>")  # the learner fixes the line, runs the cell
    step3.run(LOOP_CELL)  # and the loop again: it goes on from the reading that failed
    assert Counter(step3["SEEN"]) == Counter(stream)  # the learner's class got every reading once
    assert step3["detector"].compare().endswith("the same.")
    assert_every_reading_once(step3, stream, bootstrap_servers, topic, capsys)


# The learner's loop, with a slip that only its second batch reaches.
LOOP_THAT_FAILS_ON_ITS_SECOND_BATCH = """
def run_loop(consumer, process, stop):
    batches = 0
    try:
        while not stop():
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    process(record)
            if batch:
                batches += 1
                if batches == 2:
                    consumer.comit()
                consumer.commit()
    finally:
        consumer.close()
"""


def test_an_error_in_the_learners_loop_on_the_stream_is_one_line_and_a_rerun_after_the_fix_goes_on(
    step3, stream, bootstrap_servers, topic, capsys
):
    step3.run_until("consumer-loop-check")
    learners_cell(step3, LOOP_THAT_FAILS_ON_ITS_SECOND_BATCH, "<the learner's loop cell>")
    step3.run_from_until("consumer", "live-map")

    with pytest.raises(LearnerError) as stopped:
        step3.run(LOOP_CELL)
    message = str(stopped.value)
    assert message.startswith(
        "Your code stopped at line 13 of its cell, `consumer.comit()`, with AttributeError: "
        "'KafkaConsumer' object has no attribute 'comit'"
    ), message
    assert "\n" not in message
    processed = step3["offsets"].messages_read
    assert 0 < processed < len(stream)
    assert committed_total(bootstrap_servers, f"{topic}_group", topic) == processed  # what was processed is kept

    fixed = LOOP_THAT_FAILS_ON_ITS_SECOND_BATCH.replace("consumer.comit()", "pass")
    learners_cell(step3, fixed, "<the learner's loop cell, fixed>")  # the learner fixes the line, runs the cell
    step3.run(LOOP_CELL)  # and the loop again: it goes on from there
    assert_every_reading_once(step3, stream, bootstrap_servers, topic, capsys)
