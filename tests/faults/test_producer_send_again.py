"""Step 2's send cell as a learner meets it in JupyterLab, run cell by cell in one namespace: stopped with ■ in
`replay` mode and run again as its message says, and sending to a broker that went away."""

from __future__ import annotations

import io
import signal
import threading
from contextlib import redirect_stdout
from datetime import timedelta

import pytest
from kafka import KafkaProducer

from pm25.brokers.embedded import EmbeddedBroker
from pm25.errors import StoppedByYou
from pm25.polling import wait_until
from tests.faults.support import NotebookCells, data_folder, random_walk_stream, read_topic, readings_csv

pytestmark = [pytest.mark.faults, pytest.mark.slow]

PRODUCER_CELL = "production-producer"
SEND_CELL = "send-loop"
# 20 boxes every 10 minutes for 6 hours: 720 readings, replayed at the notebook's 3600x in 6 s.
REPLAY = dict(boxes=20, steps=36, seed=3, every=timedelta(minutes=10))


def step2(monkeypatch, tmp_path, readings, **settings: str) -> NotebookCells:
    (tmp_path / "pm25_readings.csv").write_text(readings_csv(readings), encoding="utf-8")
    data_folder(tmp_path, readings)
    for variable, value in {"PM25_DATA_DIR": str(tmp_path), "PM25_PRODUCER_MODE": "replay", **settings}.items():
        monkeypatch.setenv(variable, value)
    cells = NotebookCells("step_2_producer.ipynb")
    cells.run_before(SEND_CELL)
    return cells


def ctrl_c_at_send(monkeypatch, k: int) -> None:
    """SIGINT to this process (as ■ does to the kernel) right after the k-th producer.send()."""
    original, calls = KafkaProducer.send, [0]

    def send(self, *args, **kwargs):
        future = original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == k:
            signal.raise_signal(signal.SIGINT)
        return future

    monkeypatch.setattr(KafkaProducer, "send", send)


def test_replay_stopped_and_sent_again_as_the_message_says_sends_every_reading_from_the_first(
    bootstrap_servers, topic, tmp_path, monkeypatch, figures
):
    readings = random_walk_stream(**REPLAY)
    cells = step2(monkeypatch, tmp_path, readings, KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers, PM25_TOPIC=topic)
    with monkeypatch.context() as interrupted, pytest.raises(StoppedByYou) as stopped:
        ctrl_c_at_send(interrupted, 100)
        cells.run(SEND_CELL)
    figures.faults_injected += 1
    assert "Stopped by you after 100 messages" in str(stopped.value)
    assert "run the producer cell, then this one" in str(stopped.value)

    cells.run(PRODUCER_CELL)  # what the message asks for, and nothing else
    cells.run(SEND_CELL)
    assert cells["report"].sent == cells["report"].acknowledged == len(readings)
    assert len(read_topic(bootstrap_servers, topic)) == 100 + len(readings)


def test_a_broker_gone_mid_replay_stops_the_send_cell_with_one_line_saying_so(tmp_path, monkeypatch, figures):
    # 20 boxes every 10 minutes for 5 days: 14,400 readings, a 2-minute replay at 3600x.
    readings = random_walk_stream(20, 720, seed=4, every=timedelta(minutes=10))
    broker = EmbeddedBroker().start()
    try:
        cells = step2(monkeypatch, tmp_path, readings, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers)
        printed = io.StringIO()
        sending = threading.Thread(target=lambda: cells.run(SEND_CELL), daemon=True)
        with redirect_stdout(printed):
            sending.start()
            wait_until(lambda: "  acknowledged: " in printed.getvalue(), 60, "a first acknowledgement")
            broker.stop()
            sending.join(timeout=100)  # the whole replay would take 2 minutes, and longer with a broker gone
    finally:
        broker.stop()
    figures.faults_injected += 1
    assert not sending.is_alive(), f"the send cell still sends to a broker that is gone:\n{printed.getvalue()[-1500:]}"
    report = cells["report"]
    assert report.sent < len(readings)
    assert report.failed > 0
    stopped = [line for line in printed.getvalue().splitlines() if line.startswith("❌")]
    assert len(stopped) == 1, printed.getvalue()[-1500:]
    assert broker.bootstrap_servers in stopped[0] and "the report below" in stopped[0]
