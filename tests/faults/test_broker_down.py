"""No broker at all, and a broker that goes away while step 2 sends."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError
from nbclient.exceptions import CellExecutionError

from pm25.brokers.embedded import EmbeddedBroker, free_port
from pm25.data import contract
from pm25.polling import wait_until
from pm25.streaming import delivery, sending, topics
from tests.faults.support import (
    consumer_script,
    data_folder,
    random_walk_stream,
    readings_csv,
    script_env,
    start_script,
)
from tests.notebooks import execute_notebook

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# The clients exactly as the notebooks create them (step 2 cells 6 and 10, step 3 cell 6).
PRODUCER_OPTIONS = dict(
    key_serializer=contract.KeySerializer(),
    value_serializer=contract.ReadingSerializer(),
    acks="all",
    enable_idempotence=True,
    linger_ms=20,
    bootstrap_timeout_ms=10_000,
    request_timeout_ms=10_000,
    delivery_timeout_ms=20_000,
)
CONSUMER_OPTIONS = dict(
    group_id="pm25-detector-test",
    enable_auto_commit=False,
    auto_offset_reset="earliest",
    session_timeout_ms=6000,
    bootstrap_timeout_ms=10_000,
)


def _fails_without_broker(make_client) -> tuple[float, str]:
    """Create a client the notebook's way; how long it took to fail, and what the notebook then says."""
    dead = f"127.0.0.1:{free_port()}"  # a port nobody listens on: connections are refused at once
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError):
        make_client([dead])
    return time.monotonic() - started, str(sending.NoBroker(dead))


def test_clients_created_without_a_broker_fail_within_seconds_with_a_way_out(figures):
    makers = {
        "admin": lambda servers: KafkaAdminClient(bootstrap_servers=servers, bootstrap_timeout_ms=10_000),
        "producer": lambda servers: KafkaProducer(bootstrap_servers=servers, **PRODUCER_OPTIONS),
        "consumer": lambda servers: KafkaConsumer(bootstrap_servers=servers, **CONSUMER_OPTIONS),
    }
    with ThreadPoolExecutor(len(makers)) as pool:
        results = dict(zip(makers, pool.map(_fails_without_broker, makers.values()), strict=True))
    figures.faults_injected += len(makers)
    for name, (seconds, message) in results.items():
        assert 5 <= seconds <= 15, f"{name} gave up after {seconds:.1f} s"
        assert "`make lab`" in message and "`docker compose up -d`" in message


def test_the_notebooks_name_the_way_to_start_a_broker_when_there_is_none(tmp_path, figures, processes):
    dead = f"127.0.0.1:{free_port()}"
    readings = random_walk_stream(2, 5, seed=1)
    (tmp_path / "pm25_readings.csv").write_text(readings_csv(readings), encoding="utf-8")
    data_folder(tmp_path, readings)
    env = dict(KAFKA_BOOTSTRAP_SERVERS=dead, PM25_DATA_DIR=str(tmp_path), PM25_TOPIC="nowhere")
    log = tmp_path / "step3.log"
    step3 = start_script(consumer_script(tmp_path), script_env(**env), log)
    processes.append(step3)
    started = time.monotonic()
    with pytest.raises(CellExecutionError) as failure:
        execute_notebook("step_2_producer.ipynb", env, timeout_s=60)
    step2_seconds = time.monotonic() - started
    wait_until(lambda: step3.poll() is not None, 30, "step 3 to give up")
    figures.faults_injected += 2
    for name, text in (("step 2", str(failure.value)), ("step 3", log.read_text())):
        assert f"No Kafka broker answers at {dead}" in text, f"{name} said:\n{text[-2000:]}"
        assert "`make lab`" in text and "`docker compose up -d`" in text
    assert step3.returncode != 0
    assert step2_seconds < 40, f"step 2 took {step2_seconds:.0f} s to give up (a kernel start plus 10 s)"


def test_a_broker_stopped_mid_send_makes_the_report_count_failures_and_close_returns(figures):
    readings = random_walk_stream(10, 200, seed=5)
    broker = EmbeddedBroker().start()
    try:
        with KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers) as admin:
            print(topics.ensure_topic(admin, "pm25_stream"))
        producer = KafkaProducer(bootstrap_servers=[broker.bootstrap_servers], **PRODUCER_OPTIONS)
        report = delivery.DeliveryReport(show_first=0)
        for reading in readings[:200]:
            report.track(producer.send("pm25_stream", key=reading.key, value=reading), reading)
        producer.flush(timeout=30)
        assert report.acknowledged == 200

        # Keep sending from the loop's thread while the broker goes away.
        stopped = threading.Event()
        sent_after_stop = 0

        def send_loop():
            nonlocal sent_after_stop
            for reading in readings[200:]:
                was_stopped = stopped.is_set()
                report.track(producer.send("pm25_stream", key=reading.key, value=reading), reading)
                sent_after_stop += was_stopped
                time.sleep(0.005)  # the pace of a replay, so the stop lands mid-loop

        sender = threading.Thread(target=send_loop)
        sender.start()
        wait_until(lambda: report.sent >= 250, 30, "the loop to send 50 more")
        broker.stop()
        stopped.set()
        sender.join(timeout=60)
        assert not sender.is_alive(), "producer.send() blocked after the broker stopped"
    finally:
        broker.stop()
    figures.faults_injected += 1
    started = time.monotonic()
    delivery.flush_and_close(producer)  # the notebook's finally: it must neither raise nor hang
    closing_s = time.monotonic() - started
    assert closing_s <= 60, f"flush and close took {closing_s:.0f} s"  # a 40 s flush, then a forced close
    assert sent_after_stop > 0
    assert report.sent == len(readings)
    assert report.acknowledged + report.failed == report.sent, report.summary()  # none left unanswered
    assert report.acknowledged >= 200
    assert report.failed >= sent_after_stop, "a message sent after the broker stopped was acknowledged"
    figures.messages_lost += 0  # every message is accounted for: acknowledged or reported as failed


def test_flush_and_close_closes_a_producer_whose_messages_stay_unanswered(figures):
    # Messages that outlive the flush's wait, as kafka-python 3.0.12's idempotent producer can leave them
    # when its broker is gone: here made certain by a delivery timeout longer than the wait.
    readings = random_walk_stream(3, 4, seed=7)
    broker = EmbeddedBroker().start()
    try:
        with KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers) as admin:
            topics.ensure_topic(admin, "pm25_stream")
        options = {**PRODUCER_OPTIONS, "delivery_timeout_ms": 120_000}
        producer = KafkaProducer(bootstrap_servers=[broker.bootstrap_servers], **options)
        report = delivery.DeliveryReport(show_first=0)
        report.track(producer.send("pm25_stream", key=readings[0].key, value=readings[0]), readings[0])
        producer.flush(timeout=30)
    finally:
        broker.stop()
    for reading in readings[1:]:
        report.track(producer.send("pm25_stream", key=reading.key, value=reading), reading)
    figures.faults_injected += 1

    delivery.flush_and_close(producer, timeout_s=1)

    producer.close(timeout=1)  # what its __del__ and its exit hook do: raised KafkaTimeoutError while still open
    assert report.acknowledged == 1
    assert report.failed == len(readings) - 1, report.summary()
    assert "Producer is closed forcefully" in report.summary()
