"""The one private kafka-python API the package uses, pinned so that a client upgrade that removes it fails here.

pm25.streaming.delivery.flush_and_close calls producer._sender.force_close() when flush() times out: kafka-python
has no public way to close a producer without flushing first (close() flushes, and raises the same time-out).
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version

import pytest
from kafka import KafkaProducer

from pm25.config import REPO_DIR
from pm25.streaming import delivery


def kafka_python_pin() -> str:
    requirements = (REPO_DIR / "requirements.txt").read_text(encoding="utf-8")
    return re.search(r"^kafka-python==\S+", requirements, re.MULTILINE).group()


def test_the_producers_sender_still_has_force_close(bootstrap_servers):
    if "_sender.force_close()" not in inspect.getsource(delivery):
        pytest.skip("pm25.streaming.delivery no longer uses the private API: delete this test")
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
    try:
        sender = getattr(producer, "_sender", None)
        assert callable(getattr(sender, "force_close", None)), (
            f"kafka-python {version('kafka-python')} has no KafkaProducer._sender.force_close(), which "
            f"pm25.streaming.delivery.flush_and_close calls when flush() times out. requirements.txt pins "
            f"{kafka_python_pin()}: "
            "keep that pin, or find the new way to close a producer without flushing and change flush_and_close."
        )
    finally:
        producer.close(timeout=5)


def test_the_pin_is_the_installed_client():
    # The test above checks the installed client: it guards the pin only while the two agree.
    assert kafka_python_pin() == f"kafka-python=={version('kafka-python')}"
