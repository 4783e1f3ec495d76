"""The solutions of the learner's tasks: one cell per task, opened by `# %% task:<name>`.

pm25.learning.tasks uses a solution when its task is still unanswered, and the tests run every notebook
with these cells in place of the cells tagged `task:<name>`. TEACHERS.md shows the same code
(tests/test_tasks.py checks that it does). Each cell stands alone: it imports what it uses.
"""

# %% task:city_centre
berlin_lat, berlin_lon = 52.5200, 13.4050  # latitude (north) first, then longitude (east)

# %% task:bounding_box
def bounding_box(corners):
    lons = [lon for lon, lat in corners]
    lats = [lat for lon, lat in corners]
    return f"{min(lons)},{min(lats)},{max(lons)},{max(lats)}"

# %% task:time_range
time_from = "2023-02-26T08:00:00.000Z"
time_to = "2023-03-01T09:00:00.000Z"

# %% task:message_key
key_field = "boxId"

# %% task:producer
import json


def to_json(reading):
    """The message value: the reading (a dict) as UTF-8 JSON bytes."""
    return json.dumps(reading).encode("utf-8")


def send_readings(producer, topic, readings):
    """Send each reading keyed by its box, wait once for every answer; return how many sends failed."""
    futures = []
    for reading in readings:
        futures.append(producer.send(topic, key=reading["boxId"], value=reading))
    producer.flush()  # returns once every send has its answer: acknowledged, or failed
    return sum(future.failed() for future in futures)

# %% task:consumer_loop
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError


def make_consumer(kafka_options, topic, group_id):
    """A consumer in group `group_id`, subscribed to `topic`; a new group starts at the oldest record."""
    consumer = KafkaConsumer(
        **kafka_options,
        group_id=group_id,  # the group shares the partitions and remembers the committed offsets
        auto_offset_reset="earliest",  # a new group starts at the oldest record
        enable_auto_commit=False,  # we commit after processing, not the client on a timer
    )
    consumer.subscribe([topic])
    return consumer


def run_loop(consumer, process, stop):
    """Poll records, process each one, then commit them: until stop() says to stop. Then close the consumer."""
    try:
        while not stop():
            batch = consumer.poll(timeout_ms=500)  # {partition: [records]}
            for records in batch.values():
                for record in records:
                    process(record)
            if batch:  # nothing polled, nothing to commit
                try:
                    consumer.commit()  # after processing: a crash before this line means re-reading, not losing
                except CommitFailedError:  # the group rebalanced: whoever owns these records now reads them again
                    print("The commit failed; polling goes on.")
    finally:
        consumer.close()  # leave the group now, so the others get its partitions at once

# %% task:window_detector
from collections import defaultdict
from datetime import timedelta
from statistics import fmean


class WindowDetector:
    """Per box: hourly means; once per closed hour, the 24-hour mean and an alert when the box changes state."""

    def __init__(self, threshold=15.0, window_hours=24, min_hours=18):
        self.threshold, self.window_hours, self.min_hours = threshold, window_hours, min_hours
        self.hours = defaultdict(dict)  # box_id -> {clock hour: (sum, count) of its values}
        self.exceeded = set()  # the boxes whose last alert was "exceeded"

    def process(self, reading):
        """Take one reading; return "exceeded" or "resolved" when its box changes state, else None."""
        hour = reading.timestamp.replace(minute=0, second=0, microsecond=0)
        buckets = self.hours[reading.box_id]
        event = None
        if buckets and hour > max(buckets):  # the box's first reading of a new hour: the hours before it are closed
            event = self.decide(reading.box_id, buckets, hour)
        total, count = buckets.get(hour, (0.0, 0))
        buckets[hour] = (total + reading.value, count + 1)
        return event

    def decide(self, box_id, buckets, hour):
        """Decide once, on the closed hours of the window that ends where `hour` begins."""
        for old in [h for h in buckets if h < hour - timedelta(hours=self.window_hours)]:
            del buckets[old]  # this hour has left the window
        if len(buckets) < self.min_hours:
            return None  # not enough hours with data: no new decision
        mean = fmean(total / count for total, count in buckets.values())
        if mean > self.threshold and box_id not in self.exceeded:
            self.exceeded.add(box_id)
            return "exceeded"
        if mean <= self.threshold and box_id in self.exceeded:
            self.exceeded.discard(box_id)
            return "resolved"
        return None
