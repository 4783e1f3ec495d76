"""Step 3's alert that the producer refuses at once: its message is not committed, so it is not lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pm25 import contract
from pm25.consuming import AlertSerializer, ProcessedOffsets
from pm25.detector import Alert
from tests.faults.support import wait_until

pytestmark = pytest.mark.faults


def test_an_alert_send_refused_at_once_holds_its_message_back_from_the_commit(bootstrap_servers, topic, capsys):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    with KafkaProducer(bootstrap_servers=bootstrap_servers) as sender:
        for n in range(3):
            sender.send(topic, key=b"box", value=b"%d" % n).get(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=f"{topic}-group",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=6000, heartbeat_interval_ms=2000)  # fmt: skip
    # Far too small for any alert: send() raises MessageSizeTooLargeError before anything is sent.
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, key_serializer=contract.KeySerializer(),
                             value_serializer=AlertSerializer(), max_request_size=16)  # fmt: skip
    try:
        offsets = ProcessedOffsets(consumer, producer, lambda box_ids: None, topic_partitions=1)
        consumer.subscribe([topic], listener=offsets)
        records = []
        wait_until(lambda: records.extend(r for rs in consumer.poll(timeout_ms=500).values() for r in rs) or
                   len(records) == 3, 30, "the three messages")  # fmt: skip
        alert = Alert("box", "Box", "exceeded", datetime(2023, 2, 27, tzinfo=UTC), 20.0, 24, 15.0, 24)
        for record in records:
            if record.offset == 1:
                offsets.publish(topic, alert, record)  # refused at once: it must not escape, nor be forgotten
            offsets.processed(record, None)
        offsets.commit()

        assert consumer.committed(TopicPartition(topic, 0)) == 1  # message 1 is read again after a restart
        assert "1 alerts were not delivered ([Error 10] MessageSizeTooLargeError" in capsys.readouterr().out
    finally:
        producer.close(timeout=2)
        consumer.close(timeout_ms=2000)
