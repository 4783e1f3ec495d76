"""■ during JupyterLab's Run All: the interrupted loop cell ends as an error, so the kernel aborts every cell
queued after it (none closes the consumer or overwrites alerts.csv with a partial one), and running the cell
again goes on where it stopped.

A real kernel gets every cell at once, as JupyterLab sends them; the test's only addition is one cell before
the loop that says when the loop is in the middle (interrupt_when_reached) and the kernel's own interrupt.
"""

from __future__ import annotations

import json

import pytest

from tests.faults.support import (
    CLOSE_CELL,
    LOOP_CELL,
    QueuedKernel,
    committed_total,
    create_topic,
    data_folder,
    interrupt_when_reached,
    produce,
    random_walk_stream,
    read_topic,
    readings_csv,
)

pytestmark = pytest.mark.faults

BOXES, STEPS = 12, 150


def interrupt_mid_run(kernel: QueuedKernel, cell: str) -> dict:
    """Run All, ■ once `reached()` says so; the interrupted cell's reply. Every cell after it must be aborted."""
    requests = kernel.run_all()
    kernel.wait_for("INTERRUPT NOW", 300)
    kernel.manager.interrupt_kernel()
    stopped = kernel.index(cell)
    replies = [kernel.reply(request) for request in requests]
    assert [reply["status"] for reply in replies[:stopped]] == ["ok"] * stopped, kernel.all_printed()[-3000:]
    assert replies[stopped]["status"] == "error" and replies[stopped]["ename"] == "StoppedByYou", replies[stopped]
    later = [reply["status"] for reply in replies[stopped + 1 :]]
    assert later == ["aborted"] * len(later), "a cell queued after the interrupted one ran"
    shown = kernel.printed.get(requests[stopped], "")
    assert shown.count("\n■ Stopped by you") + shown.startswith("■ Stopped by you") == 1
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown, shown
    return replies[stopped]


def test_stop_during_run_all_stops_step_3_and_the_loop_cell_goes_on_when_run_again(
    bootstrap_servers, topic, tmp_path, figures
):
    stream = random_walk_stream(BOXES, STEPS, seed=5)
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, stream)
    (tmp_path / "pm25_readings.csv").write_text(readings_csv(stream), encoding="utf-8")
    data_folder(tmp_path, stream)
    group = f"{topic}_group"
    env = dict(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        PM25_TOPIC=topic,
        PM25_ALERT_TOPIC=f"{topic}_alerts",
        PM25_DATA_DIR=str(tmp_path),
        PM25_CONSUMER_GROUP=group,
        PM25_IDLE_TIMEOUT_S="3",
    )
    halfway = len(stream) // 2
    patch = (
        "from pm25.rules.detector import Detector\n"
        "_process, _calls = Detector.process, [0]\n"
        "def _counted(self, reading):\n"
        "    _calls[0] += 1\n"
        f"    if _calls[0] == {halfway}:\n"
        "        reached()\n"
        "    return _process(self, reading)\n"
        "Detector.process = _counted\n"
    )
    kernel = QueuedKernel("step_3_event_processing.ipynb", env, insert={LOOP_CELL: interrupt_when_reached(patch)})
    try:
        interrupt_mid_run(kernel, LOOP_CELL)
        figures.faults_injected += 1
        assert not (tmp_path / "output" / "alerts.csv").exists(), "the cell that writes alerts.csv ran"
        # What was processed before ■ is committed at once: a long pause does not make the group re-read it.
        assert halfway <= committed_total(bootstrap_servers, group, topic) < len(stream)

        assert kernel.run(LOOP_CELL)["status"] == "ok"  # "Run this cell again to go on where it stopped"
        request = kernel.client.execute("print(json.dumps(dict(detector.counts)))")
        kernel.reply(request)
        counts = json.loads(kernel.printed[request])
        assert counts["processed"] == len(stream) and counts["duplicates"] == counts["late"] == 0, counts
        assert committed_total(bootstrap_servers, group, topic) == len(stream)
        assert kernel.run(CLOSE_CELL)["status"] == "ok"
    finally:
        kernel.shutdown()


def test_stop_during_run_all_stops_step_2_after_its_send_cell(bootstrap_servers, topic, tmp_path, figures):
    stream = random_walk_stream(5, 100, seed=6)
    (tmp_path / "pm25_readings.csv").write_text(readings_csv(stream), encoding="utf-8")
    data_folder(tmp_path, stream)
    env = dict(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        PM25_TOPIC=topic,
        PM25_DATA_DIR=str(tmp_path),
        PM25_PRODUCER_MODE="bulk",
    )
    patch = (
        "from kafka import KafkaProducer\n"
        "_send, _calls = KafkaProducer.send, [0]\n"
        "def _counted(self, *args, **kwargs):\n"
        "    _calls[0] += 1\n"
        "    if _calls[0] == 200:\n"
        "        reached()\n"
        "    return _send(self, *args, **kwargs)\n"
        "KafkaProducer.send = _counted\n"
    )
    send_cell = "send-loop"
    kernel = QueuedKernel("step_2_producer.ipynb", env, insert={send_cell: interrupt_when_reached(patch)})
    try:
        interrupt_mid_run(kernel, send_cell)
        figures.faults_injected += 1
        # The producer was flushed and closed before the error: what was sent is in the topic and acknowledged.
        assert kernel.run("delivery-summary")["status"] == "ok"  # the next cell, as the message says
        request = kernel.client.execute("print(report.sent, report.acknowledged)")
        kernel.reply(request)
        sent, acknowledged = map(int, kernel.printed[request].split())
        assert sent == acknowledged == len(read_topic(bootstrap_servers, topic)) == 200
    finally:
        kernel.shutdown()
