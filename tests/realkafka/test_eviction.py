"""A member that stops without leaving its group (SIGSTOP: no heartbeat, no LeaveGroup) on real Kafka.

The broker evicts it once its session times out and gives its partitions to the other member; when it
resumes, its commit is refused (CommitFailedError) and it rejoins. Every reading is processed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from pm25.polling import wait_until
from tests.faults.support import committed_total, create_topic
from tests.realkafka.member import SESSION_TIMEOUT_MS

pytestmark = pytest.mark.realkafka
REPO = Path(__file__).resolve().parents[2]
PARTITIONS, SENT = 4, 1200


class Member:
    """tests/realkafka/member.py in a child process; its lines go to a file the test reads."""

    def __init__(self, name: str, tmp_path: Path, *args: str):
        self.output = tmp_path / f"{name}.log"
        with open(self.output, "w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.realkafka.member", *args],
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def lines(self) -> list[str]:
        return self.output.read_text().splitlines()

    def partitions(self) -> set[int]:
        """The partitions of its last assignment."""
        assigned = [line for line in self.lines() if line.startswith("assigned")]
        return {int(p) for p in assigned[-1].split()[1].split(",")} if assigned and assigned[-1].split()[1:] else set()

    def processed(self) -> list[tuple[int, int]]:
        return [tuple(map(int, line.split()[1:])) for line in self.lines() if line.startswith("processed ")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def test_a_stopped_member_is_evicted_after_its_session_timeout_and_nothing_is_lost(
    bootstrap_servers, topic, tmp_path, report
):
    create_topic(bootstrap_servers, topic, PARTITIONS)
    with KafkaProducer(bootstrap_servers=bootstrap_servers) as producer:
        for number in range(SENT):
            producer.send(topic, key=f"box{number % 40}".encode(), value=str(number).encode())
        producer.flush()
    group = f"{topic}_group"
    args = (bootstrap_servers, topic, group, "20")  # 20 ms a record: about 10 s of work per member
    stopped, other = Member("stopped", tmp_path, *args), Member("other", tmp_path, *args)
    try:
        wait_until(lambda: stopped.partitions() and other.partitions(), 60, "both members to have partitions")
        wait_until(lambda: len(stopped.processed()) >= 20, 30, "the first member to process some records")
        os.kill(stopped.process.pid, signal.SIGSTOP)
        paused = time.monotonic()
        wait_until(lambda: other.partitions() == set(range(PARTITIONS)), 60, "the other member to get every partition")
        evicted_after_s = time.monotonic() - paused
        os.kill(stopped.process.pid, signal.SIGCONT)
        wait_until(
            lambda: committed_total(bootstrap_servers, group, topic) == SENT,
            120,
            "the group to commit every record",
            every_s=0.5,
        )
        refused = [line for line in stopped.lines() if "The commit failed, polling goes on" in line]
        processed = stopped.processed() + other.processed()
        report(
            f"[realkafka eviction] sent {SENT}, processed {len(set(processed))} distinct "
            f"({len(processed) - len(set(processed))} twice), evicted {evicted_after_s:.1f} s after SIGSTOP "
            f"(session timeout {SESSION_TIMEOUT_MS / 1000:.0f} s), refused commits {len(refused)}: {refused[:1]}"
        )
    finally:
        stopped.stop()
        other.stop()
    # The broker waited for the session timeout (heartbeats every second: at most about 1 s early).
    assert SESSION_TIMEOUT_MS / 1000 - 1.5 <= evicted_after_s <= SESSION_TIMEOUT_MS / 1000 + 20
    assert refused, "the evicted member's commit was not refused:\n" + "\n".join(stopped.lines()[-20:])
    assert set(processed) == {(p, o) for p in range(PARTITIONS) for o in range(offsets(p, processed))}
    assert len(set(processed)) == SENT


def offsets(partition: int, processed: list[tuple[int, int]]) -> int:
    """The partition's end as the members saw it: one past the highest offset processed."""
    return 1 + max((offset for p, offset in processed if p == partition), default=-1)
