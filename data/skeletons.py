"""The skeletons of the learner's tasks, as the notebooks' task cells hold them when committed.

pm25.learning.tasks compares an answer with its skeleton: an untouched skeleton falls back to the solution
(data/solutions.py), an edited one that still holds a `...` is a half-finished answer and gets a hint.
tests/test_tasks.py checks that every notebook's task cell is exactly its skeleton here.
"""

# %% task:city_centre
# Task 1: the centre of Berlin, as latitude and longitude in decimal degrees.
berlin_lat, berlin_lon = ..., ...

# %% task:bounding_box
# Task 3: the bounding box of a list of (lon, lat) corners, as the text 'minLon,minLat,maxLon,maxLat'.
def bounding_box(corners):
    lons = [lon for lon, lat in corners]
    lats = ...  # the latitudes, in the same way
    return ...  # one text: the smallest and largest longitude and latitude, joined by commas

# %% task:time_range
# Task 4: the first and the last moment you want, as text in the API's form.
time_from = ...
time_to = ...

# %% task:message_key
key_field = ...  # "boxId", "sensorId", "timestamp" or "value"?

# %% task:producer
import json


def to_json(reading):
    """The message value: the reading (a dict) as UTF-8 JSON bytes."""
    return ...  # JSON text, encoded: Kafka sends bytes


def send_readings(producer, topic, readings):
    """Send each reading keyed by its box, wait once for every answer; return how many sends failed."""
    futures = []
    for reading in readings:
        futures.append(producer.send(topic, key=..., value=reading))
    ...  # wait once until every send has its answer
    failed = ...  # how many sends failed: future.failed() is True for those
    return failed

# %% task:consumer_loop
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError


def make_consumer(kafka_options, topic, group_id):
    """A consumer in group `group_id`, subscribed to `topic`; a new group starts at the oldest record."""
    consumer = KafkaConsumer(
        **kafka_options,
        group_id=...,  # the group: it shares the partitions and remembers the committed offsets
        auto_offset_reset=...,  # where a new group starts: "earliest" (the oldest record) or "latest"
        enable_auto_commit=...,  # True: the client commits on a timer; False: we commit after processing
    )
    ...  # subscribe it to the topic: consumer.subscribe() takes a list of topics
    return consumer


def run_loop(consumer, process, stop):
    """Poll records, process each one, then commit them: until stop() says to stop. Then close the consumer."""
    try:
        while not stop():
            batch = consumer.poll(timeout_ms=500)  # {partition: [records]}
            for records in batch.values():
                for record in records:
                    ...  # process the record
            if batch:  # nothing polled, nothing to commit
                try:
                    ...  # then commit: tell Kafka that these records are done
                except CommitFailedError:  # the group rebalanced: whoever owns these records now reads them again
                    print("The commit failed; polling goes on.")
    finally:
        ...  # close the consumer

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
        hour = ...  # the reading's clock hour: its timestamp without minutes, seconds and microseconds
        buckets = self.hours[reading.box_id]
        event = None
        if buckets and ...:  # the box's first reading of a new hour: the hours before it are closed
            event = self.decide(reading.box_id, buckets, hour)
        total, count = buckets.get(hour, (0.0, 0))
        buckets[hour] = (total + reading.value, count + 1)
        return event

    def decide(self, box_id, buckets, hour):
        """Decide once, on the closed hours of the window that ends where `hour` begins."""
        for old in [h for h in buckets if ...]:  # the hours that have left the window
            del buckets[old]
        if ...:
            return None  # not enough hours with data: no new decision
        mean = ...  # the mean of the hourly means
        if mean > self.threshold and box_id not in self.exceeded:
            self.exceeded.add(box_id)
            return "exceeded"
        if ...:  # back at or below the threshold after an "exceeded"
            self.exceeded.discard(box_id)
            return "resolved"
        return None
