"""Two members of one consumer group share the partitions; when one leaves, the other takes them all."""

from __future__ import annotations

import re
import uuid
from types import SimpleNamespace

import nbformat
import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from pm25.errors import LearnerError
from pm25.polling import wait_until
from pm25.streaming import commits, poll_loop
from pm25.streaming.group import GroupMember, check_split, group_table, require_topic
from pm25.streaming.topics import ensure_topic
from pm25.streaming.waiting import GroupError, holders, settled, wait_until_caught_up, wait_until_settled
from tests.faults.support import create_topic, produce, random_walk_stream
from tests.notebooks import SRC, run, stream_text

PARTITIONS = 3


@pytest.fixture
def kafka_options(bootstrap_servers):
    return {"bootstrap_servers": bootstrap_servers}


@pytest.fixture
def readings_topic(kafka_options, topic):
    with KafkaAdminClient(**kafka_options) as admin:
        ensure_topic(admin, topic, PARTITIONS)
    return topic


def send(kafka_options, topic, count):
    """`count` messages spread over every partition; returns the (partition, offset) of each."""
    with KafkaProducer(**kafka_options) as producer:
        futures = [producer.send(topic, value=b"{}", partition=n % PARTITIONS) for n in range(count)]
        producer.flush()
        return {(future.get().partition, future.get().offset) for future in futures}


def test_second_member_shares_partitions_and_the_survivor_takes_all_of_them(kafka_options, readings_topic):
    group = f"test_group_{uuid.uuid4().hex[:8]}"
    first = GroupMember("first", kafka_options, readings_topic, group).start()
    second = GroupMember("second", kafka_options, readings_topic, group).start()
    try:
        wait_until(lambda: settled([first, second], PARTITIONS), 60, "both members to get partitions")
        assert first.partitions and second.partitions
        assert sorted(first.partitions + second.partitions) == [0, 1, 2]

        sent = send(kafka_options, readings_topic, 30)
        wait_until(lambda: first.processed | second.processed >= sent, 60, "the two members to process the messages")
        assert first.processed and second.processed  # both really worked

        second.stop()
        wait_until(lambda: settled([first, second], PARTITIONS), 60, "the rebalance after the second member left")
        assert first.partitions == [0, 1, 2]

        sent |= send(kafka_options, readings_topic, 30)
        wait_until(lambda: first.processed | second.processed >= sent, 60, "the first member to process the rest")
        assert first.processed | second.processed == sent  # no message processed by neither, none invented
        assert {"first", "second (no longer)"} <= set(group_table([first, second])["member"])
    finally:
        first.stop()
        if second.running:
            second.stop()


def test_a_missing_topic_is_a_clear_error_and_is_not_created(kafka_options):
    missing = f"test_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(GroupError, match="run step 2 first"):
        require_topic(kafka_options, missing)
    with KafkaAdminClient(**kafka_options) as admin:
        assert missing not in admin.list_topics()


def test_a_member_taking_over_a_partition_shows_the_committed_offset_it_starts_from(kafka_options, readings_topic):
    group = f"test_group_{uuid.uuid4().hex[:8]}"
    sent = send(kafka_options, readings_topic, 30)
    first = GroupMember("first", kafka_options, readings_topic, group).start()
    second = None
    try:
        wait_until(lambda: first.processed >= sent, 60, "the first member to process every message")
        second = GroupMember("second", kafka_options, readings_topic, group).start()
        wait_until(lambda: settled([first, second], PARTITIONS), 60, "both members to get partitions")
        assert second.processed == set()  # nothing new to read: the offsets shown are where it starts
        assert {row["partition"]: row["next offset"] for row in second.rows()} == {
            number: 10 for number in second.partitions
        }  # the group's committed offsets (10 messages per partition), not 0
    finally:
        first.stop()
        if second is not None and second.running:
            second.stop()


class Clock:
    """time.monotonic for pm25.streaming.poll_loop, moved on by the test."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_idle_timer_does_not_run_out_while_the_group_rebalances(monkeypatch):
    # Leaving mid-rebalance can freeze the group on the embedded broker: a rebalance is not idleness.
    clock = Clock()
    monkeypatch.setattr(poll_loop.time, "monotonic", clock)
    idle = poll_loop.IdleTimer(seconds=5, join_timeout_s=60)
    offsets = SimpleNamespace(joined=True, rebalancing=False, uncommitted=False, assignments=1)
    idle.observe({}, offsets)
    clock.now += 4
    offsets.rebalancing = True  # another member joins: this one's partitions were taken back
    for _ in range(10):
        clock.now += 1
        idle.observe({}, offsets)
        assert not idle.expired
    offsets.rebalancing = False  # handed out again: the idle clock starts afresh
    idle.observe({}, offsets)
    clock.now += 4
    idle.observe({}, offsets)
    assert not idle.expired
    clock.now += 2
    assert idle.expired


def test_a_new_share_restarts_the_idle_clock_even_when_the_rebalance_ran_inside_one_poll(monkeypatch):
    # Real Kafka hands a leaving member's partitions to the others; revoked and assigned can both happen inside
    # one poll(), so `rebalancing` is never seen. The member must still read its new partitions before it ends.
    clock = Clock()
    monkeypatch.setattr(poll_loop.time, "monotonic", clock)
    idle = poll_loop.IdleTimer(seconds=5, join_timeout_s=60)
    offsets = SimpleNamespace(joined=True, rebalancing=False, uncommitted=False, assignments=1)
    idle.observe({}, offsets)
    clock.now += 4.9
    offsets.assignments = 2  # a new share, handed out within the poll just made
    idle.observe({}, offsets)
    clock.now += 4.9
    idle.observe({}, offsets)
    assert not idle.expired
    clock.now += 0.2
    assert idle.expired


def test_a_rebalance_that_never_ends_is_an_error_naming_the_way_out(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(poll_loop.time, "monotonic", clock)
    idle = poll_loop.IdleTimer(seconds=5, join_timeout_s=60)
    offsets = SimpleNamespace(joined=True, rebalancing=False, uncommitted=False, assignments=1)
    idle.observe({}, offsets)
    offsets.rebalancing = True
    idle.observe({}, offsets)
    clock.now += 59
    idle.observe({}, offsets)
    clock.now += 2
    with pytest.raises(LearnerError, match="new group id, or restart make lab"):
        idle.observe({}, offsets)


def test_a_long_wait_shows_what_it_waits_for_on_one_line_rewritten_in_place(polling_clock, capsys):
    # Step 3b's wait for the group to catch up took 96 s in the learner trial, without a word.
    start = polling_clock.now

    def lag():  # the group's lag falls by 100 a second, to 0 after 10 s
        return pd.DataFrame({"lag": [max(0, round(1000 - 100 * (polling_clock.now - start))), 0]})

    wait_until_caught_up(lag, "the group to catch up", timeout_s=60)
    printed = capsys.readouterr().out
    updates = printed.split("\r")[1:]
    assert re.match(r"Waiting for the group to catch up: 1 s \(lag [89]\d\d\)", updates[0])  # at 1 to 1.5 s
    assert len(updates) >= 4 and printed.count("\n") == 1 and printed.endswith("\n")  # one line, updated
    assert updates[-1].rstrip() == "Waited 10 s for the group to catch up: done."
    lags = [int(number.replace(",", "")) for number in re.findall(r"\(lag ([\d,]+)\)", printed)]
    assert lags == sorted(lags, reverse=True) and lags[-1] > 0


def test_a_group_that_never_settles_is_an_error_saying_who_holds_what_and_the_way_out(polling_clock):
    member = SimpleNamespace(
        name="first",
        running=True,
        partitions=[0],
        topic_partitions=2,
        has_share=lambda: True,
        knows_its_start=lambda: True,
    )
    with pytest.raises(
        GroupError, match=r"Waited 5 s for the split, in vain \(first has \[0\]\)\. .*restart `make lab`"
    ):
        wait_until_settled([member], "the split", timeout_s=5)


def test_a_wrong_split_says_the_real_one_and_how_to_check_again():
    # Step 3b's checks have cells of their own (check-split-of-two, -four): a retry restarts no member.
    members = [
        SimpleNamespace(name="first", running=True, partitions=[0, 2]),
        SimpleNamespace(name="second", running=True, partitions=[1]),
    ]
    wrong = check_split([3, 0], members)
    assert wrong.startswith("❌ You predicted [3, 0]; the group gave first [0, 2], second [1]")
    assert "Change `split`, run it, then this cell again." in wrong
    assert check_split([2, 1], members) == "✅ As you predicted: first [0, 2], second [1]."
    assert check_split([1, 2], members) == (
        "✅ As you predicted: first [0, 2], second [1] (which member gets how many is the group's choice)."
    )


def test_a_member_stopped_while_another_joins_leaves_only_once_the_group_settled(kafka_options, readings_topic):
    # Step 3b's "try it": start a third member, stop the first at once. Leaving mid-rebalance froze the group.
    group = f"test_group_{uuid.uuid4().hex[:8]}"
    first = GroupMember("first", kafka_options, readings_topic, group).start()
    second = GroupMember("second", kafka_options, readings_topic, group).start()
    third = None
    try:
        wait_until_settled([first, second], "the first two members to share the partitions")
        third = GroupMember("third", kafka_options, readings_topic, group).start()
        first.stop()
        assert third.partitions, "the first member left before the third had joined"
        wait_until_settled([first, second, third], "the two others to share the partitions", timeout_s=30)
        assert sorted(second.partitions + third.partitions) == [0, 1, 2] and second.partitions and third.partitions
        sent = send(kafka_options, readings_topic, 30)
        wait_until(lambda: second.processed | third.processed >= sent, 60, "the two others to process the messages")
    finally:
        for member in (first, second, third):
            if member is not None and member.running:
                member.stop(wait_for_group=False)


def test_the_group_is_settled_only_once_every_new_member_has_its_share(kafka_options, readings_topic):
    # Step 3b's third and fourth members: the split right after their start is still the old one ([2, 1] and two
    # members without partitions); the learner's prediction is judged on the split the group then makes.
    group = f"test_group_{uuid.uuid4().hex[:8]}"
    members = [
        GroupMember("first", kafka_options, readings_topic, group).start(),
        GroupMember("second", kafka_options, readings_topic, group).start(),
    ]
    try:
        wait_until_settled(members, "the first two members to share the partitions")
        members += [GroupMember(name, kafka_options, readings_topic, group).start() for name in ("third", "fourth")]
        wait_until_settled(members, "the four members to share the partitions")
        assert sorted(len(member.partitions) for member in members) == [0, 1, 1, 1], holders(members)
    finally:
        for member in members:
            member.stop(wait_for_group=False)


def test_step_3b_runs_each_cell_twice_in_a_row_and_then_all_again_in_one_kernel(bootstrap_servers, topic, tmp_path):
    # The classroom's habit: a cell run again. An earlier member of the same name is replaced, not left polling.
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, random_walk_stream(24, 40, seed=5))
    notebook = nbformat.read(SRC / "step_3b_consumer_group.ipynb", as_version=4)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    twice = [nbformat.from_dict(cell) for cell in cells for _ in range(2)]
    notebook.cells = twice + [nbformat.from_dict(cell) for cell in cells]
    env = {"PM25_TOPIC": topic, "PM25_DATA_DIR": str(tmp_path), "PM25_WORK_MS_PER_RECORD": "0"}
    printed = stream_text(run(notebook, SRC, env, timeout_s=180))
    for name in ("first", "second", "third", "fourth"):
        assert f"Stopped the earlier member {name!r} (of group" in printed
    assert printed.count("No prediction written. The group gave") == 3 * 2
    assert "in vain" not in printed


def test_step_3s_idle_timer_does_not_end_a_member_while_another_joins(kafka_options, readings_topic):
    # Step 3's loop, with an idle time-out of 0: it would end at its first empty poll after the group rebalanced.
    group = f"test_group_{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        **kafka_options, group_id=group, enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=2000
    )
    producer = KafkaProducer(**kafka_options)
    offsets = commits.ProcessedOffsets(consumer, producer, forget=lambda boxes: None, topic_partitions=PARTITIONS)
    consumer.subscribe([readings_topic], listener=offsets)
    other = None
    try:
        wait_until(
            lambda: consumer.poll(timeout_ms=100) is not None and offsets.joined, 60, "the member to join", every_s=0
        )
        idle = poll_loop.IdleTimer(seconds=0)
        other = GroupMember("other", kafka_options, readings_topic, group).start()
        seen = []  # (rebalancing, expired) after each poll, as step 3's loop sees them

        def polled_until_shared():
            batch = consumer.poll(timeout_ms=100)
            idle.observe(batch, offsets)
            seen.append((offsets.rebalancing, idle.expired))
            return other.partitions and len(offsets.owned) < PARTITIONS and not offsets.rebalancing

        wait_until(polled_until_shared, 60, "the group to share the partitions with the other member", every_s=0)
        assert (True, False) in seen  # the loop saw the rebalance ...
        assert (True, True) not in seen  # ... and the timer never ran out during it
    finally:
        if other is not None:
            other.stop(wait_for_group=False)
        consumer.close()
        producer.close()
