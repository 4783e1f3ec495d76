"""How fast does step 2's producer fill the topic, next to the client's own ceiling on the same broker?

Run from the repository root:
    .venv/bin/python benchmarks/bench_producer.py [--json PATH] [--messages N] [--sweep]

It starts an embedded broker (or uses KAFKA_BOOTSTRAP_SERVERS), creates 3-partition topics and, in one run:
- ceiling: kafka-python with nothing of ours: pre-serialized key and value bytes, 1 MiB batches, no futures
  kept, no callbacks. The fastest this client goes on this broker and machine, with the same acks="all" and
  idempotence;
- bulk: step 2's send loop as the notebook runs it: its producer settings (pm25.streaming.sending), the contract's
  serializers, a DeliveryReport that keeps every future, Ctrl+C safety around each send, one flush at the end;
- flush after every message: the same producer and loop with a flush() after each send, the way the
  notebook warns against (the fair baseline: only the flush differs);
- with --sweep: bulk with every pair of linger_ms and batch_size below, to choose pm25.streaming.sending's values.
The readings are raw-rate readings (benchmarks/streams.py). Every message must be acknowledged.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import streams  # benchmarks/streams.py, next to this script
from brokers import broker_to_measure  # benchmarks/brokers.py, next to this script
from figures import write_figures  # benchmarks/figures.py, next to this script
from kafka import KafkaAdminClient, KafkaProducer
from kafka import __version__ as kafka_python_version

from pm25.data import contract
from pm25.streaming import delivery, interrupts, sending

BULK_MESSAGES = 100_000
FLUSH_EACH_MESSAGES = 2_000
SWEEP_MESSAGES = 30_000
SWEEP_LINGER_MS = (5, 20, 50)
SWEEP_BATCH_SIZES = (16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024)
CEILING_SETTINGS = {"linger_ms": 100, "batch_size": 1024 * 1024}
TARGET_BULK_PER_S = 30_000
TARGET_OF_CEILING = 0.70
TARGET_RATIO = 30


def make_producer(bootstrap_servers: str, **overrides) -> KafkaProducer:
    """Step 2's producer: its settings come from pm25.streaming.sending, as the notebook's do."""
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","),
        key_serializer=contract.KeySerializer(),
        value_serializer=contract.ReadingSerializer(),
        **sending.PRODUCER_SETTINGS | overrides,
    )


def run_send_loop(
    bootstrap_servers: str, topic: str, readings: list[contract.Reading], flush_each: bool = False, **overrides
) -> dict:
    """The notebook's send loop: a tracked future per message, Ctrl+C safety, one flush at the end. With
    flush_each, a flush() after every send too: one round trip per message, and the only difference."""
    producer = make_producer(bootstrap_servers, **overrides)
    producer.partitions_for(topic)  # connect and learn the partitions before the clock starts, as the notebook does
    report = delivery.DeliveryReport(show_first=0)
    started, cpu_started = time.perf_counter(), time.process_time()
    with interrupts.ctrl_c_between_sends() as held:
        for reading in readings:
            with held:
                report.track(producer.send(topic, key=reading.key, value=reading), reading)
            if flush_each:
                producer.flush(timeout=30)
    producer.flush(timeout=120)
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    producer.close(timeout=10)
    return _rate(len(readings), elapsed, report.acknowledged, cpu_s)


def run_ceiling(bootstrap_servers: str, topic: str, readings: list[contract.Reading]) -> dict:
    """kafka-python alone: bytes made before the clock starts, large batches, no futures kept, no callbacks."""
    encoded = [(reading.key.encode(), contract.encode(reading)) for reading in readings]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","), acks="all", enable_idempotence=True, **CEILING_SETTINGS
    )
    producer.partitions_for(topic)
    started, cpu_started = time.perf_counter(), time.process_time()
    for key, value in encoded:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=120)
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    metrics = producer.metrics()["producer-metrics"]
    producer.close(timeout=10)
    # No futures were kept, so the broker's answer is read from the client's own counters.
    acknowledged = len(encoded) if not metrics.get("record-error-total") else 0
    return _rate(len(encoded), elapsed, acknowledged, cpu_s)


def _rate(messages: int, seconds: float, acknowledged: int, cpu_s: float) -> dict:
    # CPU of this process (main and sender thread, which share the GIL): unlike msg/s, other work on the
    # machine hardly changes it, so it is what the sweep compares when the machine is busy.
    return {
        "messages": messages,
        "seconds": round(seconds, 3),
        "per_s": round(messages / seconds),
        "cpu_us_per_message": round(cpu_s / messages * 1e6, 1),
        "acknowledged": acknowledged,
    }


def best_of_runs(runs: list[dict]) -> dict:
    """The fastest run, with every rate seen: other work on a shared machine can only slow a run down.
    Its messages count as acknowledged only if every run's were."""
    best = max(runs, key=lambda one: one["per_s"])
    return best | {
        "runs_per_s": [one["per_s"] for one in runs],
        "acknowledged": best["acknowledged"] if all(r["acknowledged"] == r["messages"] for r in runs) else 0,
    }


class Topics:
    """A fresh 3-partition topic for every run, so no run reads or appends to another's."""

    def __init__(self, bootstrap_servers: str):
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), bootstrap_timeout_ms=10_000)
        self.run_id = uuid.uuid4().hex[:8]
        self.made = 0

    def fresh(self) -> str:
        self.made += 1
        name = f"bench_producer_{self.run_id}_{self.made}"
        self.admin.create_topics({name: {"num_partitions": 3, "replication_factor": 1}})
        return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--messages", type=int, default=BULK_MESSAGES, help="messages for the bulk and ceiling runs")
    parser.add_argument("--flush-each", type=int, default=FLUSH_EACH_MESSAGES, help="messages for the slow run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ceiling and bulk, the fastest counts")
    parser.add_argument("--sweep", action="store_true", help="also run bulk over linger_ms x batch_size")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)

    readings = list(streams.raw_readings(args.messages))
    with contextlib.ExitStack() as stack:
        bootstrap_servers, broker = broker_to_measure(stack)
        topics = Topics(bootstrap_servers)
        stack.callback(topics.admin.close)
        print(
            f"Broker: {broker} at {bootstrap_servers}; {args.messages:,} readings from {streams.describe()}; "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs.",
            flush=True,
        )
        ceilings, bulks = [], []
        for _ in range(args.repeat):  # alternately, so that a busy moment on the machine hits both alike
            ceilings.append(run_ceiling(bootstrap_servers, topics.fresh(), readings))
            bulks.append(run_send_loop(bootstrap_servers, topics.fresh(), readings))
        ceiling, bulk = best_of_runs(ceilings), best_of_runs(bulks)
        flush_each = run_send_loop(bootstrap_servers, topics.fresh(), readings[: args.flush_each], flush_each=True)
        sweep = []
        for linger, size in [(linger, size) for linger in SWEEP_LINGER_MS for size in SWEEP_BATCH_SIZES] * args.sweep:
            run = best_of_runs(
                [
                    run_send_loop(
                        bootstrap_servers, topics.fresh(), readings[:SWEEP_MESSAGES], linger_ms=linger, batch_size=size
                    )
                    for _ in range(2)
                ]
            )
            sweep.append(run | {"linger_ms": linger, "batch_size": size})
            print(
                f"  sweep linger_ms={linger:>3} batch_size={size // 1024:>5} KiB: {run['per_s']:>7,} msg/s "
                f"(best of {run['runs_per_s']}), {run['cpu_us_per_message']:>4.0f} µs CPU/msg, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )

    of_ceiling = bulk["per_s"] / ceiling["per_s"]
    ratio = bulk["per_s"] / flush_each["per_s"]
    all_acknowledged = all(run["acknowledged"] == run["messages"] for run in (ceiling, bulk, flush_each, *sweep))
    met = {
        "bulk_per_s": bulk["per_s"] >= TARGET_BULK_PER_S,
        "of_ceiling": of_ceiling >= TARGET_OF_CEILING,
        "ratio": ratio >= TARGET_RATIO,
        "all_acknowledged": all_acknowledged,
    }
    batching = f"linger_ms={sending.LINGER_MS}, batch_size={sending.BATCH_SIZE // 1024} KiB"
    rows = [
        ("ceiling (bytes, 1 MiB batches, no callbacks)", f"{ceiling['per_s']:,} msg/s", "", None),
        (
            f"bulk (step 2: {batching})",
            f"{bulk['per_s']:,} msg/s",
            f">= {TARGET_BULK_PER_S:,} msg/s",
            met["bulk_per_s"],
        ),
        ("bulk / ceiling", f"{of_ceiling:.0%}", f">= {TARGET_OF_CEILING:.0%}", met["of_ceiling"]),
        (f"flush after every message ({flush_each['messages']:,} msgs)", f"{flush_each['per_s']:,} msg/s", "", None),
        ("bulk / flush-every-message", f"{ratio:,.1f}x", f">= {TARGET_RATIO}x", met["ratio"]),
        ("every message acknowledged", "yes" if all_acknowledged else "NO", "yes", all_acknowledged),
    ]
    print(f"\n{'measure':52} {'result':>14}  {'target':>16}  met")
    for name, result, target, ok in rows:
        print(f"{name:52} {result:>14}  {target:>16}  {'' if ok is None else 'yes' if ok else 'NO'}")
    print(
        f"\nCPU per message (main and sender thread): ceiling {ceiling['cpu_us_per_message']:.0f} µs, "
        f"bulk {bulk['cpu_us_per_message']:.0f} µs; load average now {os.getloadavg()[0]:.2f}."
    )
    if sweep:
        best = max(sweep, key=lambda run: run["per_s"])
        print(f"Fastest in the sweep: linger_ms={best['linger_ms']}, batch_size={best['batch_size'] // 1024} KiB.")

    figures = {
        "benchmark": "producer",
        "python": platform.python_version(),
        "kafka_python": kafka_python_version,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # other work on the machine slows every run
        "broker": broker,
        "readings": streams.describe(),
        "producer_settings": sending.PRODUCER_SETTINGS,
        "ceiling": ceiling | {"settings": CEILING_SETTINGS},
        "bulk": bulk,
        "flush_each": flush_each,
        "bulk_of_ceiling": round(of_ceiling, 3),
        "ratio": round(ratio, 1),
        "sweep": sweep,
        "targets": {"bulk_per_s": TARGET_BULK_PER_S, "of_ceiling": TARGET_OF_CEILING, "ratio": TARGET_RATIO},
        "met": met,
        "targets_met": all(met.values()),
    }
    write_figures(args.json, figures)
    return 1 if args.strict and not figures["targets_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
