"""`make lab` serves JupyterLab on 127.0.0.1 with a token, next to a running broker."""

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from kafka import KafkaAdminClient

from pm25.broker import free_port, port_is_free

SRC = os.path.join(os.path.dirname(__file__), "..", "src")


def _wait_until(condition, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)  # polling interval for a server to come up
    return False


def _jupyter_answers(url):
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.ConnectionError:
        return False


def test_lab_needs_the_token_listens_on_loopback_and_stops_with_the_broker():
    if not port_is_free(9092):
        pytest.skip("port 9092 is taken (a compose stack?); make lab would refuse, as it should")
    port = free_port()
    env = {**os.environ, "JUPYTER_PORT": str(port), "JUPYTER_TOKEN": "lab-test-token"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pm25.lab"], cwd=SRC, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_until(lambda: _jupyter_answers(f"{base}/api/status"))
        assert requests.get(f"{base}/api/status", timeout=5).status_code == 403
        with_token = requests.get(f"{base}/api/status", params={"token": "lab-test-token"}, timeout=5)
        assert with_token.status_code == 200
        with KafkaAdminClient(bootstrap_servers="127.0.0.1:9092") as admin:
            assert isinstance(admin.list_topics(), list)
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout.split("\n")
        for wanted in (port, 9092):
            addresses = {line.split()[3] for line in listening if line and line.split()[3].endswith(f":{wanted}")}
            assert addresses == {f"127.0.0.1:{wanted}"}
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl+C in the terminal does
        os.killpg(process.pid, signal.SIGINT)  # Jupyter asks for confirmation; a second Ctrl+C confirms
        process.wait(timeout=30)
        assert _wait_until(lambda: port_is_free(9092) and port_is_free(port), timeout_s=15)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
