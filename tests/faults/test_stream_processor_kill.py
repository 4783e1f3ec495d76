"""Step 4 scaled out and recovered: two Quix instances, one SIGKILLed while its partitions still hold the
readings that decide alerts; the survivor restores the state and raises them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from pm25.polling import wait_until
from pm25.streaming.quix_instances import CutTopic, committed, read_alerts, read_topic, send_records, start_instance
from pm25.streaming.stream_processor import DailyMeanRule, prepare_readings_topic
from tests.faults.support import committed_total, create_topic, produce, random_walk_stream

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# 48 boxes, one reading every 5 minutes for 3 days: 41,472 readings, several seconds of work per instance.
BOXES, STEPS, EVERY = 48, 3 * 24 * 12, timedelta(minutes=5)
KEYS = ["boxId", "event", "timestamp"]


def test_a_killed_instance_loses_no_alert_the_survivor_decides_its_pending_ones(
    bootstrap_servers, topic, tmp_path, figures, processes
):
    kafka = {"bootstrap_servers": bootstrap_servers}
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, random_walk_stream(BOXES, STEPS, seed=16, every=EVERY))
    prepare_readings_topic(kafka, topic)
    # The alerts carry the readings' 2024 timestamps: a real broker's retention check would delete them.
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics(
            [NewTopic(f"{topic}_{run}", 1, 1, topic_configs={"retention.ms": "-1"}) for run in ("single", "pair")]
        )
    rule = DailyMeanRule()

    single = start_instance(
        "single",
        f"{topic}_single",
        tmp_path,
        rule,
        f"{topic}_single",
        5,
        {"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "PM25_TOPIC": topic},
    )
    processes.append(single.process)
    assert single.wait(timeout_s=300) == 0, single.log.read_text()[-3000:]
    expected = read_alerts(kafka, f"{topic}_single")
    assert len(expected) > 20  # the stream must give the survivor real work

    # The pair reads a copy of the topic: each partition up to its first alert before the kill, the rest after.
    cut = CutTopic.at_first_alerts(read_topic(kafka, topic), expected)
    pair_input, group, pair_alerts = f"{topic}_pair_input", f"{topic}_pair", f"{topic}_pair"
    create_topic(bootstrap_servers, pair_input, partitions=len(cut.early))
    prepare_readings_topic(kafka, pair_input)
    send_records(kafka, pair_input, cut.early)
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "PM25_TOPIC": pair_input}
    # Long idle time-outs: neither may stop by itself before the kill; the survivor is stopped once done.
    first = start_instance("first", group, tmp_path, rule, pair_alerts, 120, env)
    processes.append(first.process)
    # The first instance has state for every partition, so whatever it keeps after the split has some.
    wait_until(lambda: all(committed(kafka, group, pair_input).values()), 120, "the first instance to commit")
    second = start_instance("second", group, tmp_path, rule, pair_alerts, 120, env)
    processes.append(second.process)
    wait_until(second.restores, 120, "the second instance to take partitions over and restore their state")
    assert first.running, first.log.read_text()[-3000:]
    shares = {"first": sorted(set(cut.early) - set(second.partitions())), "second": second.partitions()}
    # Both go on working, so each writes state the other's local copy lacks: the survivor must restore it.
    send_records(kafka, pair_input, cut.middle)
    before_kill = cut.before_kill()
    wait_until(lambda: committed(kafka, group, pair_input) == before_kill, 120, "the pair to process the middle part")

    def deciding_ahead(name):
        return len(cut.decide(expected, cut.left_over(before_kill, shares[name])))

    # The victim is the one whose partitions still hold more of the readings that decide alerts.
    victim, survivor = (first, second) if deciding_ahead("first") >= deciding_ahead("second") else (second, first)
    victim.kill()
    at_kill = committed(kafka, group, pair_input)
    send_records(kafka, pair_input, cut.after_kill)
    left = cut.left_over(at_kill, shares[victim.name])
    wait_until(lambda: committed_total(bootstrap_servers, group, pair_input) == len(cut), 180, "the survivor to finish")
    assert survivor.stop() == 0, survivor.log.read_text()[-3000:]

    published = read_alerts(kafka, pair_alerts)
    got, want = published.drop_duplicates(KEYS), expected.drop_duplicates(KEYS)
    merged = want.merge(got, on=KEYS, how="outer", suffixes=("_single", "_pair"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]  # none missing, none wrong
    assert merged["mean_pair"].tolist() == pytest.approx(merged["mean_single"].tolist(), abs=1e-9)
    from_left = cut.decide(got, left)
    duplicates = len(published) - len(got)  # at-least-once: re-sent between the last commit and the kill
    print(
        f"{victim.name} killed with {len(left)} readings left on partitions {shares[victim.name]}; "
        f"{survivor.name} raised {len(from_left)} alerts from them; duplicates {duplicates}"
    )
    assert len(left) >= sum(len(cut.after_kill[number]) for number in shares[victim.name]) > 0
    assert len(from_left) == deciding_ahead(victim.name) > 0
    restores = survivor.restores()
    assert restores and set(shares[victim.name]) <= set(restores[-1]["partitions"]), survivor.log.read_text()[-3000:]
    figures.kills_survived += 1
    figures.alert_topic_duplicates += duplicates
