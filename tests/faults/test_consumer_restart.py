"""Step 3's consumer killed mid-stream (SIGKILL: no finally, no flush, no goodbye) and restarted in its group."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pandas as pd
import pytest

from pm25.polling import wait_until
from tests.faults.support import (
    committed_total,
    consumer_script,
    create_topic,
    data_folder,
    finish,
    produce,
    random_walk_stream,
    read_topic,
    script_env,
    sorted_csv,
    start_script,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BOXES, HOURS = 40, 150  # 6,000 readings: a dozen batches of poll(), so a kill lands mid-stream


def _alert_keys(records) -> list[tuple]:
    return [(m["boxId"], m["event"], m["timestamp"], m["n_hours"]) for m in (json.loads(r.value) for r in records)]


# Runs step 3 and SIGKILLs it at its k-th commit, after the batch was processed and before the offsets are
# committed: the worst moment, since everything processed since the last commit is done again after a restart.
# Only the commits of step 3's own group count: the consumer-loop self-check commits in a practice group first.
KILL_BEFORE_COMMIT = """
import os, runpy, signal, sys
import kafka

commit, calls, k = kafka.KafkaConsumer.commit, [0], int(os.environ["KILL_AT_COMMIT"])

def commit_or_die(self, *args, **kwargs):
    if self.config["group_id"] == os.environ["PM25_CONSUMER_GROUP"]:
        calls[0] += 1
    if calls[0] == k:
        print(f"killed before commit {k}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return commit(self, *args, **kwargs)

kafka.KafkaConsumer.commit = commit_or_die
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def test_a_consumer_killed_between_processing_and_commit_and_restarted_ends_like_an_uninterrupted_one(
    bootstrap_servers, topic, tmp_path, figures, processes, rng
):
    readings = random_walk_stream(BOXES, HOURS, seed=rng.randrange(1000))
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, readings)
    script = consumer_script(tmp_path)
    runs = {}
    for name in ("reference", "killed"):
        data_dir = data_folder(tmp_path / name, readings)
        env = script_env(
            PM25_TOPIC=topic,
            PM25_ALERT_TOPIC=f"{topic}_alerts_{name}",
            PM25_DATA_DIR=str(data_dir),
            PM25_CONSUMER_GROUP=f"{topic}_{name}",
            PM25_IDLE_TIMEOUT_S="3",
        )
        runs[name] = (env, data_dir, tmp_path / f"{name}.log")
    reference = start_script(script, runs["reference"][0], runs["reference"][2])
    env, killed_dir, killed_log = runs["killed"]
    wrapper = tmp_path / "kill_before_commit.py"
    wrapper.write_text(KILL_BEFORE_COMMIT, encoding="utf-8")
    victim = start_script(wrapper, {**env, "KILL_AT_COMMIT": str(rng.randrange(2, 8))}, killed_log, str(script))
    processes += [reference, victim]
    group = env["PM25_CONSUMER_GROUP"]
    victim.wait(timeout=120)
    assert victim.returncode == -signal.SIGKILL, killed_log.read_text()[-2000:]
    at_kill = committed_total(bootstrap_servers, group, topic)
    assert 0 < at_kill < len(readings), f"killed with {at_kill} of {len(readings)} offsets committed"
    assert not (killed_dir / "output" / "alerts.csv").exists(), "the kill came after the outputs were written"

    restarted = start_script(script, env, killed_log)
    processes.append(restarted)
    printed = finish(restarted, killed_log, 180)
    finish(reference, runs["reference"][2], 180)
    figures.kills_survived += 1
    figures.faults_injected += 1

    # The same outputs as the uninterrupted run (rows compared as sets: partitions interleave differently).
    reference_dir = runs["reference"][1]
    ours = sorted_csv(killed_dir / "output" / "alerts.csv")
    theirs = sorted_csv(reference_dir / "output" / "alerts.csv")
    assert len(theirs) > 50, "the stream should raise many alerts"
    duplicated_rows = int(ours.duplicated().sum())
    figures.alerts_duplicated_in_csv += duplicated_rows
    assert duplicated_rows == 0
    pd.testing.assert_frame_equal(ours, theirs)
    pd.testing.assert_frame_equal(
        sorted_csv(killed_dir / "output" / "sensor_status.csv"),
        sorted_csv(reference_dir / "output" / "sensor_status.csv"),
    )
    assert f"'processed': {len(readings)}" in printed.rsplit("Consumer group", 1)[-1]
    assert committed_total(bootstrap_servers, group, topic) == len(readings)

    # The alert topic: none lost; duplicates possible (at-least-once) only for the records read
    # after the last commit before the kill, which the restarted consumer treats as new.
    expected = Counter(_alert_keys_from_csv(ours))
    published = Counter(_alert_keys(read_topic(bootstrap_servers, env["PM25_ALERT_TOPIC"])))
    lost = sum((expected - published).values())
    duplicates = sum((published - expected).values())
    figures.messages_lost += lost
    figures.alert_topic_duplicates += duplicates
    assert lost == 0, f"{lost} alerts never reached the alert topic"
    assert set(published) <= set(expected), "the alert topic holds an alert step 3 never raised"
    assert duplicates <= sum(1 for key in expected if key in published), "more duplicates than alerts"
    reference_published = Counter(_alert_keys(read_topic(bootstrap_servers, runs["reference"][0]["PM25_ALERT_TOPIC"])))
    assert reference_published == expected, "an uninterrupted run publishes every alert exactly once"


def _alert_keys_from_csv(table: pd.DataFrame) -> list[tuple]:
    return [(row.boxId, row.event, row.timestamp, int(row.n_hours)) for row in table.itertuples()]


# Runs step 3 with the alert producer's network slow: alerts are delivered only when flushed, as
# happens when the broker takes a moment to acknowledge. The process is SIGKILLed right after the
# first commit that left an alert undelivered.
SLOW_ALERTS = """
import os, runpy, signal, sys
import kafka, kafka.future

alert_topic, held = os.environ["PM25_ALERT_TOPIC"], []
send, flush, commit = kafka.KafkaProducer.send, kafka.KafkaProducer.flush, kafka.KafkaConsumer.commit

def slow_send(self, topic, *args, **kwargs):
    if topic != alert_topic:
        return send(self, topic, *args, **kwargs)
    future = kafka.future.Future()  # resolved once the send really happens, at the next flush
    held.append((self, args, kwargs, future))
    return future

def delivering_flush(self, *args, **kwargs):
    while held:
        producer, send_args, send_kwargs, future = held.pop(0)
        sent = send(producer, alert_topic, *send_args, **send_kwargs)
        sent.add_callback(future.success)
        sent.add_errback(future.failure)
    return flush(self, *args, **kwargs)

def commit_then_die(self, *args, **kwargs):
    result = commit(self, *args, **kwargs)
    if held:
        print(f"killed after a commit with {len(held)} alerts undelivered", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return result

kafka.KafkaProducer.send, kafka.KafkaProducer.flush = slow_send, delivering_flush
kafka.KafkaConsumer.commit = commit_then_die
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def test_a_kill_after_a_commit_loses_no_alert_that_was_still_on_its_way(
    bootstrap_servers, topic, tmp_path, figures, processes
):
    readings = random_walk_stream(5, 30, seed=3)
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, f"{topic}_alerts")  # so that an empty alert topic reads as empty
    produce(bootstrap_servers, topic, readings)
    script = consumer_script(tmp_path)
    wrapper = tmp_path / "slow_alerts.py"
    wrapper.write_text(SLOW_ALERTS, encoding="utf-8")
    data_folder(tmp_path, readings)
    env = script_env(
        PM25_TOPIC=topic,
        PM25_ALERT_TOPIC=f"{topic}_alerts",
        PM25_DATA_DIR=str(tmp_path),
        PM25_CONSUMER_GROUP=f"{topic}_group",
        PM25_IDLE_TIMEOUT_S="3",
    )
    log = tmp_path / "step3.log"
    victim = start_script(wrapper, env, log, str(script))
    processes.append(victim)
    wait_until(lambda: victim.poll() is not None, 60, "step 3 to end, or die after a commit")
    figures.faults_injected += 1
    if victim.returncode == -signal.SIGKILL:  # it committed while an alert was undelivered: restart it
        restarted = start_script(script, env, log)
        processes.append(restarted)
        finish(restarted, log, 120)
        figures.kills_survived += 1
    else:  # alerts are flushed before each commit, so there was no moment to kill it
        assert victim.returncode == 0, log.read_text()
    expected = Counter(_alert_keys_from_csv(sorted_csv(tmp_path / "output" / "alerts.csv")))
    assert expected, "the stream should raise alerts"
    published = Counter(_alert_keys(read_topic(bootstrap_servers, env["PM25_ALERT_TOPIC"])))
    lost = sum((expected - published).values())
    assert lost == 0, f"{lost} of {sum(expected.values())} alerts never reached the alert topic"
