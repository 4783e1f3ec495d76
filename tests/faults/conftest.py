"""Figures of the fault suite, counted by the tests and printed once at the end of the session."""

from __future__ import annotations

import subprocess

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


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if Figures() != FIGURES:
        terminalreporter.write_sep("=", "fault suite figures")
        terminalreporter.write_line(FIGURES.line())
