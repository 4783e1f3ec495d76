"""End-to-end latency in replay mode: from a reading's send to the end of step 3's per-message work.

Run from the repository root:  .venv/bin/python benchmarks/bench_latency.py [--json PATH] [--seconds S]

A producer process (step 2's settings: acks="all", idempotence, linger_ms=20, the contract's serializers)
sends readings at a fixed rate, 100 and then 1,000 readings/s, each with its send time (time.time_ns) in a
Kafka header `sent_ns`. A consumer in this process does per message what step 3's loop does: decode against
the contract, Detector.process, StatusTracker.update, publish an alert when there is one. The latency of a
reading is the wall-clock time from just before producer.send() to the end of that work; both processes run
on this machine, so they share the clock. It starts an embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from figures import write_figures  # benchmarks/figures.py, next to this script
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pm25 import consuming, contract  # from src/ (see the path above), not installed
from pm25.broker import EmbeddedBroker
from pm25.detector import Detector
from pm25.status import StatusTracker

BOXES = 100
RATES = (100, 1_000)
TARGET_P99_MS = 500.0
START = datetime(2024, 1, 15, tzinfo=UTC)
SENSOR = "0" * 24


def readings(count: int) -> list[contract.Reading]:
    """Hourly readings from BOXES boxes, box after box within each hour; some boxes cross 15 µg/m³."""
    return [
        contract.Reading(f"{box:024x}", f"Box {box}", SENSOR, 51.96, 7.62, START + timedelta(hours=hour),
                         5.0 + (box % 7) * 3.0 + (hour % 24))
        for hour, box in (divmod(index, BOXES) for index in range(count))
    ]  # fmt: skip


def produce(bootstrap: str, topic: str, rate: int, count: int, ready) -> None:
    """Send `count` readings at `rate` per second: reading i is due at start + i / rate (no drift)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, key_serializer=contract.KeySerializer(),
        value_serializer=contract.ReadingSerializer(), acks="all", enable_idempotence=True, linger_ms=20,
    )  # fmt: skip
    batch = readings(count)
    ready.wait()
    started = time.monotonic()
    for index, reading in enumerate(batch):
        pause = started + index / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing at the fixed rate, as producing.paced does; not synchronisation
        headers = [("sent_ns", str(time.time_ns()).encode())]
        producer.send(topic, key=reading.key, value=reading, headers=headers)
    producer.flush(timeout=60)
    producer.close(timeout=10)


def measure(bootstrap: str, rate: int, seconds: float) -> dict:
    topic, alert_topic = f"bench_latency_{uuid.uuid4().hex[:8]}", f"bench_alerts_{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1},
                             alert_topic: {"num_partitions": 3, "replication_factor": 1}})  # fmt: skip
    count = int(rate * seconds)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    partitions = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    alert_producer = KafkaProducer(
        bootstrap_servers=bootstrap, key_serializer=contract.KeySerializer(),
        value_serializer=consuming.AlertSerializer(), acks="all",
    )  # fmt: skip
    detector, status = Detector(), StatusTracker(active_hours=24)
    latencies_ms: list[float] = []
    alerts = 0

    ready = multiprocessing.get_context("spawn").Event()
    producer = multiprocessing.get_context("spawn").Process(target=produce, args=(bootstrap, topic, rate, count, ready))
    producer.start()
    consumer.poll(timeout_ms=100)  # connect and fetch metadata before the clock matters
    ready.set()
    deadline = time.monotonic() + seconds + 60
    while len(latencies_ms) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                reading = contract.decode(record.value)
                alert = detector.process(reading)
                status.update(reading)
                if alert:
                    alerts += 1
                    alert_producer.send(alert_topic, key=alert.box_id, value=alert)
                sent_ns = int(dict(record.headers)["sent_ns"])
                latencies_ms.append((time.time_ns() - sent_ns) / 1e6)
    producer.join(timeout=60)
    alert_producer.flush(timeout=30)
    alert_producer.close(timeout=10)
    consumer.close()
    received = len(latencies_ms)
    latencies_ms.sort()
    quantile = statistics.quantiles(latencies_ms, n=100, method="inclusive") if received > 1 else [float("nan")] * 99
    return {
        "rate_per_s": rate,
        "sent": count,
        "received": received,
        "alerts": alerts,
        "p50_ms": round(quantile[49], 2),
        "p99_ms": round(quantile[98], 2),
        "max_ms": round(latencies_ms[-1], 2) if latencies_ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send at each rate")
    args = parser.parse_args()

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if bootstrap else EmbeddedBroker().start()
    try:
        results = [measure(bootstrap or broker.bootstrap_servers, rate, args.seconds) for rate in RATES]
    finally:
        if broker:
            broker.stop()
    print(f"End-to-end latency, replay at a fixed rate for {args.seconds:g} s ({BOXES} boxes, 3 partitions)")
    print(f"{'rate/s':>8}{'sent':>8}{'received':>10}{'alerts':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for r in results:
        print(
            f"{r['rate_per_s']:>8}{r['sent']:>8}{r['received']:>10}{r['alerts']:>8}"
            f"{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['max_ms']:>10.1f}"
        )
    top = results[-1]
    met = top["received"] == top["sent"] and top["p99_ms"] < TARGET_P99_MS
    print(
        f"p99 at {top['rate_per_s']:,}/s: {top['p99_ms']:.1f} ms (target < {TARGET_P99_MS:g} ms): "
        + ("met" if met else "NOT met")
    )
    figures = {"boxes": BOXES, "seconds_per_rate": args.seconds, "results": results, "target_p99_ms": TARGET_P99_MS,
               "targets_met": met}  # fmt: skip
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
