"""`make lab` serves JupyterLab on 127.0.0.1 with a token, rooted at the repository, next to a running broker;
a port in use stops it with a message naming the variable that moves it."""

import contextlib
import os
import signal
import socket
import subprocess
import sys

import pytest
import requests
from kafka import KafkaAdminClient

from pm25.brokers.embedded import free_port, port_is_free
from pm25.polling import wait_until

REPO = os.path.join(os.path.dirname(__file__), "..")  # where `make lab` runs it


def _jupyter_answers(url):
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.ConnectionError:
        return False


def _lab(stderr=subprocess.PIPE, **variables):
    env = {**os.environ, "JUPYTER_TOKEN": "lab-test-token", **variables}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pm25.classroom.lab"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


@pytest.fixture
def taken_port():
    """A port some other program listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_lab_needs_the_token_listens_on_loopback_and_stops_with_the_broker():
    port, kafka_port = free_port(), free_port()
    process = _lab(subprocess.DEVNULL, JUPYTER_PORT=str(port), KAFKA_PORT=str(kafka_port))  # Jupyter's log: unread
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _jupyter_answers(f"{base}/api/status"), 60, "JupyterLab to answer")
        assert requests.get(f"{base}/api/status", timeout=5).status_code == 403
        with_token = requests.get(f"{base}/api/status", params={"token": "lab-test-token"}, timeout=5)
        assert with_token.status_code == 200
        with KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{kafka_port}") as admin:
            assert isinstance(admin.list_topics(), list)
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout.split("\n")
        for wanted in (port, kafka_port):
            addresses = {line.split()[3] for line in listening if line and line.split()[3].endswith(f":{wanted}")}
            assert addresses == {f"127.0.0.1:{wanted}"}
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl+C in the terminal does
        os.killpg(process.pid, signal.SIGINT)  # Jupyter asks for confirmation; a second Ctrl+C confirms
        printed, _ = process.communicate(timeout=30)
        assert f"Kafka broker: 127.0.0.1:{kafka_port}" in printed
        assert f"Open JupyterLab at {base}/lab/tree/src/step_1_data_prep.ipynb?token=lab-test-token" in printed
        assert port_is_free(port) and port_is_free(kafka_port)  # make lab ends after JupyterLab, not before
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_lab_is_rooted_at_the_repository_and_opens_on_step_1():
    port = free_port()
    process = _lab(subprocess.DEVNULL, JUPYTER_PORT=str(port), KAFKA_PORT=str(free_port()))
    try:
        base, token = f"http://127.0.0.1:{port}", {"token": "lab-test-token"}
        wait_until(lambda: _jupyter_answers(f"{base}/api/status"), 60, "JupyterLab to answer")
        for linked in ("README.md", "TEACHERS.md", "img/architecture.svg", "src/step_1_data_prep.ipynb"):
            assert requests.get(f"{base}/api/contents/{linked}", params=token, timeout=5).status_code == 200, linked
        home = requests.get(f"{base}/", params=token, timeout=5, allow_redirects=False)
        assert home.headers["Location"].startswith("/lab/tree/src/step_1_data_prep.ipynb")
        notification = f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification"
        schema = requests.get(notification, params=token, timeout=5).json()["schema"]
        assert schema["properties"]["fetchNews"]["default"] == "false"  # no question about Jupyter news
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_jupyter_port_in_use_is_refused_naming_JUPYTER_PORT(taken_port):
    kafka_port = free_port()
    process = _lab(JUPYTER_PORT=str(taken_port), KAFKA_PORT=str(kafka_port))
    printed, errors = process.communicate(timeout=60)
    assert process.returncode == 2
    assert f"Port {taken_port} on 127.0.0.1 is in use" in errors and "JUPYTER_PORT=" in errors
    assert "Open JupyterLab" not in printed  # no address of a server that is not ours
    assert port_is_free(kafka_port)  # and no broker left behind


def test_a_kafka_port_in_use_is_refused_naming_KAFKA_PORT_and_no_option_make_lab_lacks(taken_port):
    process = _lab(JUPYTER_PORT=str(free_port()), KAFKA_PORT=str(taken_port))
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "KAFKA_PORT=" in errors and f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{taken_port} make lab" in errors
    assert "--port" not in errors


def test_a_port_that_is_not_a_number_is_named():
    process = _lab(JUPYTER_PORT="eighty")
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 2 and "JUPYTER_PORT='eighty' is not a port" in errors


def test_lab_does_not_ask_about_jupyter_news_yet_keeps_the_users_config_folders(monkeypatch, tmp_path):
    # JupyterLab asks "get notified about official Jupyter news?" on first open while fetchNews is "none".
    from jupyterlab_server.settings_utils import _get_overrides

    from pm25.classroom import lab

    monkeypatch.setenv("JUPYTER_CONFIG_PATH", lab.jupyter_config_path({"JUPYTER_CONFIG_PATH": str(tmp_path)}))
    overrides, error = _get_overrides(str(tmp_path / "no app settings"))
    assert not error
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert os.environ["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(tmp_path)


def test_ctrl_c_stops_jupyterlab_cleanly_and_make_lab_ends_after_it(tmp_path):
    # A stand-in for JupyterLab that ignores Ctrl+C (JupyterLab's own asks to confirm, and with no terminal to
    # answer it goes on running) and stops on SIGTERM, cleanly (kernels shut down, port closed), noting it.
    stopped = tmp_path / "stopped cleanly"
    stand_in = tmp_path / "jupyter.py"
    stand_in.write_text(
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        f"signal.signal(signal.SIGTERM, lambda *_: sys.exit(pathlib.Path({str(stopped)!r}).touch()))\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    time.sleep(1)\n"
    )
    script = (
        "import sys\n"
        "from pm25.classroom.lab import run_until_stopped\n"
        f"sys.exit(run_until_stopped([sys.executable, {str(stand_in)!r}], {{}}))\n"
    )
    make_lab = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert make_lab.stdout.readline() == "ready\n"
        make_lab.send_signal(signal.SIGINT)
        assert make_lab.wait(timeout=30) == 0
        assert stopped.exists()  # stopped by SIGTERM, not killed, and make lab waited until it had
    finally:
        with contextlib.suppress(ProcessLookupError):  # the stand-in too, if a failure left it behind
            os.killpg(make_lab.pid, signal.SIGKILL)
        make_lab.wait()
