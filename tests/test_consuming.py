"""Step 3's decode of one Kafka record: what only the record (not its value alone) can tell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from kafka import TopicPartition

from pm25.data import contract
from pm25.data.contract import Reading
from pm25.streaming import codec, commits, poll_loop

BOX = "a" * 24
MOMENT = datetime(2023, 2, 26, 12, tzinfo=UTC)


def record(key: bytes | None, box_id: str = BOX) -> SimpleNamespace:
    value = contract.encode(Reading(box_id, "Alpha", "b" * 24, 52.5, 13.4, MOMENT, 20.0))
    sent_ms = int((MOMENT + timedelta(seconds=1)).timestamp() * 1000)
    return SimpleNamespace(topic="t", partition=0, offset=0, key=key, value=value, timestamp=sent_ms)


def test_a_record_keyed_by_its_box_id_is_a_reading():
    assert codec.decode(record(BOX.encode())).box_id == BOX


@pytest.mark.parametrize("key", [b"c" * 24, None, b"\xff\xfe"], ids=["another box", "no key", "not UTF-8"])
def test_a_record_whose_key_is_not_its_box_id_is_rejected_with_the_reason(key):
    """The key decides the partition: a box's readings under another key (or none) land on another
    partition, out of order with the rest of the box, and in a group two members would judge one box."""
    with pytest.raises(contract.InvalidMessage, match=f"is not the boxId {BOX}"):
        codec.decode(record(key))


def test_the_members_summary_says_how_many_messages_it_processed_again():
    """A rebalance makes a member re-read a partition from its start: "read N messages" counted those twice."""
    offsets = commits.ProcessedOffsets(SimpleNamespace(), None, lambda box_ids: None, topic_partitions=1)
    offsets.owned, offsets.joined = {TopicPartition("t", 0)}, True
    for offset in [0, 1, 2, 0, 1]:  # all three, then the first two again after a rebalance
        offsets.processed(SimpleNamespace(topic="t", partition=0, offset=offset), None)
    assert offsets.summary() == (
        "This member processed 3 messages from all 1 partitions, and 2 of them again (re-read after a rebalance "
        "to rebuild its windows)."
    )


def test_a_quiet_stream_shows_how_long_until_the_loop_stops_once_it_has_its_partitions(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(poll_loop.time, "monotonic", lambda: now[0])
    idle = poll_loop.IdleTimer(10)
    joined = SimpleNamespace(joined=True, rebalancing=False, uncommitted=False, assignments=1)
    assert poll_loop._QuietLine.text(idle) == ""  # joining the group is not quiet
    idle.observe({}, joined)
    now[0] += 1
    assert poll_loop._QuietLine.text(idle) == ""  # a pause between batches
    now[0] += 3
    assert poll_loop._QuietLine.text(idle) == "No new readings for 4 s; stopping in 6 s (■ to stop now)."
    now[0] += 7
    assert idle.expired and poll_loop._QuietLine.text(idle) == ""
