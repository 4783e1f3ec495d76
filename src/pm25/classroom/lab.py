"""`make lab`: the tutorial without Docker, an embedded Kafka broker plus JupyterLab on 127.0.0.1.

JupyterLab's root folder is the repository, so the notebooks' links to README.md, TEACHERS.md and img/
open inside it; it opens on step 1. JUPYTER_PORT (8888) and KAFKA_PORT (9092, the embedded broker) choose
the ports; a port in use stops it with a message naming the variable that moves it. A broker named by
KAFKA_BOOTSTRAP_SERVERS is used instead of starting one. The token comes from JUPYTER_TOKEN, or is made
up fresh; either way it is printed with the address to open. KAFKA=zookeeper or KAFKA=kraft (`make lab
KAFKA=kraft`) starts real Apache Kafka instead of the embedded broker, for instructors with Java 17+ and
`make kafka-jars` (docs/real-kafka.md). Lab never asks about Jupyter news (lab_config/).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from pm25.brokers.embedded import HOST, BrokerError, EmbeddedBroker, port_is_free
from pm25.brokers.jvm import BROKERS
from pm25.brokers.jvm_process import JvmKafka
from pm25.config import REPO_DIR

FIRST_NOTEBOOK = "src/step_1_data_prep.ipynb"
DEFAULT_PORTS = {"JUPYTER_PORT": 8888, "KAFKA_PORT": 9092}
# Lab's setting defaults for the class (a learner's own settings still win): no news prompt on first open.
LAB_CONFIG_DIR = Path(__file__).parent / "lab_config"


class PortError(ValueError):
    """A port that cannot be used, with the way out."""


def jupyter_command(port: int) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ip={HOST}",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # a port in use is an error, never a quiet move to another port
        f"--ServerApp.root_dir={REPO_DIR}",
        f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}",
    ]
    if os.geteuid() == 0:  # CI and some containers run as root; Jupyter refuses root without this
        command.append("--allow-root")
    return command


def jupyter_config_path(env: dict[str, str]) -> str:
    """JUPYTER_CONFIG_PATH with the tutorial's Lab defaults added after any folders the user named."""
    return os.pathsep.join(filter(None, [env.get("JUPYTER_CONFIG_PATH"), str(LAB_CONFIG_DIR)]))


def chosen_port(env: dict[str, str], variable: str) -> int:
    text = env.get(variable) or str(DEFAULT_PORTS[variable])
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise PortError(f"{variable}={text!r} is not a port: use a number from 1024 to 65535, e.g. {variable}=8899.")
    return int(text)


def chosen_broker(env: dict[str, str], port: int) -> EmbeddedBroker | JvmKafka:
    """The broker KAFKA names, not started yet: the embedded one unless KAFKA=zookeeper or KAFKA=kraft."""
    kind = (env.get("KAFKA") or "embedded").strip().lower()
    if kind == "embedded":
        return EmbeddedBroker(port=port)
    if kind not in ("zookeeper", "kraft"):
        raise ValueError(f"KAFKA={kind!r} is not a broker: use embedded (the default), zookeeper or kraft.")
    return BROKERS[kind](port=port)


def a_free_port_after(port: int) -> int:
    return next(candidate for candidate in range(port + 1, 65536) if port_is_free(candidate))


def check_free(port: int, variable: str, used_by: str) -> None:
    if not port_is_free(port):
        raise PortError(
            f"Port {port} on {HOST} is in use{used_by}. Stop that program, or choose another port: "
            f"{variable}={a_free_port_after(port)} make lab"
        )


def main() -> int:
    env = dict(os.environ)
    env["JUPYTER_TOKEN"] = env.get("JUPYTER_TOKEN") or secrets.token_urlsafe(24)
    env["JUPYTER_CONFIG_PATH"] = jupyter_config_path(env)
    start_broker = not env.get("KAFKA_BOOTSTRAP_SERVERS")
    try:
        port = chosen_port(env, "JUPYTER_PORT")
        check_free(port, "JUPYTER_PORT", " (another JupyterLab, or the Docker stack?)")
        if start_broker:
            kafka_port = chosen_port(env, "KAFKA_PORT")
            check_free(
                kafka_port,
                "KAFKA_PORT",
                f" (a broker of the Docker stack or another make lab? Then use it: "
                f"KAFKA_BOOTSTRAP_SERVERS={HOST}:{kafka_port} make lab)",
            )
            broker = chosen_broker(env, kafka_port)
    except ValueError as error:  # PortError, or KAFKA names no broker
        print(f"Error: {error}", file=sys.stderr)
        return 2
    with ExitStack() as services:
        if start_broker:
            try:
                services.enter_context(broker)
            except BrokerError as error:
                print(f"Error: {error}", file=sys.stderr)
                return 2
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        print(f"Kafka broker: {env['KAFKA_BOOTSTRAP_SERVERS']}")
        print(f"Open JupyterLab at http://{HOST}:{port}/lab/tree/{FIRST_NOTEBOOK}?token={env['JUPYTER_TOKEN']}")
        print("Press Ctrl+C to stop JupyterLab and the broker.", flush=True)
        return run_until_stopped(jupyter_command(port), env)


def run_until_stopped(command: list[str], env: dict[str, str]) -> int:
    """Run JupyterLab and return once it has exited: its port is free and its kernels are shut down by then.

    Ctrl+C stops it with SIGTERM, its clean shutdown, and waits. Not a KeyboardInterrupt: two quick Ctrl+C may
    arrive as one signal, and JupyterLab's own Ctrl+C asks to confirm, which nobody answers when its input is
    not a terminal (then it goes on running).
    """
    jupyter = subprocess.Popen(command, env=env)
    stopped = False

    def stop(number, frame) -> None:
        nonlocal stopped
        stopped = True
        jupyter.terminate()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        code = jupyter.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0 if stopped else code


if __name__ == "__main__":
    sys.exit(main())
