"""What a member of step 3's group commits, and when: ProcessedOffsets commits the offsets of the messages it
processed (after their alerts), goes back to the first one not processed after an interrupt, and follows
rebalances, rebuilding a new partition's windows from its start; Share is the part of the topic it processed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, IllegalStateError, KafkaError, KafkaTimeoutError, RebalanceInProgressError
from kafka.future import Future

from pm25.data.contract import Reading
from pm25.errors import LearnerError
from pm25.rules.detector import Alert
from pm25.streaming.topics import REPLAY_FROM_STEP_3


class ProcessedOffsets(ConsumerRebalanceListener):
    """How far this member has processed each of its partitions, and what it does with that.

    - commit(): first the alerts acknowledged by the broker, then the offsets of the processed
      messages (the one after each), never below what the group had committed: at-least-once. An alert
      that fails is sent once more; one that fails again stops the loop (AlertNotDelivered), its message
      uncommitted, and is sent again at the next commit (the loop cell run again).
    - rewind(): poll() moves past the whole batch; after an interrupt, go back to the first message
      polled but not processed, so running the loop again processes every message exactly once.
    - On a rebalance: a new partition is re-read from its start to rebuild its boxes' windows, a
      partition kept goes on where it was processed, and the boxes of a partition lost are forgotten
      (`forget(box_ids)`), since another member now decides about them.
    Messages below the group's committed offset were acted on before this member got them: their
    alerts are rebuilt, not published again (`is_new`).
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        alert_producer: KafkaProducer,
        forget: Callable[[set[str]], None],
        topic_partitions: int,
    ):
        self.consumer = consumer
        self.alert_producer = alert_producer
        self.forget = forget
        self.topic_partitions = topic_partitions
        self.joined = False  # the group has given this member its share (maybe none) at least once
        self.rebalancing = False  # its partitions were taken back and the group has not handed them out again
        self.assignments = 0  # how often the group has handed this member its share
        self.owned: set[TopicPartition] = set()  # as of the last assignment, also after close()
        self.messages_read = 0  # every message processed, a message read again after a rebalance once more
        self.messages_reread = 0  # of those, the ones this member had processed before
        self._read_until: dict[TopicPartition, int] = {}  # the offset after the last message ever processed
        self._next: dict[TopicPartition, int] = {}  # the offset after the last message processed
        self._boxes: dict[TopicPartition, set[str]] = {}
        self._committed: dict[TopicPartition, int] = {}  # the group's commit when the partition was assigned
        self._alerts: list[_Published] = []  # published, not yet acknowledged
        self._undelivered: list[_Published] = []  # failed twice: sent again at the next commit
        self.uncommitted = False  # processed messages whose offsets are not committed yet

    # -- rebalances (called inside poll() and close(): nothing here may wait for the broker) ---------

    def on_partitions_revoked(self, revoked):
        # An eager rebalance revokes everything and may give most of it back: decided on assignment.
        self.rebalancing = True

    def on_partitions_lost(self, lost):
        self._drop(set(lost))  # evicted: another member may already be processing them

    def on_partitions_assigned(self, assigned):
        now = set(self.consumer.assignment())
        self._drop(self.owned - now)
        for partition in now:
            self._committed.pop(partition, None)  # another member may have committed meanwhile
            if partition in self._next:
                self.consumer.seek(partition, self._next[partition])
        if new := now - self.owned:
            self.consumer.seek_to_beginning(*new)  # never without arguments: that means "all assigned"
        self.owned, self.joined, self.rebalancing = now, True, False
        self.assignments += 1

    def _drop(self, partitions: set[TopicPartition]) -> None:
        boxes = set().union(*(self._boxes.pop(partition, set()) for partition in partitions))
        for partition in partitions:
            self._next.pop(partition, None)
        self._undelivered = [sent for sent in self._undelivered if sent.partition not in partitions]
        self.owned -= partitions
        if boxes:
            self.forget(boxes)

    # -- the poll loop ---------------------------------------------------------------------------

    def committed(self, partition: TopicPartition) -> int:
        """The group's committed offset when the partition was assigned (0 for a new group)."""
        if partition not in self._committed:
            self._committed[partition] = self.consumer.committed(partition) or 0
        return self._committed[partition]

    def is_new(self, record) -> bool:
        """Whether the group had not processed this message before (so its alert is published)."""
        return record.offset >= self.committed(TopicPartition(record.topic, record.partition))

    def processed(self, record, reading: Reading | None) -> None:
        """Call once the message is fully handled; `reading` is what it held (None if rejected)."""
        partition = TopicPartition(record.topic, record.partition)
        self._next[partition] = record.offset + 1
        if reading is not None:
            self._boxes.setdefault(partition, set()).add(reading.box_id)
        self.messages_read += 1
        if record.offset < self._read_until.get(partition, 0):
            self.messages_reread += 1
        else:
            self._read_until[partition] = record.offset + 1
        self.uncommitted = True

    def publish(self, topic: str, alert: Alert, record) -> None:
        """Send the alert the message raised; its offset is committed only once the broker has acknowledged it."""
        self._send(_Published(topic, alert, TopicPartition(record.topic, record.partition), record.offset))

    def _send(self, alert: _Published) -> None:
        try:
            alert.future = self.alert_producer.send(alert.topic, key=alert.alert.box_id, value=alert.alert)
        except KafkaError as error:  # refused before sending (too large, no metadata in time): a failed delivery
            alert.future = Future().failure(error)
        self._alerts.append(alert)

    def commit(self) -> None:
        """Alerts acknowledged, then offsets committed. A failed commit is reported and polling goes on; an alert
        not delivered on a second try stops the loop with AlertNotDelivered, after committing what precedes it."""
        if not self.uncommitted:
            return
        for alert in self._undelivered:  # from an earlier run of the loop
            self._send(alert)
        self._undelivered = []
        failed = self._await_alerts()
        for alert in failed:  # once more: a broker that was briefly away takes it now
            self._send(alert)
        failed = failed and self._await_alerts()
        held: dict[TopicPartition, int] = {}  # no commit at or past an alert that was not delivered
        for alert in failed:
            held[alert.partition] = min(alert.offset, held.get(alert.partition, alert.offset))
        offsets = {
            partition: OffsetAndMetadata(max(min(offset, held.get(partition, offset)), self.committed(partition)))
            for partition, offset in self._next.items()
            if partition in self.owned
        }
        try:
            self.consumer.commit(offsets)
            committed = True
        except (CommitFailedError, RebalanceInProgressError) as error:
            # A rebalance or an eviction: these partitions may have a new owner, who re-reads from the last
            # commit. Nothing is lost; some alerts may be published twice (at-least-once).
            print(f"⚠️ The commit failed, polling goes on ({type(error).__name__}): {error}")
            committed = False
        except KafkaError as error:  # no answer at all: the broker stopped or the network is gone
            servers = self.consumer.config["bootstrap_servers"]
            servers = servers if isinstance(servers, str) else ",".join(servers)
            raise BrokerGone(
                f"The Kafka broker at {servers} did not answer the commit ({type(error).__name__}). Nothing is lost: "
                "once it runs again, run this cell again and it commits what was processed, then goes on. (With "
                "`make lab`, whose broker keeps nothing: restart it, run step 2, then this notebook from the top.)"
            ) from None
        if failed:
            self._undelivered = failed
            raise AlertNotDelivered(failed)
        self.uncommitted = not committed

    def _await_alerts(self) -> list[_Published]:
        """The alerts published since the last call that the broker did not acknowledge."""
        # Longer than the delivery time-out: by then every alert is acknowledged or failed.
        timeout_s = self.alert_producer.config["delivery_timeout_ms"] / 1000 + 5
        with contextlib.suppress(KafkaTimeoutError):  # the futures not done count as failed below
            self.alert_producer.flush(timeout=timeout_s)
        failed = [alert for alert in self._alerts if not alert.future.succeeded()]
        self._alerts = []
        return failed

    def rewind(self) -> None:
        """Go back to the first message polled but not processed (call after the loop, in `finally`)."""
        try:
            assigned = self.consumer.assignment()
        except IllegalStateError:  # the consumer was closed: nothing to go back to (the poll said so already)
            return
        for partition in assigned:
            if partition in self._next:
                self.consumer.seek(partition, self._next[partition])
            else:
                self.consumer.seek_to_beginning(partition)

    # -- after the loop ---------------------------------------------------------------------------

    def share(self) -> Share:
        """The part of the topic this member processed, as of its last assignment."""
        boxes = set().union(*(self._boxes.get(partition, set()) for partition in self.owned))
        return Share(tuple(sorted(p.partition for p in self.owned)), self.topic_partitions, frozenset(boxes))

    def summary(self) -> str:
        """What this member processed; an error when there was nothing at all to read."""
        share = self.share()
        if not self.joined:
            return "This member never joined its group."
        if not share.partitions:
            return (
                f"This member got no partition: the group has more members than the topic has partitions "
                f"({self.topic_partitions}), so it waited until {self.consumer.config['group_id']} had no "
                "work for it."
            )
        if self.messages_read == 0 and share.whole:
            topic = next(iter(self.owned)).topic
            raise TopicEmpty(f"The topic {topic!r} is empty or missing: run step 2 first. {REPLAY_FROM_STEP_3}")
        again = self.messages_reread
        reread = f", and {again} of them again (re-read after a rebalance to rebuild its windows)" if again else ""
        return f"This member processed {self.messages_read - again} messages from {share.describe()}{reread}."


class BrokerGone(LearnerError):
    """The broker stopped answering while the consumer ran."""


@dataclass
class _Published:
    """An alert sent to the alerts topic for the message at (partition, offset), and the future of its send."""

    topic: str
    alert: Alert
    partition: TopicPartition
    offset: int
    future: Future | None = None


class AlertNotDelivered(LearnerError):
    """Alerts the broker did not take, twice: the loop stops rather than hold their partitions' commits back."""

    def __init__(self, failed: list[_Published]):
        one = len(failed) == 1
        why = failed[0].future.exception or "no answer"
        super().__init__(
            f"{len(failed)} alert{'' if one else 's'} {'was' if one else 'were'} not delivered, again on a second try "
            f"({why}). The loop stopped: {'its message and those' if one else 'their messages and those'} after "
            f"{'it' if one else 'them'} are not committed, so nothing is lost. Is the broker running, and does the "
            f"topic {failed[0].topic!r} exist? Then run this cell again: it sends {'it' if one else 'them'} first."
        )


class TopicEmpty(LearnerError):
    """The consumer read nothing at all: step 2 has not filled the topic."""


@dataclass(frozen=True)
class Share:
    """The partitions of a topic one member of a group processed, and the boxes they held."""

    partitions: tuple[int, ...]
    of: int  # the topic's partition count
    box_ids: frozenset[str]

    @property
    def whole(self) -> bool:
        return self.partitions == tuple(range(self.of))

    def describe(self) -> str:
        if self.whole:
            return f"all {self.of} partitions"
        return f"partition{'s' * (len(self.partitions) > 1)} {', '.join(map(str, self.partitions))} of {self.of}"

    def file_name(self, name: str) -> str:
        """The name of an output file of this member: `name` if it processed the whole topic, else e.g.
        sensor_status_map_partitions_0_2.html, so no partial view overwrites the whole one or another member's."""
        if self.whole:
            return name
        stem, suffix = Path(name).stem, Path(name).suffix
        return f"{stem}_partitions_{'_'.join(map(str, self.partitions))}{suffix}"

    def own(self, table: pd.DataFrame) -> pd.DataFrame:
        """The rows of the boxes this member processed (all rows if it processed the whole topic)."""
        return table if self.whole else table[table["boxId"].isin(self.box_ids)]
