"""Figures of the fault suite, counted by the tests and printed once at the end of the session (conftest.py)."""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import asdict

import pytest

from tests.faults.support import FIGURES, Figures


@pytest.fixture(scope="session")
def figures() -> Figures:
    return FIGURES


@pytest.fixture
def processes():
    """Processes a test starts: register them here, and whatever still runs at the end is killed."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


SEED_KEY = pytest.StashKey[int]()


@pytest.fixture
def rng(request) -> random.Random:
    """Seeded randomness for a fault test; the seed is printed if the test fails (PM25_FAULT_SEED repeats it)."""
    seed = int(os.environ.get("PM25_FAULT_SEED") or random.randrange(2**32))
    request.node.stash[SEED_KEY] = seed
    return random.Random(seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and SEED_KEY in item.stash:
        report.sections.append(("fault seed", f"repeat with PM25_FAULT_SEED={item.stash[SEED_KEY]}"))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    # A pytest-xdist worker hands its figures to the controller, which prints them (conftest.py).
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fault_figures"] = asdict(FIGURES)
