"""Tests that need real Apache Kafka: they run in `make test-kafka`'s sessions (PM25_BROKER=zookeeper|kraft)."""

from __future__ import annotations

import os

import pytest

from pm25.brokers.jvm_process import missing


def session_broker_line() -> str:
    return (os.environ.get("PM25_BROKER") or "embedded").strip().lower()


@pytest.fixture(autouse=True)
def _real_kafka_only(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("realkafka") is not None:
        skip_unless_real_session()


def skip_unless_real_session() -> None:
    line = session_broker_line()
    if line == "embedded":
        pytest.skip("realkafka: the session broker is the embedded one (make test-kafka runs these)")
    problem = missing(line)
    if problem:
        pytest.skip(f"realkafka: {problem}")


def skip_unless_kraft_session() -> None:
    """For tests that start KRaft brokers of their own: once, in the kraft session."""
    skip_unless_real_session()
    if session_broker_line() != "kraft" or missing("kraft"):
        pytest.skip("realkafka: starts its own Kafka 4 brokers, in the PM25_BROKER=kraft session only")


@pytest.fixture
def kraft_only() -> None:
    skip_unless_kraft_session()


COUNTS: list[str] = []


@pytest.fixture
def report():
    """Record a test's counts: printed once at the end of the session, as the closing figures."""
    return COUNTS.append


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if COUNTS:
        terminalreporter.section(f"real Kafka figures (PM25_BROKER={session_broker_line()})")
        for line in COUNTS:
            terminalreporter.write_line(line)
