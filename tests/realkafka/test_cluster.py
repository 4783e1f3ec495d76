"""The three-node KRaft cluster: a partition's leader dies while step 2's producer sends with acks=all."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from pm25.jvm_brokers import KRaftCluster
from pm25.producing import PRODUCER_SETTINGS
from tests.faults.support import read_topic, wait_until

pytestmark = pytest.mark.realkafka
SENT, PARTITIONS = 6000, 3


def leader_of(admin: KafkaAdminClient, topic: str, partition: int) -> int:
    description = admin.describe_topics([topic])[0]
    return next((p["leader_id"] for p in description["partitions"] if p["partition_index"] == partition), -1)


def test_killing_a_partition_leader_while_sending_loses_no_acknowledged_reading(kraft_only, topic, report):
    with KRaftCluster(3) as cluster, KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers) as admin:
        admin.create_topics([NewTopic(topic, PARTITIONS, replication_factor=3)])
        wait_until(lambda: leader_of(admin, topic, 0) >= 0, 30, "partition 0 to have a leader")
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, **PRODUCER_SETTINGS)
        futures, killed = [], None
        for number in range(SENT):
            futures.append(producer.send(topic, key=f"box{number % 30}".encode(), value=str(number).encode()))
            if number == SENT // 3:  # batches are in flight: the producer has not waited for any
                killed = leader_of(admin, topic, 0)
                cluster.kill_node(killed)
        producer.flush(timeout=60)
        retries = producer.metrics()["producer-metrics"].get("record-retry-total", "n/a")
        producer.close()
        acknowledged = {n for n, f in enumerate(futures) if f.succeeded()}
        failed = [f.exception for f in futures if f.failed()]
        new_leader = wait_until(lambda: (leader := leader_of(admin, topic, 0)) not in (killed, -1) and leader, 30,
                                "partition 0 to get a new leader")
        consumed = [int(record.value) for record in read_topic(cluster.bootstrap_servers, topic)]
    lost = acknowledged - set(consumed)
    report(f"[realkafka cluster] sent {SENT}, acknowledged {len(acknowledged)}, failed {len(failed)} "
          f"({set(map(type, failed)) or 'none'}), retried {retries}; leader of partition 0: node {killed} killed, "
          f"node {new_leader} took over; consumed {len(consumed)} ({len(consumed) - len(set(consumed))} twice), "
          f"lost {len(lost)}")
    assert not lost, f"acknowledged but not consumed: {sorted(lost)[:10]}"
    assert len(acknowledged) == SENT, f"{len(failed)} sends failed: {failed[:3]}"
    assert len(consumed) == len(set(consumed)), "the idempotent producer wrote a reading twice"
