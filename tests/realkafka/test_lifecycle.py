"""`python -m pm25.brokers.jvm`: ready line, a clean stop on Ctrl+C or SIGTERM, no broker left behind even
when the Python process that started it is SIGKILLed (as a test run killed by CI's time limit)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pm25.brokers.embedded import free_port
from pm25.polling import wait_until
from tests.realkafka.conftest import session_broker_line

pytestmark = pytest.mark.realkafka
REPO = Path(__file__).resolve().parents[2]


def running(pid: str) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whatever adopted it, maybe late)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL])  # SIGTERM takes the SIGINT path
def test_the_broker_command_stops_cleanly_and_leaves_no_jvm(stop):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pm25.brokers.jvm", session_broker_line(), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Before it, a line says what the command waits for; readline() is the wait.
        ready = wait_until(lambda: "ready." in (line := process.stdout.readline()) and line, 180, "ready", every_s=0)
        assert f"Bootstrap servers: 127.0.0.1:{port}" in ready
        jvms = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert jvms, "the broker runs as child processes"
        process.send_signal(stop)
        code = process.wait(timeout=60)
        assert code == (-signal.SIGKILL if stop == signal.SIGKILL else 0)
        wait_until(lambda: not any(map(running, jvms)), 60, "every JVM to exit")
    finally:
        process.kill()
        process.wait()
