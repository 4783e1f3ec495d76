"""Step 4 scaled out and recovered: two Quix instances, one SIGKILLed mid-stream; the survivor finishes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from pm25.stream_processor import DailyMeanRule, committed, prepare_readings_topic, read_topic, start_instance
from tests.faults.support import committed_total, create_topic, produce, random_walk_stream, wait_until

pytestmark = pytest.mark.faults

# 48 boxes, one reading every 5 minutes for 3 days: 41,472 readings, several seconds of work per instance.
BOXES, STEPS, EVERY = 48, 3 * 24 * 12, timedelta(minutes=5)


def alert_messages(bootstrap_servers: str, topic: str) -> list[dict]:
    return [json.loads(record.value) for record in read_topic({"bootstrap_servers": bootstrap_servers}, topic)]


def keyed(messages: list[dict]) -> dict[tuple, float]:
    return {(m["boxId"], m["event"], m["timestamp"]): m["mean"] for m in messages}


def test_a_killed_instance_loses_no_alert_the_survivor_restores_its_state(
    bootstrap_servers, topic, tmp_path, figures, processes
):
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, random_walk_stream(BOXES, STEPS, seed=16, every=EVERY))
    prepare_readings_topic({"bootstrap_servers": bootstrap_servers}, topic)
    # The alerts carry the readings' 2024 timestamps: a real broker's retention check would delete them.
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics([NewTopic(f"{topic}_{run}", 1, 1, topic_configs={"retention.ms": "-1"})
                             for run in ("single", "pair")])  # fmt: skip
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "PM25_TOPIC": topic}
    rule = DailyMeanRule()

    single = start_instance("single", f"{topic}_single", tmp_path, rule, f"{topic}_single", 5, env)
    processes.append(single.process)
    assert single.wait(timeout_s=300) == 0, single.log.read_text()[-3000:]
    expected = alert_messages(bootstrap_servers, f"{topic}_single")
    assert len(expected) > 20  # the stream must give the survivor real work

    group = f"{topic}_pair"
    # The survivor must outwait the killed one's session time-out (6 s) before it takes over: idle time-out 20 s.
    killed = start_instance("first", group, tmp_path, rule, f"{topic}_pair", 20, env)
    processes.append(killed.process)
    kafka = {"bootstrap_servers": bootstrap_servers}
    # The first instance has state for every partition, so whatever it keeps after the split has some.
    wait_until(lambda: all(committed(kafka, group, topic).values()), 120, "the first instance to commit everywhere")
    survivor = start_instance("second", group, tmp_path, rule, f"{topic}_pair", 20, env)
    processes.append(survivor.process)
    wait_until(survivor.restores, 120, "the second instance to take partitions over and restore their state")
    kept_by_killed = set(committed(kafka, group, topic)) - set(survivor.partitions())
    assert killed.running, "the first instance finished before it could be killed: make the stream longer"
    killed.kill()
    assert survivor.wait(timeout_s=300) == 0, survivor.log.read_text()[-3000:]

    published = alert_messages(bootstrap_servers, f"{topic}_pair")
    got, want = keyed(published), keyed(expected)
    assert got.keys() == want.keys()  # none missing, none wrong
    assert all(got[key] == pytest.approx(want[key], abs=1e-9) for key in want)
    duplicates = len(published) - len(got)  # at-least-once: re-sent between the last commit and the kill
    restores = survivor.restores()
    assert len(restores) >= 2, f"the survivor restored no state after the kill:\n{survivor.log.read_text()[-3000:]}"
    assert kept_by_killed and set(restores[-1]["partitions"]) == kept_by_killed  # the killed one's partitions
    assert committed_total(bootstrap_servers, group, topic) == BOXES * STEPS
    figures.kills_survived += 1
    figures.alert_topic_duplicates += duplicates
    print(f"alerts {len(got)}, duplicates {duplicates}, restore {[event['seconds'] for event in restores]} s")
