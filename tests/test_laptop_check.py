"""`make check`, the teachers' laptop check (issue 26): ready / not ready with the fix, in under 2 minutes."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import time

import pytest

from pm25.brokers.embedded import free_port
from pm25.classroom import laptop_check
from pm25.data.readings import RECORDING_COLUMNS, RECORDING_CSV
from tests.test_docs import REPO


def make_check(**ports: int) -> tuple[subprocess.CompletedProcess, float]:
    """`make check` as a teacher runs it, with KAFKA_PORT / JUPYTER_PORT set; its result and its seconds."""
    env = {**os.environ, **{name: str(port) for name, port in ports.items()}}
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    return result, time.monotonic() - started


@pytest.fixture
def port_in_use():
    """A port on 127.0.0.1 that another program listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_ready_laptop_is_ready_within_two_minutes():
    result, seconds = make_check(KAFKA_PORT=free_port(), JUPYTER_PORT=free_port())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("READY")
    assert "❌" not in result.stdout and "Embedded Kafka broker started and answered" in result.stdout
    assert seconds < 120


def test_kafka_port_taken_is_not_ready_and_names_the_fix(port_in_use):
    result, seconds = make_check(KAFKA_PORT=port_in_use, JUPYTER_PORT=free_port())
    assert result.returncode != 0  # make turns the check's 1 into its own 2
    lines = result.stdout.splitlines()
    assert f"❌ Port {port_in_use} for Kafka (make lab's broker) is in use" in result.stdout
    assert "KAFKA_PORT=<port> make lab" in result.stdout
    assert lines[-1].startswith("NOT READY")
    # The broker itself is still tried, on another port, so the teacher learns both things at once.
    assert any("✅ Embedded Kafka broker started and answered" in line for line in lines)
    assert seconds < 120


def test_jupyter_port_taken_is_not_ready(port_in_use):
    result, _ = make_check(KAFKA_PORT=free_port(), JUPYTER_PORT=port_in_use)
    assert result.returncode != 0  # make turns the check's 1 into its own 2
    assert f"❌ Port {port_in_use} for JupyterLab is in use" in result.stdout
    assert "JUPYTER_PORT=<port> make lab" in result.stdout


def test_missing_recording_is_not_ready_and_says_how_to_get_it_back(tmp_path):
    result = laptop_check.check_recording(tmp_path / "berlin.csv.gz")
    assert not result.ok
    assert "is missing" in result.line and "git checkout --" in result.fix


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"version https://git-lfs.github.com/spec/v1\n", "damaged"),  # a pointer instead of the data
        (gzip.compress(b"a,b,c\n1,2,3\n"), "not the recording"),
    ],
    ids=["git-lfs-pointer", "another-csv"],  # gzip writes the time into its bytes: ids must not vary per run
)
def test_a_damaged_or_other_recording_is_not_ready(tmp_path, content, says):
    path = tmp_path / "berlin.csv.gz"
    path.write_bytes(content)
    result = laptop_check.check_recording(path)
    assert not result.ok and says in result.line


def test_the_report_of_a_missing_recording_says_not_ready(tmp_path):
    results = laptop_check.run_checks(free_port(), free_port(), recording=tmp_path / "missing.csv.gz")
    text = laptop_check.report(results, 1.0)
    assert "❌ The bundled recording" in text and "is missing" in text
    assert text.splitlines()[-1].startswith("NOT READY")


def test_the_check_knows_the_bundled_recording_as_the_package_does():
    assert laptop_check.RECORDING == RECORDING_CSV
    assert laptop_check.RECORDING_HEADER.split(",") == RECORDING_COLUMNS
    assert laptop_check.check_recording().ok


def test_an_old_python_is_not_ready():
    result = laptop_check.check_python((3, 10, 12))
    assert not result.ok and "3.11 or newer" in result.line and "PYTHON=" in result.fix
    assert laptop_check.check_python((3, 12, 1)).ok


def test_no_installation_is_not_ready_and_skips_the_broker(tmp_path):
    missing = tmp_path / ".venv" / "bin" / "python"
    assert "make install" in laptop_check.check_installed(missing).fix
    broker = laptop_check.check_broker(missing, free_port())
    assert not broker.ok and "not checked" in broker.line


def test_a_broker_that_cannot_start_is_not_ready(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'Error: no broker binary here' >&2\nexit 2\n", encoding="utf-8")
    fake_python.chmod(0o755)
    result = laptop_check.check_broker(fake_python, free_port())
    assert not result.ok and "no broker binary here" in result.line
