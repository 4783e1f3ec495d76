"""SendToAlertLatency: milliseconds from a record's send() to the end of its processing."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pm25.streaming import latency

LOG_APPEND_TIME = 1


class FakeClock:
    def __init__(self, seconds: float):
        self.now = seconds

    def __call__(self) -> float:
        return self.now


def record(sent_ms: float, timestamp_type: int = latency.CREATE_TIME):
    return SimpleNamespace(timestamp=sent_ms, timestamp_type=timestamp_type)


def test_latency_is_the_time_from_the_records_send_stamp_to_its_observation():
    clock = FakeClock(1000.0)
    meter = latency.SendToAlertLatency(clock)
    clock.now = 1000.250
    meter.observe(record(1000_200))  # sent at 1000.200 s, done at 1000.250 s
    assert (meter.count, meter.quantile(0.5)) == (1, 50)


def test_records_sent_before_the_meter_was_made_are_backlog_not_latency():
    clock = FakeClock(1000.0)
    meter = latency.SendToAlertLatency(clock)
    clock.now = 1005.0
    meter.observe(record(999_000))  # waited in the topic before the consumer was there
    meter.observe(record(1004_990))
    assert (meter.backlog, meter.count, meter.quantile(0.99)) == (1, 1, 10)


def test_records_stamped_by_the_broker_are_not_counted():
    meter = latency.SendToAlertLatency(FakeClock(1000.0))
    meter.observe(record(1000_000, timestamp_type=LOG_APPEND_TIME))
    assert (meter.backlog, meter.count) == (1, 0)


def test_quantiles_are_nearest_rank_over_whole_milliseconds():
    clock = FakeClock(0.0)
    meter = latency.SendToAlertLatency(clock)
    clock.now = 10.0
    for delay_ms in [*range(1, 99), 500, 900]:  # 100 readings: 1..98 ms, then two slow ones
        meter.observe(record(10_000 - delay_ms))
    assert (meter.quantile(0.5), meter.quantile(0.98), meter.quantile(0.99), meter.quantile(1.0)) == (50, 98, 500, 900)
    assert "median 50 ms, 99th percentile 500 ms, slowest 900 ms" in meter.summary()


def test_summary_without_readings_says_how_to_get_some():
    meter = latency.SendToAlertLatency()
    assert math.isnan(meter.quantile(0.5))
    assert "set live_speedup in section 3" in meter.summary()


def test_latency_of_real_records_lies_between_zero_and_the_time_the_round_trip_took(bootstrap_servers, topic):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    partition = TopicPartition(topic, 0)
    with KafkaConsumer(bootstrap_servers=bootstrap_servers, fetch_max_wait_ms=latency.FETCH_MAX_WAIT_MS) as consumer:
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        started = time.time()
        meter = latency.SendToAlertLatency()
        with KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5) as producer:
            for index in range(20):
                producer.send(topic, value=b"%d" % index)
            producer.flush(timeout=10)
        deadline = time.monotonic() + 30
        while meter.count + meter.backlog < 20 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for one in records:
                    meter.observe(one)
        round_trip_ms = (time.time() - started) * 1000
    assert (meter.count, meter.backlog) == (20, 0)
    assert 0 <= meter.quantile(0.5) <= max(meter.histogram) <= round_trip_ms
