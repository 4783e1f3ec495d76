"""Step 3's rule on Quix Streams: a stream-processing library keeps the windows, not our code.

    python -m pm25.streaming.stream_processor --group NAME --state-dir DIR [--idle-timeout-s 10]

runs one instance of the application (the notebook starts two of them as processes, with
`pm25.streaming.quix_instances`). The rule is decision 2 of the tutorial, the one `pm25.rules.detector.Detector`
implements, in three steps:

1. `ReadingGate` (stateful filter): drop messages that break the contract (a key that is not the
   boxId included), saturated values, duplicates and late readings (not newer than the box's newest),
   and count each kind;
2. hourly means: a tumbling event-time window of one clock hour per box, emitted once, when it is
   final (`.final()`): when the box's first reading of a later hour closes it;
3. `DailyMeanRule` (stateful apply): on each final hourly mean, one decision on the `window_hours`
   clock hours before the hour of the reading that closed it, valid once at least `min_hours` have
   data, and the exceeded/resolved transitions. The alert's timestamp is that hour, the window's end.

`.current()` would emit the open hour's mean at every reading: a value that can still change, which
is what made decisions flap. Deciding on final values only is the same rule as Detector's.

Quix keeps the state of steps 1-3 in RocksDB and writes every change to a changelog topic; an
instance that takes over a partition restores that partition's state from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
import sys
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Literal

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

# quixstreams imports authlib's httpx client, which warns "The httpx module is deprecated": authlib's
# business, not the learner's, and a warning box in step 4's first cell. authlib forces its warnings to
# "always" when imported, so it is imported first and our filter, put in front of its, hides only this one.
with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=DeprecationWarning)
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Latest, Sum
    from quixstreams.kafka.configuration import ConnectionConfig
    from quixstreams.models.serializers import Deserializer
    from quixstreams.models.topics import TopicConfig

from pm25.config import Settings
from pm25.data.contract import SATURATED, InvalidMessage, decode, format_timestamp
from pm25.errors import LearnerError
from pm25.rules.detector import hundredths

EXCEEDED, RESOLVED = "exceeded", "resolved"
ALERT_FIELDS = ["boxId", "boxName", "event", "timestamp", "mean", "n_hours", "threshold", "window_hours"]
HOUR_MS = 3_600_000
# Kafka's own default (7 days). Quix copies the input topic's retention.ms to its changelog topics,
# and the embedded broker reports none unless a topic was given one.
DEFAULT_RETENTION_MS = str(7 * 24 * HOUR_MS)
ALERT_TOPIC_CONFIG = TopicConfig(num_partitions=1, replication_factor=1, extra_config={"retention.ms": "-1"})
NEWEST_MS = "newest_ms"  # state key: the event time of the box's newest accepted reading


class ReadingDeserializer(Deserializer):
    """A message value becomes a dict of what the rule needs, or {"rejected": reason}: never an exception,
    so one bad message cannot stop the application."""

    def __call__(self, value: bytes, ctx) -> dict:
        try:
            reading = decode(value)
        except InvalidMessage as error:
            return {"rejected": SATURATED if error.reason.startswith(SATURATED) else "invalid"}
        return {
            "boxId": reading.box_id,
            "boxName": reading.box_name,
            "time_ms": round(reading.timestamp.timestamp() * 1000),
            "hundredths": hundredths(reading.value),  # whole numbers: hourly sums stay exact
        }


def event_time(value: dict, headers, timestamp: int, timestamp_type) -> int:
    """Windows run on the reading's own time (event time), not on when Kafka received it."""
    return value.get("time_ms", timestamp)


class ReadingGate:
    """Stateful filter: True for a reading that enters its box's window; counts the ones that do not.

    Quix keeps state per message key, so a reading under another key than its boxId (or none) would
    get a window of its own: it is invalid, as in step 3. Keys arrive as bytes: a key that is not
    UTF-8 is just a wrong key, where a text key deserializer would stop the application."""

    def __init__(self):
        self.counts = Counter(processed=0, invalid=0, saturated=0, duplicates=0, late=0)

    def __call__(self, value: dict, key: bytes | None, timestamp: int, headers, state) -> bool:
        if "rejected" in value:
            self.counts["saturated" if value["rejected"] == SATURATED else "invalid"] += 1
            return False
        if key != value["boxId"].encode("utf-8"):
            self.counts["invalid"] += 1
            return False
        newest = state.get(NEWEST_MS)
        if newest is not None and value["time_ms"] <= newest:
            self.counts["duplicates" if value["time_ms"] == newest else "late"] += 1
            return False
        state.set(NEWEST_MS, value["time_ms"])
        self.counts["processed"] += 1
        return True


class DailyMeanRule:
    """Stateful apply on each final hourly mean: the 24-hour mean, its coverage and the box's state."""

    def __init__(self, threshold: float = 15.0, window_hours: int = 24, min_hours: int = 18):
        self.threshold, self.window_hours, self.min_hours = float(threshold), int(window_hours), int(min_hours)
        # The decimal the threshold is written as (15.1), not its binary float (15.0999...96), as in Detector.
        self._threshold_exact = Fraction(str(self.threshold))

    def __call__(self, hour: dict, state) -> dict | None:
        # The box's newest reading (ReadingGate keeps it in the same state) closed this hour: the window
        # decided on is the window_hours clock hours before that reading's hour H, which may be later than
        # the next hour when the box paused.
        end = state.get(NEWEST_MS) // HOUR_MS * HOUR_MS
        first = end - self.window_hours * HOUR_MS
        # [hour start, sum in hundredths, count] for the closed clock hours [H - window_hours, H).
        hours = {start: (total, count) for start, total, count in state.get("hours", [])}
        hours[hour["start"]] = (hour["total"], hour["count"])
        hours = {start: sums for start, sums in hours.items() if start >= first}
        state.set("hours", [[start, *sums] for start, sums in sorted(hours.items())])
        if len(hours) < self.min_hours:
            return None  # not enough data: no new decision, the state stays
        mean = math.fsum(total / count for total, count in hours.values()) / len(hours) / 100
        if abs(mean - self.threshold) < 1e-6:  # close to a tie: decide on the exact fractions, as Detector does
            exact = sum(Fraction(total, count) for total, count in hours.values()) / len(hours) / 100
            above = exact > self._threshold_exact
        else:
            above = mean > self.threshold
        if above == state.get("exceeded", False):
            return None
        state.set("exceeded", above)
        return {
            "boxId": hour["boxId"],
            "boxName": hour["boxName"],
            "event": EXCEEDED if above else RESOLVED,
            "timestamp": format_timestamp(datetime.fromtimestamp(end / 1000, UTC)),
            "mean": mean,
            "n_hours": len(hours),
            "threshold": self.threshold,
            "window_hours": self.window_hours,
        }


def prepare_readings_topic(kafka_options: dict, topic: str) -> str:
    """Check that step 2 created the readings topic; give it an explicit retention.ms if it has none."""
    with KafkaAdminClient(**kafka_options) as admin:
        if topic not in admin.list_topics():
            raise LearnerError(f"The readings topic {topic!r} does not exist yet: run step 2 first.")
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        configs = admin.describe_configs([resource], config_filter="all")["topic"][topic]
        if "retention.ms" in configs:
            return f"Topic {topic!r} keeps messages for retention.ms={configs['retention.ms']['value']}."
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": DEFAULT_RETENTION_MS})
        admin.alter_configs([resource], raise_on_unknown=False)
    return f"Topic {topic!r} had no retention.ms (embedded broker): set to {DEFAULT_RETENTION_MS} ms (7 days)."


def build_application(
    settings: Settings,
    group: str,
    state_dir: Path,
    alert_topic: str,
    rule: DailyMeanRule,
    exactly_once: bool = False,
    loglevel: Literal["WARNING", "INFO"] = "WARNING",
    gate: ReadingGate | None = None,
) -> tuple[Application, ReadingGate]:
    """The Quix application and its pipeline: readings topic in, alerts topic out; the gate holds the counts."""
    # pm25.config accepts only the protocols and mechanisms Quix names; pydantic makes the password a SecretStr.
    connection = ConnectionConfig(
        bootstrap_servers=settings.bootstrap_servers,
        security_protocol=settings.security_protocol.lower(),  # type: ignore[arg-type]
        sasl_mechanism=settings.sasl_mechanism,  # type: ignore[arg-type]
        sasl_username=settings.sasl_username,
        sasl_password=settings.sasl_password,  # type: ignore[arg-type]
    )
    app = Application(
        broker_address=connection,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        # Short session: a killed instance's partitions move to the survivor within seconds.
        consumer_extra_config={"session.timeout.ms": 6000},
        # The embedded broker reports a partition's end (high watermark) as the first offset of its last
        # batch + 1. Recovery reads a changelog up to that end, so with batches of several records it would
        # stop short and fail. One record per batch keeps the end exact; Kafka itself does not need it.
        producer_extra_config={"batch.num.messages": 1},
        # Transactions (exactly-once) need a real Kafka; the embedded broker has none.
        processing_guarantee="exactly-once" if exactly_once else "at-least-once",
        commit_interval=1.0,
        loglevel=loglevel,
    )
    # Keys as bytes: the gate checks them against the boxId; the alerts keep them.
    readings = app.topic(
        settings.topic,
        key_deserializer="bytes",
        value_deserializer=ReadingDeserializer(),
        timestamp_extractor=event_time,
    )
    # The alerts carry their window's event time as record timestamp, days old on a recording: a broker's
    # time-based retention would delete them at its next check (5 minutes on Kafka). So they are kept.
    alerts = app.topic(alert_topic, key_serializer="bytes", value_serializer="json", config=ALERT_TOPIC_CONFIG)
    gate = gate or ReadingGate()

    sdf = app.dataframe(readings)
    sdf = sdf.filter(gate, stateful=True, metadata=True)
    hourly = (
        sdf.tumbling_window(timedelta(hours=1))
        .agg(
            total=Sum("hundredths"),
            count=Count(),
            boxId=Latest("boxId"),
            boxName=Latest("boxName"),
        )
        .final(closing_strategy="key")  # a box's own readings close its hours, as in Detector
    )
    hourly.apply(rule, stateful=True).filter(lambda alert: alert is not None).to_topic(alerts)
    return app, gate


@contextmanager
def signal_handlers_restored():
    """Around app.run() in a notebook: Quix installs its own SIGINT (Ctrl+C, Jupyter's ■) and SIGTERM handlers,
    which stop it gracefully, and leaves them behind. Without this, a later ■ would only stop the application
    that already ended, and the cell it was meant for would go on."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


# How Quix names what it restored: <RecoveryPartition "changelog__<group>--<topic>--<store>[<partition>]">
RESTORED = re.compile(r'"(?P<changelog>changelog__.+)\[(?P<partition>\d+)\]"')


def changelog_store(changelog: str) -> str:
    """The state store a changelog topic keeps: Quix names it changelog__<group>--<input topic>--<store>."""
    return changelog.rsplit("--", 1)[-1]


class RecoveryTimer(logging.Handler):
    """Reports which partitions' state Quix restored from the changelog, and how long it took
    (Quix logs the start, one line per restored changelog partition, and the end)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self._began: float | None = None
        self._restored: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Beginning recovery check"):
            self._began, self._restored = time.monotonic(), []
        elif message.startswith("Recovery successful for") and (found := RESTORED.search(message)):
            self._restored.append((int(found["partition"]), changelog_store(found["changelog"])))
        elif message.startswith("Recovery process complete") and self._began is not None and self._restored:
            seconds = time.monotonic() - self._began
            partitions = sorted({number for number, _ in self._restored})
            stores = sorted({store for _, store in self._restored})
            report({"event": "restored", "seconds": round(seconds, 3), "partitions": partitions, "stores": stores})


def report(event: dict) -> None:
    """One JSON line on stdout: what the notebook reads from an instance's log file."""
    print(json.dumps(event), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One instance of the step 4 stream processor (Quix Streams).")
    parser.add_argument("--group", required=True, help="consumer group: instances with the same group share the work")
    parser.add_argument("--state-dir", type=Path, required=True, help="folder of this instance's RocksDB state")
    parser.add_argument("--alert-topic", default="pm25_alerts_quix")
    parser.add_argument("--threshold", type=float, required=True)
    parser.add_argument("--window-hours", type=int, required=True)
    parser.add_argument("--min-hours", type=int, required=True)
    parser.add_argument("--idle-timeout-s", type=float, default=10.0, help="stop after this long without messages")
    parser.add_argument("--exactly-once", action="store_true", help="transactions: needs a real Kafka")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    rule = DailyMeanRule(args.threshold, args.window_hours, args.min_hours)
    app, gate = build_application(
        settings, args.group, args.state_dir, args.alert_topic, rule, args.exactly_once, loglevel="INFO"
    )
    logging.getLogger("quixstreams").addHandler(RecoveryTimer())  # recovery is logged at INFO
    report({"event": "started"})
    app.run(timeout=args.idle_timeout_s, collect=False)
    report({"event": "finished", "counts": dict(gate.counts)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
