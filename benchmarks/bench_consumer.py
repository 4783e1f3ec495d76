"""Step 3's whole per-message work on a long topic: messages per second, memory, and CPU when the topic is idle.

Run from the repository root:  .venv/bin/python benchmarks/bench_consumer.py [--json PATH] [--messages N]

It starts an embedded broker (or uses KAFKA_BOOTSTRAP_SERVERS), fills a 3-partition topic with 1,000,000 raw-rate
readings (benchmarks/streams.py; the Berlin recording when present), then, each in a fresh subprocess:
- reads the first 100,000 and then all 1,000,000 the way step 3's loop does: a consumer in a group with step 3's
  settings (fetch_max_wait_ms from pm25.streaming.latency), poll, decode against the contract, Detector.process,
  StatusTracker.update, publish each alert, and after each batch flush the alerts and commit the offsets.
  Messages per second count from the first message to the last (joining the group is not per-message work);
  memory is the peak RSS above the RSS before the first poll, so the interpreter and libraries are not counted;
- sits idle on an empty topic for a few seconds, polling as step 3 does until its idle timer ends, once with
  pm25.streaming.latency.FETCH_MAX_WAIT_MS and once with Kafka's default 500 ms: its CPU in % of one core.
--idle-only measures only the latter (run_all.py on real Kafka, where filling a million readings adds minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import streams  # benchmarks/streams.py, next to this script
from brokers import broker_to_measure  # benchmarks/brokers.py, next to this script
from figures import write_figures  # benchmarks/figures.py, next to this script
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from pm25.data import contract
from pm25.rules.detector import Detector
from pm25.rules.status import StatusTracker
from pm25.streaming import codec, latency

SIZES = (100_000, 1_000_000)
IDLE_SECONDS = 10.0
KAFKA_DEFAULT_FETCH_MAX_WAIT_MS = 500
TARGET_PER_S = 20_000
TARGET_GROWTH_RATIO = 1.25  # flat: ten times the messages may cost at most 25 % more memory
TARGET_IDLE_CPU_PERCENT = 5.0


def rss_now_kib() -> int:
    """Resident set size now, from /proc (ru_maxrss only knows the peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


def step_3_consumer(bootstrap: str, topic: str, fetch_max_wait_ms: int) -> KafkaConsumer:
    """Step 3's consumer: a fresh group, manual commits, from the earliest offset, prompt fetches."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=f"bench-consumer-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    consumer.subscribe([topic])
    return consumer


def consume(bootstrap: str, topic: str, alert_topic: str, count: int) -> dict:
    """Step 3's loop on the first `count` messages of the topic."""
    consumer = step_3_consumer(bootstrap, topic, latency.FETCH_MAX_WAIT_MS)
    alert_producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        key_serializer=contract.KeySerializer(),
        value_serializer=codec.AlertSerializer(),
        acks="all",
    )
    detector, status = Detector(), StatusTracker(active_hours=24)
    baseline = rss_now_kib()
    seen = alerts = rejected = 0
    started = None
    deadline = time.monotonic() + 1800
    while seen < count and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=1000)
        started = started or (time.perf_counter() if batch else None)
        for records in batch.values():
            for record in records[: count - seen]:
                seen += 1
                try:
                    reading = contract.decode(record.value)
                except contract.InvalidMessage:
                    rejected += 1
                    continue
                alert = detector.process(reading)
                status.update(reading)
                if alert:
                    alerts += 1
                    alert_producer.send(alert_topic, key=alert.box_id, value=alert)
        if batch:
            alert_producer.flush(timeout=30)  # alerts first, then the offsets: at-least-once, as in step 3
            consumer.commit()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    alert_producer.close(timeout=10)
    consumer.close()
    return {
        "messages": seen,
        "seconds": round(seconds, 2),
        "per_s": round(seen / seconds),
        "alerts": alerts,
        "rejected": rejected,
        "boxes": len(detector.box_ids()),
        "baseline_rss_kib": baseline,
        "peak_rss_kib": peak,
        "growth_kib": peak - baseline,
    }


def idle(bootstrap: str, topic: str, fetch_max_wait_ms: int, seconds: float) -> dict:
    """CPU of step 3's poll loop on a topic where nothing arrives."""
    consumer = step_3_consumer(bootstrap, topic, fetch_max_wait_ms)
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)  # joining the group is not idling
    wall, cpu = time.monotonic(), time.process_time()
    polls = 0
    while time.monotonic() - wall < seconds:
        consumer.poll(timeout_ms=1000)
        polls += 1
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    consumer.close()
    return {
        "fetch_max_wait_ms": fetch_max_wait_ms,
        "seconds": round(wall, 1),
        "polls": polls,
        "cpu_percent_of_one_core": round(100 * cpu / wall, 2),
    }


def fill(bootstrap: str, topic: str, count: int) -> float:
    """Send `count` readings as fast as the client goes (bytes, big batches); returns the seconds it took."""
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=100, batch_size=1024 * 1024)
    started = time.perf_counter()
    for reading in streams.raw_readings(count):
        producer.send(topic, key=reading.key.encode(), value=contract.encode(reading))
    producer.flush(timeout=600)
    producer.close(timeout=10)
    return time.perf_counter() - started


def in_child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, timeout=2400)
    if done.returncode:
        raise RuntimeError(f"child {args} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--messages", type=int, default=SIZES[-1], help="messages in the long run")
    parser.add_argument("--idle-only", action="store_true", help="only the idle consumer's CPU")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, bootstrap, topic, *rest = args.child
        if kind == "consume":
            print(json.dumps(consume(bootstrap, topic, rest[0], int(rest[1]))))
        else:
            print(json.dumps(idle(bootstrap, topic, int(rest[0]), float(rest[1]))))
        return 0

    sizes = (args.messages // 10, args.messages)
    with contextlib.ExitStack() as stack:
        bootstrap, broker = broker_to_measure(stack)
        run_id = uuid.uuid4().hex[:8]
        topic, alert_topic, empty = (f"bench_consumer_{name}_{run_id}" for name in ("readings", "alerts", "idle"))
        with KafkaAdminClient(bootstrap_servers=bootstrap.split(",")) as admin:
            admin.create_topics(
                {name: {"num_partitions": 3, "replication_factor": 1} for name in (topic, alert_topic, empty)}
            )
        print(
            f"Broker: {broker}; filling a topic with {args.messages:,} readings from {streams.describe()}; "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs.",
            flush=True,
        )
        fill_s = 0.0 if args.idle_only else fill(bootstrap, topic, args.messages)
        runs = []
        for size in () if args.idle_only else sizes:
            runs.append(in_child("consume", bootstrap, topic, alert_topic, str(size)))
            print(
                f"  {size:>9,} messages: {runs[-1]['per_s']:>7,} msg/s, memory growth "
                f"{runs[-1]['growth_kib'] / 1024:.1f} MiB; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        idles = []
        for wait_ms in (latency.FETCH_MAX_WAIT_MS, KAFKA_DEFAULT_FETCH_MAX_WAIT_MS):
            idles.append(in_child("idle", bootstrap, empty, str(wait_ms), str(IDLE_SECONDS)))

    if args.idle_only:
        for one in idles:
            print(
                f"idle, fetch_max_wait_ms={one['fetch_max_wait_ms']:>3}: {one['cpu_percent_of_one_core']:.1f} % "
                f"of one core ({one['polls']} polls in {one['seconds']} s)"
            )
        write_figures(args.json, {"broker": broker, "idle": idles, "load_average_1min": os.getloadavg()[0]})
        return 0
    small, large = runs
    ratio = large["growth_kib"] / max(small["growth_kib"], 1)
    idle_cpu = idles[0]["cpu_percent_of_one_core"]
    met = {
        "per_s": large["per_s"] >= TARGET_PER_S,
        "memory_flat": ratio <= TARGET_GROWTH_RATIO,
        "idle_cpu": idle_cpu < TARGET_IDLE_CPU_PERCENT,
        "all_read": all(run["messages"] == size for run, size in zip(runs, sizes, strict=True)),
    }
    print(f"\nStep 3's loop (poll, decode, Detector, StatusTracker, alerts, commit); topic filled in {fill_s:.0f} s")
    print(f"{'messages':>10}{'msg/s':>9}{'seconds':>9}{'alerts':>8}{'base MiB':>10}{'peak MiB':>10}{'growth MiB':>12}")
    for run in runs:
        print(
            f"{run['messages']:>10,}{run['per_s']:>9,}{run['seconds']:>9.1f}{run['alerts']:>8}"
            f"{run['baseline_rss_kib'] / 1024:>10.1f}{run['peak_rss_kib'] / 1024:>10.1f}"
            f"{run['growth_kib'] / 1024:>12.1f}"
        )
    print(
        f"msg/s at {large['messages']:,}: {large['per_s']:,} (target >= {TARGET_PER_S:,}); "
        f"growth ratio {ratio:.2f} (target <= {TARGET_GROWTH_RATIO})"
    )
    for one in idles:
        print(
            f"idle, fetch_max_wait_ms={one['fetch_max_wait_ms']:>3}: {one['cpu_percent_of_one_core']:.1f} % "
            f"of one core ({one['polls']} polls in {one['seconds']} s)"
        )
    print("targets: " + ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in met.items()))
    figures = {
        "broker": broker,
        "readings": streams.describe(),
        "fill_seconds": round(fill_s, 1),
        "fetch_max_wait_ms": latency.FETCH_MAX_WAIT_MS,
        "runs": runs,
        "growth_ratio": round(ratio, 3),
        "idle": idles,
        "load_average_1min": os.getloadavg()[0],
        "targets": {
            "per_s": TARGET_PER_S,
            "growth_ratio": TARGET_GROWTH_RATIO,
            "idle_cpu_percent": TARGET_IDLE_CPU_PERCENT,
        },
        "met": met,
        "targets_met": all(met.values()),
    }
    write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
