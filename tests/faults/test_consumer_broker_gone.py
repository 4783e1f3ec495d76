"""Step 3's commit when the broker has gone away mid-run: one clear line, and nothing forgotten."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from pm25.brokers.embedded import EmbeddedBroker
from pm25.errors import LearnerError
from pm25.polling import wait_until
from pm25.streaming.commits import ProcessedOffsets

pytestmark = pytest.mark.faults


def test_a_commit_after_the_broker_went_away_says_so_and_keeps_the_offsets_to_commit():
    broker = EmbeddedBroker().start()
    servers = broker.bootstrap_servers
    consumer = producer = None
    try:
        with KafkaAdminClient(bootstrap_servers=servers) as admin:
            admin.create_topics({"readings": {"num_partitions": 1, "replication_factor": 1}})
        with KafkaProducer(bootstrap_servers=servers) as sender:
            sender.send("readings", key=b"a" * 24, value=b"{}").get(timeout=10)
        consumer = KafkaConsumer(
            bootstrap_servers=servers,
            group_id="g",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=2000,
            request_timeout_ms=5000,
        )
        producer = KafkaProducer(bootstrap_servers=servers, request_timeout_ms=2000, delivery_timeout_ms=3000)
        offsets = ProcessedOffsets(consumer, producer, lambda box_ids: None, topic_partitions=1)
        consumer.subscribe(["readings"], listener=offsets)
        records = []

        def polled() -> list:
            records.extend(record for part in consumer.poll(timeout_ms=500).values() for record in part)
            return records

        wait_until(polled, 30, "the message")
        offsets.is_new(records[0])  # the group's commit, looked up while the broker is there
        offsets.processed(records[0], None)
        broker.stop()

        with pytest.raises(LearnerError, match=f"broker at {servers} did not answer") as error:
            offsets.commit()
        assert "run this cell again" in str(error.value)
        assert offsets.uncommitted, "the processed offsets must still be committed once the broker is back"
    finally:
        if producer:
            producer.close(timeout=2)
        if consumer:
            consumer.close(timeout_ms=2000)
        broker.stop()
