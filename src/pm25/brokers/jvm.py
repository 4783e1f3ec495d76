"""Real Apache Kafka for tests and instructors with Java: the Docker stack's brokers as JVM processes.

    python -m pm25.brokers.jvm zookeeper|kraft|cluster [--port 9092]

`make kafka-jars` resolves the jars from Maven Central into build/kafka/<line>/lib (maven/<line>/pom.xml
pins the versions the compose files run). Each class here is used like `EmbeddedBroker`: a context
manager that starts on 127.0.0.1 and free ports, waits until Kafka answers, logs to files under
build/kafka/logs and stops cleanly. Data lives in a temporary folder and goes with the broker.

- `ZooKeeperKafka`: ZooKeeper 3.8 + Kafka 3.9, as docker-compose.yml (Confluent Platform 7.9).
- `KRaftKafka`: Kafka 4 in KRaft mode, one process that is broker and controller, as docker-compose.kraft.yml.
- `KRaftCluster(3)`: three such processes, replication factor 3 and `min.insync.replicas=2`.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from pm25.brokers.embedded import HOST, BrokerError, EmbeddedBroker, free_port, port_is_free, serve

REPO_DIR = Path(__file__).resolve().parents[3]
MAVEN_DIR = REPO_DIR / "maven"
JARS_DIR = REPO_DIR / "build" / "kafka"
LOGS_DIR = JARS_DIR / "logs"

# The broker settings of docker-compose.yml and docker-compose.kraft.yml, listeners and ids aside
# (tests/test_broker.py compares them with the compose files).
COMPOSE_SETTINGS = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "min.insync.replicas": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
}
KRAFT_ONLY_SETTINGS = {
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}
# Three nodes: every internal topic on all of them, and a write needs two copies before it is acknowledged.
CLUSTER_SETTINGS = {
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "min.insync.replicas": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
    "default.replication.factor": "3",
}
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


def _write_properties(path: Path, settings: dict[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()), encoding="utf-8")
    return path


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
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.exit_message():
                    raise BrokerError(f"{self.name} did not start: {process.exit_message()}")
            try:
                # A metadata round trip with every broker registered, not just an open port.
                with KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000, bootstrap_timeout_ms=5000
                ) as admin:
                    if len(admin.describe_cluster()["brokers"]) >= self.expected_brokers:
                        return
            except KafkaError:
                pass
            time.sleep(0.5)  # polling interval while the JVMs start, not synchronisation
        raise BrokerError(f"{self.name} did not answer within {self.startup_timeout_s:.0f} s; logs: {self.logs_dir}")

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


class ZooKeeperKafka(JvmKafka):
    """ZooKeeper 3.8 and one Kafka 3.9 broker, as docker-compose.yml runs them (Confluent Platform 7.9)."""

    line = "zookeeper"

    def _start(self, data_dir: Path) -> None:
        assert self.logs_dir is not None  # start() made it
        zookeeper_port = free_port()
        zoo_cfg = _write_properties(
            data_dir / "zoo.cfg",
            {
                "dataDir": str(data_dir / "zookeeper"),
                "clientPort": str(zookeeper_port),
                "clientPortAddress": HOST,
                "tickTime": "2000",  # ZOOKEEPER_TICK_TIME in docker-compose.yml
                "admin.enableServer": "false",
            },
        )
        zookeeper = JvmProcess(
            self.line, "org.apache.zookeeper.server.quorum.QuorumPeerMain", [str(zoo_cfg)], self.logs_dir / "zookeeper"
        )
        server = _write_properties(
            data_dir / "server.properties",
            {
                "broker.id": "1",
                "zookeeper.connect": f"{HOST}:{zookeeper_port}",
                "listeners": f"PLAINTEXT://{self.bootstrap_servers}",
                "log.dirs": str(data_dir / "kafka"),
                **COMPOSE_SETTINGS,
            },
        )
        kafka = JvmProcess(self.line, "kafka.Kafka", [str(server)], self.logs_dir / "kafka")
        self.processes = [zookeeper, kafka]
        zookeeper.start()
        kafka.start()  # it retries ZooKeeper until it answers

    def _stop_order(self) -> list[list[JvmProcess]]:
        # The broker's controlled shutdown needs ZooKeeper.
        return [self.processes[1:], self.processes[:1]]


@dataclass
class SaslTls:
    """A SASL_SSL listener with SCRAM-SHA-512 users, its certificate in a PKCS#12 keystore."""

    keystore: Path
    keystore_password: str
    users: dict[str, str]
    port: int = field(default_factory=free_port)


class KRaftKafka(JvmKafka):
    """Kafka 4 in KRaft mode: `nodes` processes, each broker and controller, as docker-compose.kraft.yml."""

    line = "kraft"

    def __init__(self, nodes: int = 1, sasl_tls: SaslTls | None = None, **options):
        super().__init__(**options)
        self.nodes = nodes
        self.expected_brokers = nodes
        self.sasl_tls = sasl_tls
        self.ports = [self.port] + [free_port() for _ in range(nodes - 1)]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{HOST}:{port}" for port in self.ports)

    @property
    def sasl_tls_bootstrap_servers(self) -> str:
        assert self.sasl_tls is not None, "this cluster was made without sasl_tls"
        return f"{HOST}:{self.sasl_tls.port}"

    def _node_settings(self, node_id: int, data_dir: Path, voters: str, controller_port: int) -> dict[str, str]:
        port = self.ports[node_id - 1]
        listeners = {"PLAINTEXT": f"{HOST}:{port}", "CONTROLLER": f"{HOST}:{controller_port}"}
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
        settings = {}
        if self.sasl_tls:
            listeners["SASL_SSL"] = f"{HOST}:{self.sasl_tls.port}"
            protocols["SASL_SSL"] = "SASL_SSL"
            settings = {
                "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": str(self.sasl_tls.keystore),
                "ssl.keystore.password": self.sasl_tls.keystore_password,
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                ),
            }
        return {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": ",".join(f"{name}://{address}" for name, address in listeners.items()),
            "advertised.listeners": ",".join(
                f"{name}://{address}" for name, address in listeners.items() if name != "CONTROLLER"
            ),
            "listener.security.protocol.map": ",".join(f"{name}:{kind}" for name, kind in protocols.items()),
            "log.dirs": str(data_dir / f"node{node_id}"),
            **COMPOSE_SETTINGS,
            **KRAFT_ONLY_SETTINGS,
            **(CLUSTER_SETTINGS if self.nodes > 1 else {}),
            **settings,
        }

    def _start(self, data_dir: Path) -> None:
        assert self.logs_dir is not None  # start() made it
        controller_ports = [free_port() for _ in range(self.nodes)]
        voters = ",".join(f"{node}@{HOST}:{port}" for node, port in enumerate(controller_ports, start=1))
        cluster_id = uuid.uuid4().hex[:22]
        scram = [
            f"--add-scram=SCRAM-SHA-512=[name={name},password={password}]"
            for name, password in (self.sasl_tls.users.items() if self.sasl_tls else ())
        ]
        for node_id in range(1, self.nodes + 1):
            properties = _write_properties(
                data_dir / f"node{node_id}.properties",
                self._node_settings(node_id, data_dir, voters, controller_ports[node_id - 1]),
            )
            logs = self.logs_dir / f"node{node_id}"
            JvmProcess(
                self.line,
                "kafka.tools.StorageTool",
                ["format", "--ignore-formatted", "-t", cluster_id, "-c", str(properties), *scram],
                logs,
            ).run()
            self.processes.append(JvmProcess(self.line, "kafka.Kafka", [str(properties)], logs))
        for process in self.processes:
            process.start()

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node, as a crash."""
        self.processes[node_id - 1].kill()


def KRaftCluster(nodes: int = 3, **options) -> KRaftKafka:
    """Kafka 4 KRaft nodes that are each broker and controller: RF 3, `min.insync.replicas=2`."""
    return KRaftKafka(nodes=nodes, **options)


BROKERS: dict[str, Callable[..., JvmKafka]] = {
    "zookeeper": ZooKeeperKafka,
    "kraft": KRaftKafka,
    "cluster": KRaftCluster,
}
SESSION_BROKERS = ("embedded", "zookeeper", "kraft")


def session_broker(choice: str | None) -> EmbeddedBroker | JvmKafka:
    """The broker PM25_BROKER names for a test session (not started yet): embedded unless told otherwise."""
    choice = (choice or "embedded").strip().lower()
    if choice not in SESSION_BROKERS:
        raise BrokerError(f"PM25_BROKER={choice!r} is not one of {', '.join(SESSION_BROKERS)}.")
    return EmbeddedBroker() if choice == "embedded" else BROKERS[choice]()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run real Apache Kafka on 127.0.0.1 (data in a temporary folder).")
    parser.add_argument("kind", choices=sorted(BROKERS), help="zookeeper: Kafka 3.9 + ZooKeeper; kraft: Kafka 4")
    parser.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092)")
    args = parser.parse_args(argv)
    return serve(
        BROKERS[args.kind](port=args.port),
        lambda broker: (
            f"{broker.name} ready. Bootstrap servers: {broker.bootstrap_servers}\n"
            f"Logs: {broker.logs_dir}. Press Ctrl+C to stop it."
        ),
        lambda broker: f"{broker.name} stopped by itself; logs: {broker.logs_dir}",
    )


if __name__ == "__main__":
    sys.exit(main())
