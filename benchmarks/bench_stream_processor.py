"""How many readings per second does step 4's Quix Streams pipeline process?

Run from the repository root:  .venv/bin/python benchmarks/bench_stream_processor.py [--readings N] [--json PATH]

It fills a 3-partition readings topic on an embedded broker (or KAFKA_BOOTSTRAP_SERVERS) with N readings at the
raw rate of the Berlin recording (48 boxes, one reading per box every 2 minutes), then runs one instance of the
pipeline in this process and times it from its first reading to its last (the group join and the idle wait at
the end are not counted).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from figures import write_figures  # benchmarks/figures.py, next to this script
from kafka import KafkaAdminClient, KafkaProducer

from pm25.brokers.embedded import EmbeddedBroker
from pm25.config import Settings
from pm25.data.contract import Reading, encode
from pm25.streaming.stream_processor import DailyMeanRule, ReadingGate, build_application, prepare_readings_topic

BOXES, EVERY = 48, timedelta(minutes=2)
START = datetime(2023, 2, 26, tzinfo=UTC)


def raw_rate_messages(count: int, seed: int = 2023):
    """(key, value) pairs: BOXES boxes, one reading each every EVERY, values with a daily cycle and noise."""
    rng = random.Random(seed)
    levels = [rng.uniform(5.0, 25.0) for _ in range(BOXES)]
    for index in range(count):
        step, box = divmod(index, BOXES)
        moment = START + step * EVERY
        value = max(0.0, levels[box] + 6 * math.sin(2 * math.pi * moment.hour / 24 + box) + rng.gauss(0, 4))
        reading = Reading(f"{box:024x}", f"Box {box}", f"{box + 1000:024x}", 52.5, 13.4, moment, round(value, 2))
        yield reading.key.encode(), encode(reading)


class TimedGate(ReadingGate):
    """The pipeline's gate, noting when the first and the last reading passed it."""

    first = last = None

    def __call__(self, value, key, timestamp, headers, state):
        self.last = time.perf_counter()
        self.first = self.first or self.last
        return super().__call__(value, key, timestamp, headers, state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args()

    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack.enter_context(EmbeddedBroker()).bootstrap_servers
        topic = f"bench_quix_{uuid.uuid4().hex[:8]}"
        with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
            admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
        began = time.perf_counter()
        with KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20) as producer:
            for key, value in raw_rate_messages(args.readings):
                producer.send(topic, key=key, value=value)
            producer.flush()
        print(f"Produced {args.readings:,} readings in {time.perf_counter() - began:.1f} s")

        settings = Settings(bootstrap_servers=bootstrap, topic=topic)
        prepare_readings_topic(settings.kafka_options(), topic)
        state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-quix-"))
        gate = TimedGate()
        app, _ = build_application(
            settings, f"{topic}_group", Path(state_dir), f"{topic}_alerts", DailyMeanRule(), gate=gate
        )
        app.run(timeout=10, collect=False)

    seconds = gate.last - gate.first
    processed = sum(gate.counts.values())
    figures = {
        "step4_readings": processed,
        "step4_seconds": round(seconds, 1),
        "step4_readings_per_s": round(processed / seconds),
    }
    print(
        f"Step 4 (Quix Streams, one instance): {processed:,} readings in {seconds:.1f} s = "
        f"{processed / seconds:,.0f} readings/s"
    )
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
