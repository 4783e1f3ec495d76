"""Step 4's instances run twice or out of turn: a clear next step, no forgotten process, nothing sent twice."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from pm25.errors import LearnerError
from pm25.streaming import quix_instances
from pm25.streaming.quix_instances import Instance, check_unused, start_instance
from pm25.streaming.stream_processor import DailyMeanRule
from tests.faults.support import create_topic

# Stands in for an instance that has not reached its idle time-out: it runs until stopped.
RUNS_UNTIL_STOPPED = [sys.executable, "-c", "import signal; signal.pause()"]


def test_killing_an_instance_that_ended_says_the_cell_ran_before_and_what_to_run(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    instance = Instance("A", ended, tmp_path / "A.log", tmp_path / "A")
    with pytest.raises(LearnerError, match=r"Instance A has ended already .*run the cells again from the one that"):
        instance.kill()


def test_starting_an_instance_again_stops_the_one_of_that_name_still_running(tmp_path, monkeypatch, capsys):
    popen = subprocess.Popen  # the real one, for the stand-in below
    monkeypatch.setattr(quix_instances.subprocess, "Popen", lambda command, **options: popen(RUNS_UNTIL_STOPPED))
    monkeypatch.setattr(quix_instances, "_started", {})
    earlier = start_instance("A", "group", tmp_path, DailyMeanRule(), "alerts")
    other = start_instance("B", "group", tmp_path, DailyMeanRule(), "alerts")
    again = start_instance("A", "group", tmp_path, DailyMeanRule(), "alerts")
    try:
        assert not earlier.running and other.running and again.running
        assert capsys.readouterr().out == "Stopped instance A of an earlier run (exit code -15).\n"
    finally:
        for instance in (other, again):
            instance.stop()


def test_a_pair_whose_group_read_its_topic_before_is_refused_with_the_cell_to_run(bootstrap_servers, topic):
    create_topic(bootstrap_servers, topic)
    kafka = {"bootstrap_servers": bootstrap_servers}
    check_unused(kafka, "pair-group", topic)  # nothing committed yet: fine
    with KafkaProducer(**kafka) as producer:
        producer.send(topic, b"reading", partition=1).get(timeout=30)
    with KafkaConsumer(**kafka, group_id="pair-group", enable_auto_commit=False) as consumer:
        consumer.commit({TopicPartition(topic, 1): OffsetAndMetadata(1, "", -1)})
    with pytest.raises(LearnerError, match=r"this cell ran already\. Run the cell that makes the pair's topics again"):
        check_unused(kafka, "pair-group", topic)
    check_unused(kafka, "another-group", topic)
