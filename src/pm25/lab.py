"""`make lab`: the tutorial without Docker, an embedded Kafka broker plus JupyterLab on 127.0.0.1.

A broker named by KAFKA_BOOTSTRAP_SERVERS is used instead of starting one. The token comes from
JUPYTER_TOKEN, or is made up fresh; either way it is printed with the address to open.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from contextlib import ExitStack

from pm25.broker import BrokerError, EmbeddedBroker
from pm25.config import REPO_DIR


def jupyter_command(port: int) -> list[str]:
    command = [
        sys.executable, "-m", "jupyter", "lab",
        "--ip=127.0.0.1", f"--port={port}", "--no-browser",
        f"--ServerApp.root_dir={REPO_DIR / 'src'}",
    ]  # fmt: skip
    if os.geteuid() == 0:  # CI and some containers run as root; Jupyter refuses root without this
        command.append("--allow-root")
    return command


def main() -> int:
    env = dict(os.environ)
    env["JUPYTER_TOKEN"] = env.get("JUPYTER_TOKEN") or secrets.token_urlsafe(24)
    port = int(env.get("JUPYTER_PORT", "8888"))
    with ExitStack() as services:
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            try:
                broker = services.enter_context(EmbeddedBroker(port=9092))
            except BrokerError as error:
                print(f"Error: {error}", file=sys.stderr)
                return 2
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        print(f"Kafka broker: {env['KAFKA_BOOTSTRAP_SERVERS']}")
        print(f"Open JupyterLab at http://127.0.0.1:{port}/lab?token={env['JUPYTER_TOKEN']}", flush=True)
        print("Press Ctrl+C (twice if Jupyter asks) to stop JupyterLab and the broker.", flush=True)
        try:
            return subprocess.run(jupyter_command(port), env=env).returncode
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
