"""Fixtures for the tests under tests/ (the services every session needs are in the root conftest.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pm25 import polling


@pytest.fixture
def polling_clock(monkeypatch):
    """The clock pm25.polling reads, moved on by its pauses: a wait of minutes takes no real time."""
    clock = SimpleNamespace(now=1000.0, pauses=[])

    def sleep(seconds: float) -> None:
        clock.pauses.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(polling.time, "monotonic", lambda: clock.now)
    monkeypatch.setattr(polling.time, "sleep", sleep)
    return clock
