"""Step 3's alert that the producer refuses: it is sent once more; one that fails again stops the loop with one
line, its message and everything after it uncommitted, so it is not lost, and nothing is pinned silently."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from pm25.data import contract
from pm25.polling import wait_until
from pm25.rules.detector import Alert
from pm25.streaming.codec import AlertSerializer
from pm25.streaming.commits import AlertNotDelivered, ProcessedOffsets
from tests.faults.support import read_topic

pytestmark = pytest.mark.faults

ALERT = Alert("box", "Box", "exceeded", datetime(2023, 2, 27, tzinfo=UTC), 20.0, 24, 15.0, 24)


class Refusing:
    """An alert producer whose first `refusals` sends are refused at once, as a broker that is away refuses them."""

    def __init__(self, producer: KafkaProducer, refusals: int):
        self.producer, self.refusals, self.sends = producer, refusals, 0

    def send(self, *args, **kwargs):
        self.sends += 1
        if self.sends <= self.refusals:
            raise KafkaTimeoutError("no metadata in time (refused by the test)")
        return self.producer.send(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.producer, name)


@pytest.fixture
def three_messages(bootstrap_servers, topic):
    """A topic of one partition with three messages (and one for the alerts), and a consumer of a new group."""
    one = {"num_partitions": 1, "replication_factor": 1}
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({name: one for name in (topic, f"{topic}_alerts")})
    with KafkaProducer(bootstrap_servers=bootstrap_servers) as sender:
        for n in range(3):
            sender.send(topic, key=b"box", value=b"%d" % n).get(timeout=10)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=f"{topic}-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    yield consumer
    consumer.close(timeout_ms=2000)


def process_with_alert_at_1(consumer, topic, alert_producer) -> ProcessedOffsets:
    offsets = ProcessedOffsets(consumer, alert_producer, lambda box_ids: None, topic_partitions=1)
    consumer.subscribe([topic], listener=offsets)
    records = []
    wait_until(
        lambda: records.extend(r for rs in consumer.poll(timeout_ms=500).values() for r in rs) or len(records) == 3,
        30,
        "the three messages",
        every_s=0,  # poll() is the wait
    )
    for record in records:
        if record.offset == 1:
            offsets.publish(topic + "_alerts", ALERT, record)
        offsets.processed(record, None)
    return offsets


def test_an_alert_refused_twice_stops_the_loop_with_its_message_uncommitted(bootstrap_servers, topic, three_messages):
    # Far too small for any alert: send() raises MessageSizeTooLargeError before anything is sent, every time.
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        key_serializer=contract.KeySerializer(),
        value_serializer=AlertSerializer(),
        max_request_size=16,
    )
    try:
        offsets = process_with_alert_at_1(three_messages, topic, producer)
        with pytest.raises(
            AlertNotDelivered,
            match=r"^1 alert was not delivered, again on a second try \(\[Error 10\] "
            r"MessageSizeTooLargeError.*run this cell again",
        ):
            offsets.commit()
        assert three_messages.committed(TopicPartition(topic, 0)) == 1  # message 1 is read again after a restart
        with pytest.raises(AlertNotDelivered):  # run again: tried again, still held, and still said
            offsets.commit()
        assert three_messages.committed(TopicPartition(topic, 0)) == 1
    finally:
        producer.close(timeout=2)


def test_an_alert_refused_once_is_sent_again_and_everything_is_committed(bootstrap_servers, topic, three_messages):
    producer = Refusing(
        KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            key_serializer=contract.KeySerializer(),
            value_serializer=AlertSerializer(),
        ),
        refusals=1,
    )
    try:
        offsets = process_with_alert_at_1(three_messages, topic, producer)
        offsets.commit()
        assert producer.sends == 2
        assert three_messages.committed(TopicPartition(topic, 0)) == 3
        assert [record.value for record in read_topic(bootstrap_servers, topic + "_alerts")] == [
            AlertSerializer().serialize(None, None, ALERT)
        ]
    finally:
        producer.close(timeout=2)


def test_an_alert_refused_twice_is_delivered_when_the_cell_runs_again(bootstrap_servers, topic, three_messages):
    producer = Refusing(
        KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            key_serializer=contract.KeySerializer(),
            value_serializer=AlertSerializer(),
        ),
        refusals=2,
    )
    try:
        offsets = process_with_alert_at_1(three_messages, topic, producer)
        with pytest.raises(AlertNotDelivered):
            offsets.commit()
        assert three_messages.committed(TopicPartition(topic, 0)) == 1
        offsets.commit()  # the broker is back: the loop cell run again commits first, sending the alert once more
        assert three_messages.committed(TopicPartition(topic, 0)) == 3
        assert len(read_topic(bootstrap_servers, topic + "_alerts")) == 1
    finally:
        producer.close(timeout=2)
