"""Real Apache Kafka for tests and instructors with Java: the Docker stack's brokers as JVM processes.

    python -m pm25.brokers.jvm zookeeper|kraft|cluster [--port 9092]

`make kafka-jars` resolves the jars from Maven Central into build/kafka/<line>/lib (maven/<line>/pom.xml
pins the versions the compose files run). Each class here is used like `EmbeddedBroker`: a context
manager that starts on 127.0.0.1 and free ports, waits until Kafka answers, logs to files under
build/kafka/logs and stops cleanly. Data lives in a temporary folder and goes with the broker. What every
line shares, Java, the jars and the JVM processes, is in pm25.brokers.jvm_process.

- `ZooKeeperKafka`: ZooKeeper 3.8 + Kafka 3.9, as docker-compose.yml (Confluent Platform 7.9).
- `KRaftKafka`: Kafka 4 in KRaft mode, one process that is broker and controller, as docker-compose.kraft.yml.
- `KRaftCluster(3)`: three such processes, replication factor 3 and `min.insync.replicas=2`.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pm25.brokers.embedded import HOST, BrokerError, EmbeddedBroker, free_port, serve
from pm25.brokers.jvm_process import JvmKafka, JvmProcess

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


def _write_properties(path: Path, settings: dict[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()), encoding="utf-8")
    return path


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
