"""The three-node KRaft cluster: a partition's leader dies while step 2's producer sends with acks=all and a
consumer group reads (pm25.classroom.broker_dies, also `make broker-dies`)."""

from __future__ import annotations

import pytest

from pm25.brokers.jvm import KRaftCluster
from pm25.classroom import broker_dies

pytestmark = pytest.mark.realkafka
SENT = 6000


def test_killing_a_partition_leader_while_sending_loses_no_acknowledged_reading(kraft_only, topic, report):
    said = []
    with KRaftCluster(3) as cluster:
        outcome = broker_dies.run(cluster, sent=SENT, say=said.append, topic=topic)
    report(
        f"[realkafka cluster] {outcome.summary()} Failed: {set(map(type, outcome.failed)) or 'none'}; "
        f"leader of partition 0: node {outcome.killed} killed, node {outcome.new_leader} took over; "
        f"in sync before {outcome.before[0][1]}, after {outcome.after[0][1]}"
    )
    assert not outcome.lost, f"acknowledged but not consumed: {sorted(outcome.lost)[:10]}"
    assert len(outcome.acknowledged) == SENT, f"{len(outcome.failed)} sends failed: {outcome.failed[:3]}"
    assert len(outcome.consumed) == len(set(outcome.consumed)), "the idempotent producer wrote a reading twice"
    assert outcome.new_leader not in (outcome.killed, -1)
    assert all(outcome.killed not in isr for _, isr in outcome.after.values()), outcome.after
    assert said[-1].endswith("lost 0.") and any(f"Killed node {outcome.killed}" in line for line in said), said
