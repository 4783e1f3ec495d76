"""The practice topic that the producer and consumer-loop checks run the learner's code on.

Each check makes a topic of its own and deletes it afterwards, so the tutorial's topics never see practice data.
It has several partitions, so that the check shows on which one each box's readings land.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from kafka import KafkaAdminClient

from pm25.streaming.topics import ensure_topic

PRACTICE_PARTITIONS = 3


@contextmanager
def practice_topic(kafka_options: dict):
    """A new topic with 3 partitions for one self-check; deleted afterwards."""
    name = f"pm25_practice_{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(**kafka_options) as admin:
        ensure_topic(admin, name, PRACTICE_PARTITIONS)
        try:
            yield name
        finally:
            admin.delete_topics([name])
