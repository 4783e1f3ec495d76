"""How fast does step 2's bulk producer fill the topic, and how much does batching buy over flushing every message?

Run from the repository root:  .venv/bin/python benchmarks/bench_producer.py [--json PATH] [--messages N]

It starts an embedded broker (or uses KAFKA_BOOTSTRAP_SERVERS), creates a 3-partition topic and sends
100,000 synthetic Readings (hourly, from a few hundred boxes) the notebook's way: acks="all", idempotence,
linger_ms=20, the contract's serializers, a DeliveryReport callback per message and one flush at the end.
In the same run it sends 2,000 messages with a flush after every one (the way the notebook warns against)
and extrapolates that rate. Every message must be acknowledged, or the figures are not reported as met.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from figures import write_figures  # benchmarks/figures.py, next to this script
from kafka import KafkaAdminClient, KafkaProducer
from kafka import __version__ as kafka_python_version
from kafka.partitioner.default import murmur2
from kafka.record.util import calc_crc32c, crc32c_c

from pm25 import contract, producing, topics  # from src/ (see the path above), not installed
from pm25.broker import EmbeddedBroker

BOXES = 300
START = datetime(2024, 1, 15, tzinfo=UTC)
BULK_MESSAGES = 100_000
FLUSH_EACH_MESSAGES = 2_000
TARGET_BULK_PER_S = 20_000
TARGET_RATIO = 30

# Exactly the producer settings of step_2_producer.ipynb (bootstrap servers aside).
NOTEBOOK_SETTINGS = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 20,
    "bootstrap_timeout_ms": 10_000,
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 30_000,
}


def synthetic_readings(count: int, seed: int = 2024) -> list[contract.Reading]:
    """Hourly readings, box after box within each hour, from BOXES boxes around Münster."""
    rng = random.Random(seed)
    boxes = [
        (
            f"{index:024x}",
            f"Box {index} Münster",
            f"{index + 10**6:024x}",
            rng.uniform(51.9, 52.0),
            rng.uniform(7.5, 7.7),
        )
        for index in range(BOXES)
    ]
    readings = []
    for index in range(count):
        hour, box = divmod(index, BOXES)
        box_id, name, sensor_id, lat, lon = boxes[box]
        value = round(max(0.0, rng.gauss(12.0, 6.0)), 2)
        readings.append(contract.Reading(box_id, name, sensor_id, lat, lon, START + timedelta(hours=hour), value))
    return readings


def make_producer(bootstrap_servers: str, **overrides) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","),
        key_serializer=contract.KeySerializer(),
        value_serializer=contract.ReadingSerializer(),
        **NOTEBOOK_SETTINGS | overrides,
    )


def warm_up(producer: KafkaProducer, topic: str) -> None:
    """Connect and fetch the topic's metadata before the clock starts: the learner's producer cell does this."""
    producer.partitions_for(topic)


def run_bulk(bootstrap_servers: str, topic: str, readings: list[contract.Reading], **overrides) -> dict:
    """The notebook's loop: send everything with a DeliveryReport callback each, then one flush."""
    producer = make_producer(bootstrap_servers, **overrides)
    warm_up(producer, topic)
    report = producing.DeliveryReport(show_first=0)
    started, cpu_started = time.perf_counter(), time.process_time()
    for reading in readings:
        future = producer.send(topic, key=reading.key, value=reading)
        report.track(future, reading)
    sent_s = time.perf_counter() - started
    producer.flush(timeout=120)
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    producer.close(timeout=10)
    return {
        "messages": len(readings),
        "seconds": elapsed,
        "send_loop_seconds": sent_s,
        "per_s": len(readings) / elapsed,
        # CPU of this process (main and sender thread); they share the GIL, so this bounds the rate.
        "cpu_us_per_message": cpu_s / len(readings) * 1e6,
        "acknowledged": report.acknowledged,
        "failed": report.failed,
    }


def run_flush_each(bootstrap_servers: str, topic: str, readings: list[contract.Reading]) -> dict:
    """The slow way: wait for the broker after every message (send, then flush)."""
    producer = make_producer(bootstrap_servers)
    warm_up(producer, topic)
    report = producing.DeliveryReport(show_first=0)
    started = time.perf_counter()
    for reading in readings:
        report.track(producer.send(topic, key=reading.key, value=reading), reading)
        producer.flush(timeout=30)
    elapsed = time.perf_counter() - started
    producer.close(timeout=10)
    return {
        "messages": len(readings),
        "seconds": elapsed,
        "per_s": len(readings) / elapsed,
        "acknowledged": report.acknowledged,
        "failed": report.failed,
    }


def per_message_costs(readings: list[contract.Reading]) -> dict:
    """CPU µs per message of the parts of a send that are pure Python, each timed alone.

    serializers: the contract's key and value serializers. partitioner: kafka-python's murmur2 of the key.
    crc32c: the checksum the sender computes over every record batch, pro rata per message; kafka-python
    uses a pure-Python crc32c unless the optional `crc32c` package (a C extension) is installed.
    """
    values, keys = contract.ReadingSerializer(), contract.KeySerializer()
    started = time.process_time()
    encoded = [(keys.serialize("t", None, r.key), values.serialize("t", None, r)) for r in readings]
    serializers = time.process_time() - started
    started = time.process_time()
    for key, _ in encoded:
        murmur2(key)
    partitioner = time.process_time() - started
    batch = b"".join(value for _, value in encoded)
    started = time.process_time()
    calc_crc32c(memoryview(batch))
    crc = time.process_time() - started
    count = len(readings)
    return {
        "messages": count,
        "value_bytes_mean": len(batch) / count,
        "serializers_us": serializers / count * 1e6,
        "partitioner_us": partitioner / count * 1e6,
        "crc32c_us": crc / count * 1e6,
        "crc32c_implementation": "C (crc32c package)" if crc32c_c is not None else "pure Python",
    }


def create_topic(bootstrap_servers: str, name: str) -> None:
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), bootstrap_timeout_ms=10_000) as admin:
        topics.ensure_topic(admin, name, partitions=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--messages", type=int, default=BULK_MESSAGES, help="messages for the bulk run")
    parser.add_argument("--flush-each", type=int, default=FLUSH_EACH_MESSAGES, help="messages for the slow run")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="also run bulk with this batch_size (bytes), for comparison"
    )
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)

    readings = synthetic_readings(args.messages)
    with contextlib.ExitStack() as stack:
        bootstrap_servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        broker = "KAFKA_BOOTSTRAP_SERVERS"
        if not bootstrap_servers:
            bootstrap_servers = stack.enter_context(EmbeddedBroker()).bootstrap_servers
            broker = "embedded Tansu broker (in memory)"
        run_id = uuid.uuid4().hex[:8]
        topics = {name: f"bench_producer_{name}_{run_id}" for name in ("bulk", "flush_each", "batch")}
        for name in topics.values():
            create_topic(bootstrap_servers, name)
        print(f"Broker: {broker} at {bootstrap_servers}; {args.messages:,} readings from {BOXES} boxes.", flush=True)
        bulk = run_bulk(bootstrap_servers, topics["bulk"], readings)
        flush_each = run_flush_each(bootstrap_servers, topics["flush_each"], readings[: args.flush_each])
        batch = None
        if args.batch_size:
            batch = run_bulk(bootstrap_servers, topics["batch"], readings, batch_size=args.batch_size)
    costs = per_message_costs(readings[:20_000])

    ratio = bulk["per_s"] / flush_each["per_s"]
    all_acknowledged = all(run["acknowledged"] == run["messages"] for run in (bulk, flush_each))
    rows = [
        ("bulk (notebook: linger_ms=20, one flush)", f"{bulk['per_s']:,.0f} msg/s", f">= {TARGET_BULK_PER_S:,} msg/s",
         bulk["per_s"] >= TARGET_BULK_PER_S),
        (f"flush after every message ({flush_each['messages']:,} msgs)", f"{flush_each['per_s']:,.0f} msg/s", "", None),
        ("bulk / flush-every-message", f"{ratio:,.1f}x", f">= {TARGET_RATIO}x", ratio >= TARGET_RATIO),
        ("every message acknowledged", "yes" if all_acknowledged else "NO", "yes", all_acknowledged),
    ]  # fmt: skip
    extrapolated_s = args.messages / flush_each["per_s"]
    print(f"\n{'measure':48} {'result':>16}  {'target':>16}  met")
    for name, result, target, met in rows:
        print(f"{name:48} {result:>16}  {target:>16}  {'' if met is None else 'yes' if met else 'NO'}")
    print(
        f"\nbulk: {bulk['messages']:,} messages in {bulk['seconds']:.2f} s "
        f"(send loop {bulk['send_loop_seconds']:.2f} s)"
        f"; flushing every message would take ~{extrapolated_s:,.0f} s for the same {args.messages:,}."
    )
    print(
        f"CPU per message in the bulk run: {bulk['cpu_us_per_message']:.0f} µs (both threads; they share the GIL), "
        f"of which, timed alone: serializers {costs['serializers_us']:.0f} µs, "
        f"partitioner {costs['partitioner_us']:.0f} µs, crc32c {costs['crc32c_us']:.0f} µs "
        f"({costs['crc32c_implementation']}); {costs['value_bytes_mean']:.0f} bytes per value."
    )
    if batch:
        print(f"bulk with batch_size={args.batch_size}: {batch['per_s']:,.0f} msg/s")

    figures = {
        "benchmark": "producer",
        "python": platform.python_version(),
        "kafka_python": kafka_python_version,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # other work on the machine slows both runs
        "broker": broker,
        "boxes": BOXES,
        "producer_settings": NOTEBOOK_SETTINGS,
        "bulk": bulk,
        "flush_each": flush_each | {"extrapolated_seconds_for_bulk_count": extrapolated_s},
        "ratio": ratio,
        "per_message_costs": costs,
        "targets": {"bulk_per_s": TARGET_BULK_PER_S, "ratio": TARGET_RATIO},
        "met": {
            "bulk_per_s": bulk["per_s"] >= TARGET_BULK_PER_S,
            "ratio": ratio >= TARGET_RATIO,
            "all_acknowledged": all_acknowledged,
        },
    }
    figures["targets_met"] = all(figures["met"].values())
    if batch:
        figures["bulk_with_batch_size"] = batch | {"batch_size": args.batch_size}
    write_figures(args.json, figures)
    return 1 if args.strict and not figures["targets_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
