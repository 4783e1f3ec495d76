"""How long a reading takes from step 2's send() to the end of step 3's work on it, and the consumer
setting that bounds how long it can wait in the broker on the way."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

# How long the broker may hold a consumer's fetch while it waits for new messages (Kafka's default: 500 ms).
# Apache Kafka answers as soon as there is data; the embedded broker always holds the fetch this long, so
# there it bounds how long a reading sits in the broker before step 3 sees it. Shorter asks more often when
# the topic is idle, and each fetch costs kafka-python ~2 ms of CPU: 50 ms keeps an idle consumer below 5 %
# of one core (benchmarks/bench_consumer.py) and the median send-to-alert latency near 20 ms
# (benchmarks/bench_latency.py).
FETCH_MAX_WAIT_MS = 50

CREATE_TIME = 0  # record.timestamp_type: the producer stamped the record when send() was called


class SendToAlertLatency:
    """Milliseconds from each reading's send() to the moment its processing (and alert, if any) is done.

    The send time is the record's own timestamp: a Kafka producer stamps every record when send() is called
    (CreateTime), so the message needs no extra field. Producer and consumer read the same clock when they
    run on one machine; on two machines the clocks must agree to the millisecond (NTP) for this to mean much.

    Only readings sent after this object was made count: older ones waited in the topic for the consumer
    (a backlog, e.g. after a bulk send), which says how late the consumer started, not how fast it is.
    Latencies are kept as a histogram of whole milliseconds, so memory stays small on a long stream.
    """

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self.since_ms = clock() * 1000
        self.histogram: Counter[int] = Counter()
        self.backlog = 0  # sent before this object was made, or not stamped at send time

    def observe(self, record) -> None:
        """Call when the record's work is done."""
        if record.timestamp_type != CREATE_TIME or record.timestamp < self.since_ms:
            self.backlog += 1
            return
        self.histogram[max(0, math.floor(self._clock() * 1000 - record.timestamp))] += 1

    @property
    def count(self) -> int:
        return self.histogram.total()

    def quantile(self, fraction: float) -> float:
        """The smallest latency (ms) that `fraction` of the readings did not exceed; nan before any reading."""
        if not self.histogram:
            return math.nan
        rank, seen = math.ceil(fraction * self.count), 0
        for milliseconds in sorted(self.histogram):
            seen += self.histogram[milliseconds]
            if seen >= rank:
                return milliseconds
        return max(self.histogram)

    def summary(self) -> str:
        if not self.histogram:
            return (
                "Send-to-alert latency: no reading was sent while this consumer ran (all were there before it "
                "started). To measure it, set live_speedup in section 3 and run from there."
            )
        return (
            f"Send-to-alert latency of the {self.count:,} readings sent while this consumer ran: "
            f"median {self.quantile(0.5):.0f} ms, 99th percentile {self.quantile(0.99):.0f} ms, "
            f"slowest {max(self.histogram)} ms."
        )
