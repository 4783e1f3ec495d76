"""End-to-end latency in replay mode: from a reading's send() to the end of step 3's per-message work.

Run from the repository root:  .venv/bin/python benchmarks/bench_latency.py [--json PATH] [--seconds S]

A producer process with step 2's settings (pm25.streaming.sending.PRODUCER_SETTINGS: acks="all", idempotence, its
linger_ms and batch_size) sends readings at a fixed rate, 100 and then 1,000 readings/s. A consumer in this
process, with step 3's fetch wait (pm25.streaming.latency.FETCH_MAX_WAIT_MS), does per message what step 3's loop does:
decode against the contract, Detector.process, StatusTracker.update, publish an alert when there is one; then
pm25.streaming.latency.SendToAlertLatency takes the time from the record's send stamp (CreateTime) to that moment, as
step 3 does. Unlike step 3's loop, this consumer is assigned its partitions without a group, commits nothing
and does not wait for an alert's acknowledgement: its figures are a lower bound for step 3's latency. Both
processes run on this machine, so they share the clock. For comparison, 1,000 readings/s are also measured
with Kafka's default fetch wait (500 ms). The broker: benchmarks/brokers.py (embedded unless KAFKA_BOOTSTRAP_SERVERS
or PM25_BROKER say otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import time
import uuid
from pathlib import Path

import streams  # benchmarks/streams.py, next to this script
from brokers import broker_to_measure  # benchmarks/brokers.py, next to this script
from figures import write_figures  # benchmarks/figures.py, next to this script
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pm25.data import contract
from pm25.rules.detector import Detector
from pm25.rules.status import StatusTracker
from pm25.streaming import codec, latency, sending

RATES = (100, 1_000)
KAFKA_DEFAULT_FETCH_MAX_WAIT_MS = 500
TARGET_P50_MS = 25.0
TARGET_P99_MS = 60.0


def produce(bootstrap: str, topic: str, rate: int, count: int, ready) -> None:
    """Send `count` readings at `rate` per second: reading i is due at start + i / rate (no drift)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        key_serializer=contract.KeySerializer(),
        value_serializer=contract.ReadingSerializer(),
        **sending.PRODUCER_SETTINGS,
    )
    readings = list(streams.raw_readings(count))
    producer.partitions_for(topic)
    ready.wait()
    started = time.monotonic()
    for index, reading in enumerate(readings):
        pause = started + index / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing at the fixed rate, as replay.paced does; not synchronisation
        producer.send(topic, key=reading.key, value=reading)
    producer.flush(timeout=60)
    producer.close(timeout=10)


def measure(bootstrap: str, rate: int, seconds: float, fetch_max_wait_ms: int) -> dict:
    topic, alert_topic = f"bench_latency_{uuid.uuid4().hex[:8]}", f"bench_alerts_{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics(
            {
                topic: {"num_partitions": 3, "replication_factor": 1},
                alert_topic: {"num_partitions": 3, "replication_factor": 1},
            }
        )
    count = int(rate * seconds)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    partitions = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    alert_producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        key_serializer=contract.KeySerializer(),
        value_serializer=codec.AlertSerializer(),
        acks="all",
    )
    detector, status = Detector(), StatusTracker(active_hours=24)
    alerts = 0

    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    producer = context.Process(target=produce, args=(bootstrap, topic, rate, count, ready))
    producer.start()
    consumer.poll(timeout_ms=100)  # connect and fetch metadata before the clock matters
    meter = latency.SendToAlertLatency()
    ready.set()
    deadline = time.monotonic() + seconds + 60
    while meter.count + meter.backlog < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                reading = contract.decode(record.value)
                alert = detector.process(reading)
                status.update(reading)
                if alert:
                    alerts += 1
                    alert_producer.send(alert_topic, key=alert.box_id, value=alert)
                meter.observe(record)
    producer.join(timeout=60)
    alert_producer.flush(timeout=30)
    alert_producer.close(timeout=10)
    consumer.close()
    return {
        "rate_per_s": rate,
        "fetch_max_wait_ms": fetch_max_wait_ms,
        "sent": count,
        "received": meter.count,
        "alerts": alerts,
        "p50_ms": meter.quantile(0.5),
        "p99_ms": meter.quantile(0.99),
        "max_ms": meter.quantile(1.0),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send at each rate")
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=latency.FETCH_MAX_WAIT_MS,
        help="the consumer's fetch wait to measure (default: step 3's)",
    )
    args = parser.parse_args()

    runs = [(rate, args.fetch_max_wait_ms) for rate in RATES] + [(RATES[-1], KAFKA_DEFAULT_FETCH_MAX_WAIT_MS)]
    with contextlib.ExitStack() as stack:
        bootstrap, broker = broker_to_measure(stack)
        results = [measure(bootstrap, rate, args.seconds, wait) for rate, wait in runs]
    print(
        f"Send-to-alert latency on {broker}, replay at a fixed rate for {args.seconds:g} s, 3 partitions, "
        f"producer linger_ms={sending.LINGER_MS}"
    )
    header = ("rate/s", "fetch wait", "sent", "received", "p50 ms", "p99 ms", "max ms", "load")
    print("".join(f"{name:>{width}}" for name, width in zip(header, (8, 12, 8, 10, 8, 8, 8, 6), strict=True)))
    for r in results:
        print(
            f"{r['rate_per_s']:>8}{r['fetch_max_wait_ms']:>9} ms{r['sent']:>8}{r['received']:>10}"
            f"{r['p50_ms']:>8.0f}{r['p99_ms']:>8.0f}{r['max_ms']:>8.0f}{r['load_average_1min']:>6.1f}"
        )
    top = results[len(RATES) - 1]
    met = top["received"] == top["sent"] and top["p50_ms"] < TARGET_P50_MS and top["p99_ms"] < TARGET_P99_MS
    print(
        f"at {top['rate_per_s']:,}/s: p50 {top['p50_ms']:.0f} ms (target < {TARGET_P50_MS:g}), p99 "
        f"{top['p99_ms']:.0f} ms (target < {TARGET_P99_MS:g}): " + ("met" if met else "NOT met")
    )
    figures = {
        "broker": broker,
        "readings": streams.describe(),
        "seconds_per_rate": args.seconds,
        "linger_ms": sending.LINGER_MS,
        "fetch_max_wait_ms": args.fetch_max_wait_ms,
        "results": results,
        "targets": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS},
        "targets_met": met,
    }
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
