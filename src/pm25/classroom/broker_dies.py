"""When a broker dies: three Kafka 4 nodes, and the leader of a partition is killed while step 2's producer
sends (acks="all", idempotent) and a consumer group reads. The leader moves, the in-sync replicas shrink,
nothing acknowledged is lost.

    make broker-dies        (Java 17+ and make kafka-jars; TEACHERS.md, "When a broker dies")

tests/realkafka/test_cluster.py runs the same `run()` and checks its counts.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from pm25.brokers.embedded import BrokerError
from pm25.brokers.jvm import KRaftCluster, KRaftKafka
from pm25.polling import WaitedInVain, wait_until
from pm25.streaming.sending import PRODUCER_SETTINGS

PARTITIONS = 3
Leaders = dict[int, tuple[int, list[int]]]  # partition -> (its leader, -1 for none; its in-sync replicas)


def partitions(admin: KafkaAdminClient, topic: str) -> Leaders:
    """Each partition's leader (-1: none) and in-sync replicas, as the cluster's metadata says now."""
    description = admin.describe_topics([topic])[0]
    return {p["partition_index"]: (p["leader_id"], sorted(p["isr_nodes"])) for p in description["partitions"]}


def state_once(admin: KafkaAdminClient, topic: str, holds: Callable[[Leaders], bool]) -> Callable[[], Leaders | None]:
    """A condition to wait on: the partitions' leaders and in-sync replicas, once `holds` is true of them."""

    def condition() -> Leaders | None:
        state = partitions(admin, topic)
        return state if state and holds(state) else None

    return condition


def describe(state: Leaders) -> str:
    return "; ".join(
        f"partition {number}: leader {leader}, in sync {isr}" for number, (leader, isr) in sorted(state.items())
    )


@dataclass
class Outcome:
    sent: int
    killed: int
    new_leader: int
    before: Leaders
    after: Leaders
    acknowledged: set[int] = field(default_factory=set)
    failed: list[BaseException] = field(default_factory=list)
    settled_s: float = 0.0  # from the kill until every send was acknowledged or failed
    consumed: list[int] = field(default_factory=list)  # each record once, even if the group read it again
    read_again: int = 0

    @property
    def lost(self) -> set[int]:
        return self.acknowledged - set(self.consumed)

    def summary(self) -> str:
        twice = len(self.consumed) - len(set(self.consumed))
        return (
            f"Sent {self.sent:,}, acknowledged {len(self.acknowledged):,}, failed {len(self.failed)}, "
            f"all settled {self.settled_s:.1f} s after the kill; consumed {len(self.consumed):,} "
            f"({twice} stored twice, {self.read_again} read again after a rebalance); lost {len(self.lost)}."
        )


class GroupReader(threading.Thread):
    """Step 3's consumer, cut down: a group member that reads from the start and commits after each poll."""

    def __init__(self, bootstrap_servers: str, topic: str):
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap_servers,
            group_id=f"{topic}_readers",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.values: dict[tuple[int, int], int] = {}  # by (partition, offset): a record read again counts once
        self.read_again = 0
        self.enough = threading.Event()
        self.target: int | None = None

    def has_all(self) -> bool:
        return self.target is not None and len(set(self.values.values())) >= self.target

    def run(self) -> None:
        try:
            while not self.enough.is_set() and not self.has_all():
                batches = self.consumer.poll(timeout_ms=500)
                for record in (record for batch in batches.values() for record in batch):
                    self.read_again += (record.partition, record.offset) in self.values
                    self.values[record.partition, record.offset] = int(record.value)
                if batches:
                    self.consumer.commit()
        finally:
            self.consumer.close()


def run(
    cluster: KRaftKafka,
    sent: int = 6000,
    rate_per_s: float = 2000,
    say: Callable[[str], None] = print,
    topic: str | None = None,
) -> Outcome:
    """Send `sent` readings at `rate_per_s` while a group reads them; kill partition 0's leader after a third."""
    topic = topic or f"broker_dies_{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers) as admin:
        admin.create_topics([NewTopic(topic, PARTITIONS, replication_factor=cluster.nodes)])
        before = wait_until(
            state_once(admin, topic, lambda state: all(leader >= 0 for leader, _ in state.values())),
            30,
            f"every partition of {topic} to have a leader",
        )
        say(f"Topic {topic}: {PARTITIONS} partitions, {cluster.nodes} copies each.\nBefore: {describe(before)}")
        reader = GroupReader(cluster.bootstrap_servers, topic)
        reader.start()
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, **PRODUCER_SETTINGS)
        say(f'Sending {sent:,} readings at {rate_per_s:,.0f}/s with acks="all" while a consumer group reads them.')
        futures, killed, started = [], -1, time.monotonic()
        killed_at = started
        for number in range(sent):
            pause = started + number / rate_per_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing at a fixed rate, as step 2's replay does; not synchronisation
            futures.append(producer.send(topic, key=f"box{number % 30}".encode(), value=str(number).encode()))
            if number == sent // 3:  # batches are in flight: the producer has not waited for any
                killed = partitions(admin, topic)[0][0]
                cluster.kill_node(killed)
                killed_at = time.monotonic()
                say(f"Killed node {killed} (SIGKILL), the leader of partition 0, after {number:,} sends.")
        producer.flush(timeout=60)
        outcome = Outcome(
            sent,
            killed,
            -1,
            before,
            {},
            acknowledged={n for n, future in enumerate(futures) if future.succeeded()},
            failed=[future.exception for future in futures if future.failed()],
            settled_s=time.monotonic() - killed_at,
        )
        producer.close()
        outcome.after = wait_until(
            state_once(
                admin,
                topic,
                lambda state: state[0][0] not in (killed, -1) and all(killed not in isr for _, isr in state.values()),
            ),
            60,
            f"partition 0 to get a new leader and node {killed} to leave the in-sync replicas",
        )
        outcome.new_leader = outcome.after[0][0]
        say(f"After:  {describe(outcome.after)}")
        reader.target = len(outcome.acknowledged)
        reader.join(timeout=60)
        reader.enough.set()
        reader.join()
        outcome.consumed, outcome.read_again = list(reader.values.values()), reader.read_again
    say(outcome.summary())
    return outcome


def main() -> int:
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # its reconnect warnings: the demo says what happened
    print("Starting three Kafka 4 nodes (KRaft, min.insync.replicas=2) on 127.0.0.1...", flush=True)
    try:
        with KRaftCluster(3) as cluster:
            print(f"Cluster ready: {cluster.bootstrap_servers}; logs: {cluster.logs_dir}", flush=True)
            outcome = run(cluster, say=lambda line: print(line, flush=True))
    except (BrokerError, WaitedInVain) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return 0 if not outcome.lost and not outcome.failed else 1


if __name__ == "__main__":
    sys.exit(main())
