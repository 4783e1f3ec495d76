"""What every real Kafka of pm25.brokers.jvm runs on: Java, the jars, and JVM processes started and stopped.

`missing(line)` says in one line what stops a broker line from starting here (no Java, too old a Java, no
jars: `make kafka-jars`). `JvmProcess` is one JVM of a line, logging under build/kafka/logs, ended with the
Python process that started it, even by SIGKILL (Linux). `JvmKafka` is what every line shares: start on free
ports, wait until Kafka answers with every broker registered, stop cleanly (SIGTERM, SIGKILL past a deadline).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from pm25.brokers.embedded import HOST, BrokerError, free_port, port_is_free
from pm25.polling import WaitedInVain, wait_until

REPO_DIR = Path(__file__).resolve().parents[3]
MAVEN_DIR = REPO_DIR / "maven"
JARS_DIR = REPO_DIR / "build" / "kafka"
LOGS_DIR = JARS_DIR / "logs"

# Small JVMs: the tests run several brokers on a two-core machine.
JVM_OPTIONS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]
MIN_JAVA = {"zookeeper": 11, "kraft": 17}
NAMES = {"zookeeper": "Kafka 3.9 + ZooKeeper", "kraft": "Kafka 4 (KRaft)"}


def java_binary() -> str:
    """JAVA_HOME's java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home, "bin", "java") if home else None
    if candidate and candidate.is_file():
        return str(candidate)
    return shutil.which("java") or ""


def java_major_version(java: str) -> int:
    output = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    version = output.split('"')[1] if '"' in output else "0"
    parts = version.split(".")
    return int(parts[1] if parts[0] == "1" else parts[0].split("-")[0])


def missing(line: str) -> str | None:
    """One line saying what stops this broker line from starting here, or None when nothing does."""
    java = java_binary()
    if not java:
        return f"{NAMES[line]} needs Java {MIN_JAVA[line]}+ and none was found (set JAVA_HOME or put java on PATH)."
    if java_major_version(java) < MIN_JAVA[line]:
        return f"{NAMES[line]} needs Java {MIN_JAVA[line]}+; {java} is older."
    if not (JARS_DIR / line / "lib" / ".resolved").exists():
        return f"{NAMES[line]}'s jars are not in {JARS_DIR / line / 'lib'}: run make kafka-jars."
    return None


# Loaded here, not in the forked child: between fork and exec the child should do as little as it can.
# Linux only; elsewhere (a Mac) a broker outlives a Python process killed by SIGKILL.
_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: a SIGTERM when the Python process that started it dies, even by SIGKILL."""
    if _PRCTL is not None:  # started with it only where it exists; the check is for the type checker
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM))


@dataclass
class JvmProcess:
    """One JVM of a broker line, its output and log in `logs_dir`."""

    line: str
    main_class: str
    args: list[str]
    logs_dir: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        if self.line == "kraft":
            logging = f"-Dlog4j2.configurationFile={MAVEN_DIR / 'kraft' / 'log4j2.xml'}"
        else:
            logging = f"-Dlog4j.configuration=file:{MAVEN_DIR / 'zookeeper' / 'log4j.properties'}"
        classpath = str(JARS_DIR / self.line / "lib" / "*")
        return [
            java_binary(),
            *JVM_OPTIONS,
            logging,
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            classpath,
            self.main_class,
            *self.args,
        ]

    def run(self, timeout_s: float = 120) -> None:
        """Run to completion (e.g. formatting storage); a failure raises BrokerError with its output."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(self.command(), capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise BrokerError(f"{self.main_class} failed: {(result.stdout + result.stderr).strip()[-500:]}")

    def start(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.logs_dir / "stdout.log", "ab") as output:
            # Its own session: a Ctrl+C in the terminal reaches pytest, which stops brokers in order.
            self.process = subprocess.Popen(
                self.command(),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent if _PRCTL else None,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_message(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        return f"{self.main_class} exited with code {self.process.returncode}; its log is in {self.logs_dir}"

    def terminate(self) -> None:
        if self.process is not None and self.running:
            self.process.terminate()

    def kill(self) -> None:
        """SIGKILL, as a crash: no controlled shutdown."""
        if self.process is not None and self.running:
            self.process.kill()
            self.process.wait()

    def wait_stopped(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class JvmKafka:
    """What every real broker shares: start, wait until it answers, stop; a context manager."""

    line = "kraft"
    expected_brokers = 1

    def __init__(self, port: int | None = None, startup_timeout_s: float = 120.0, stop_timeout_s: float = 30.0):
        self.port = port or free_port()
        self.ports = [self.port]
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.processes: list[JvmProcess] = []
        self._data: tempfile.TemporaryDirectory | None = None
        self.logs_dir: Path | None = None

    @property
    def name(self) -> str:
        return NAMES[self.line]

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> Self:
        problem = missing(self.line)
        if problem:
            raise BrokerError(problem)
        if not all(map(port_is_free, self.ports)):
            raise BrokerError(f"Port {self.port} on {HOST} is already in use: is a broker already running?")
        self._data = tempfile.TemporaryDirectory(prefix=f"pm25-{self.line}-")
        LOGS_DIR.mkdir(parents=True, exist_ok=True)
        self.logs_dir = Path(tempfile.mkdtemp(prefix=f"{type(self).__name__}-{time.strftime('%H%M%S')}-", dir=LOGS_DIR))
        try:
            self._start(Path(self._data.name))
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, data_dir: Path) -> None:
        raise NotImplementedError

    def _wait_until_ready(self) -> None:
        try:
            wait_until(self._answers, self.startup_timeout_s, f"{self.name} to answer")
        except WaitedInVain as error:
            raise BrokerError(f"{error} Logs: {self.logs_dir}") from None

    def _answers(self) -> bool:
        """Whether a metadata request finds every broker registered, not just an open port."""
        for process in self.processes:
            if process.exit_message():
                raise BrokerError(f"{self.name} did not start: {process.exit_message()}")
        try:
            with KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000, bootstrap_timeout_ms=5000
            ) as admin:
                return len(admin.describe_cluster()["brokers"]) >= self.expected_brokers
        except KafkaError:
            return False

    def stop(self) -> None:
        """SIGTERM to the brokers (a controlled shutdown), then to what they depend on; SIGKILL past the deadline."""
        deadline = time.monotonic() + self.stop_timeout_s
        for group in self._stop_order():
            for process in group:
                process.terminate()
            for process in group:
                process.wait_stopped(deadline)
        self.processes = []
        if self._data is not None:
            self._data.cleanup()
            self._data = None

    def _stop_order(self) -> list[list[JvmProcess]]:
        return [self.processes]

    @property
    def running(self) -> bool:
        return bool(self.processes) and all(process.running for process in self.processes)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None):
        self.stop()
