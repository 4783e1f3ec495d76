"""What step 3's consumer loop needs besides Kafka itself: rebuilding state from the log,
knowing which readings were already acted on, and keeping alerts and rejected messages as data."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, IllegalStateError, KafkaError, KafkaTimeoutError, RebalanceInProgressError
from kafka.future import Future
from kafka.serializer import Serializer

from pm25.data import contract
from pm25.data.contract import Reading
from pm25.errors import LearnerError, StoppedByYou
from pm25.files import write_csv
from pm25.learners_code import code_objects, learners_line
from pm25.rules.detector import Alert
from pm25.streaming import latency, producing
from pm25.streaming.topics import REPLAY_FROM_STEP_3

ALERT_COLUMNS = ["boxId", "boxName", "event", "timestamp", "mean", "n_hours"]
REJECTED_COLUMNS = ["topic", "partition", "offset", "reason", "value"]


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


class DetectorNotEmpty(LearnerError):
    """A new consumer was given a detector that still holds windows from an earlier one."""


def require_empty(detector) -> None:
    """A new member re-reads its partitions from their start to rebuild its boxes' windows: they must be empty."""
    if boxes := detector.box_ids():
        raise DetectorNotEmpty(
            f"The detector still holds the windows of {len(boxes)} boxes from a consumer that ran before in this "
            "kernel: a new consumer re-reads their readings and would count each as late. Run the cells from "
            "`detector = Hardened(...)` on (or Run → Run All Cells)."
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


class IdleTimer:
    """Stop a poll loop after `seconds` without a new message, so the notebook ends by itself.

    The clock runs only while the group lets the consumer keep its share of the partitions (maybe
    none, when the group has more members than the topic has partitions): joining a group and a
    rebalance take a few seconds, and that is not idleness. A member that left mid-rebalance could
    freeze the whole group on the embedded broker. No share within `join_timeout_s` is an error.
    """

    def __init__(self, seconds: float, join_timeout_s: float = 60.0):
        self.seconds = seconds
        self.join_timeout_s = join_timeout_s
        self._last = time.monotonic()
        self._waiting_since: float | None = self._last  # for the group to hand out partitions; None once it has
        self._assignments = 0  # the last share seen: a new one (maybe more partitions to read) restarts the clock

    def observe(self, batch: dict, offsets: ProcessedOffsets) -> None:
        """Call after every poll and commit. Offsets still to commit (a commit refused during a
        rebalance) keep the consumer busy: it ends only once its work is committed."""
        now = time.monotonic()
        waiting = not offsets.joined or offsets.rebalancing
        # A whole rebalance can happen inside one poll(): a new share restarts the clock even when `waiting`
        # was never seen, else a member handed a leaving member's partitions could end before reading them.
        if batch or waiting or offsets.uncommitted or offsets.assignments != self._assignments:
            self._last = now
            self._assignments = offsets.assignments
        if not waiting:
            self._waiting_since = None
        elif self._waiting_since is None:
            self._waiting_since = now
        elif now - self._waiting_since > self.join_timeout_s:
            raise LearnerError(
                f"The consumer's group handed out no partitions within {self.join_timeout_s:.0f} s. Run step 2 "
                "first if the topic does not exist. Else the group is stuck: the embedded broker of make lab "
                "freezes a group whose member left while another joined. Use a new group id, or restart make lab."
            )

    @property
    def quiet_s(self) -> float:
        """Seconds without news, counted once the group has handed out its partitions."""
        return 0.0 if self._waiting_since is not None else time.monotonic() - self._last

    @property
    def expired(self) -> bool:
        return self._waiting_since is None and time.monotonic() - self._last > self.seconds


class Stream:
    """The consumer as the learner's run_loop(consumer, process, stop) sees it on the stream, with what production adds.

    - poll() is the consumer's; after each batch the map is redrawn (`after_batch(newest reading per box)`) and
      the idle clock told; the latency meter starts once the group has handed out its partitions;
    - process(record) runs the notebook's `process` with an interrupt held back until the record is done and
      noted as processed (ProcessedOffsets);
    - commit() commits the offsets of the processed records (and first their alerts), whatever was polled;
    - close() leaves the consumer open: running the cell again goes on with it;
    - stop() says yes after `idle_timeout_s` without news, with one line, redrawn in place, while it is quiet.
    `running(*yours)` around the loop: ■, or an exception raised in the learner's code (`yours`: functions and
    classes), commits what was processed, goes back to the first record not processed and ends with one line.
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        offsets: ProcessedOffsets,
        process: Callable,
        idle_timeout_s: float,
        after_batch: Callable[[dict], None] = lambda newest: None,
    ):
        self._consumer, self.offsets, self._process, self.after_batch = consumer, offsets, process, after_batch
        self.idle = IdleTimer(idle_timeout_s)
        self.meter: latency.SendToAlertLatency | None = None
        self._held = contextlib.nullcontext()
        self._batch: dict | None = None  # polled, not yet redrawn and shown to the idle clock
        self._newest: dict[str, Reading] = {}  # the newest reading of each box in that batch, for the map
        self._quiet = _QuietLine()

    def poll(self, *args, **kwargs) -> dict:
        self._after_batch()
        self._batch = self._consumer.poll(*args, **kwargs)
        if self.meter is None and self.offsets.joined:
            self.meter = latency.SendToAlertLatency()  # what was sent before now waited as backlog
        return self._batch

    def process(self, record) -> None:
        if not hasattr(record, "offset"):
            raise LearnerError(
                f"process() got {type(record).__name__} {record!r}, not a record. A batch is a dict "
                "{partition: [records]}: loop over batch.values(), then over the records in each list."
            )
        with self._held:
            reading = self._process(record)
            self.offsets.processed(record, reading)
            if self.meter is not None:
                self.meter.observe(record)
        if reading:
            self._newest[reading.box_id] = reading

    def commit(self, offsets: dict | None = None) -> None:
        self.offsets.commit()  # what was processed, not the position poll() moved to

    def close(self, *args, **kwargs) -> None:
        """Kept open: the cell may run again, and the cells below close it."""

    def stop(self) -> bool:
        self._after_batch()
        self._quiet.show(self.idle)
        return self.idle.expired

    def _after_batch(self) -> None:
        if self._batch is None:
            return
        if self._newest:
            self.after_batch(self._newest)
            self._newest = {}
        self.idle.observe(self._batch, self.offsets)  # idle: no new message, everything committed
        self._batch = None

    def __getattr__(self, name):
        return getattr(self._consumer, name)

    @contextlib.contextmanager
    def running(self, *yours):
        with producing.ctrl_c_between_sends() as held:
            self._held = held
            try:
                yield self
                self.offsets.commit()
            except KeyboardInterrupt:
                self.offsets.commit()  # what was processed: a long pause must not make the group read it again
                raise StoppedByYou("Stopped by you. Run this cell again to go on where it stopped.") from None
            except LearnerError:
                raise
            except Exception as error:
                where = None if self._called_back(error, yours) else learners_line(error, yours)
                if where is None:
                    raise  # not in the learner's code: its traceback is what helps
                self.offsets.commit()
                raise LearnerError(
                    f"Your code stopped at {where}, with {type(error).__name__}: {error}. What was processed is "
                    "committed. Fix that line, run its cell and its check, then this cell: it goes on from there "
                    "(%tb in a new cell shows the full traceback)."
                ) from error
            finally:
                self._held = contextlib.nullcontext()
                self._quiet.show(None)
                self.offsets.rewind()  # back to the first message polled but not processed

    @staticmethod
    def _called_back(error: BaseException, yours) -> bool:
        """Whether `error` came from this class, called by the learner's code (a poll that redrew the map)."""
        learners = {code for answer in yours for code in code_objects(answer)}
        ours = {method.__code__ for method in (Stream.poll, Stream.process, Stream.commit, Stream.stop)}
        called_back, trace = False, error.__traceback__
        while trace is not None:
            code = trace.tb_frame.f_code
            called_back = (called_back or code in ours) and code not in learners
            trace = trace.tb_next
        return called_back


class _QuietLine:
    """One line while the stream is quiet ("no new readings for 4 s; stopping in 6 s"), redrawn in place."""

    AFTER_S = 2.0  # a quiet shorter than this is a pause between batches

    def __init__(self):
        self._handle = None
        self._shown = ""

    @classmethod
    def text(cls, idle: IdleTimer | None) -> str:
        """The line for how long `idle` has been quiet; none once it expired, or for None (the loop ended)."""
        quiet = idle.quiet_s if idle is not None else 0.0
        if idle is None or quiet < cls.AFTER_S or idle.expired:
            return ""
        left = max(math.ceil(idle.seconds - quiet), 0)
        return f"No new readings for {int(quiet)} s; stopping in {left} s (■ to stop now)."

    def show(self, idle: IdleTimer | None) -> None:
        text = self.text(idle)
        if text == self._shown:
            return
        self._shown = text
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return  # not in a notebook: nothing to redraw in place
        if self._handle is None:
            self._handle = display({"text/plain": text}, raw=True, display_id=True)
        else:
            self._handle.update({"text/plain": text}, raw=True)


FUTURE_TOLERANCE = timedelta(minutes=5)  # sensor clocks drift; more than this ahead is a wrong clock


def decode(record, future_tolerance: timedelta = FUTURE_TOLERANCE) -> Reading:
    """The reading in a message, or InvalidMessage with the reason; see contract.decode.

    Two more checks need the message itself:
    - its key must be the boxId: the key decides the partition, so a box's reading under another key
      (or none) lands apart from the box's other readings, out of their order, and in a group two
      members would judge one box;
    - a reading observed (event time) more than the tolerance after Kafka got the message (its record
      timestamp) comes from a wrong clock. Accepted, a reading from 2099 would make every later reading
      of its box "late", for good.
    """
    reading = contract.decode(record.value)
    if record.key != reading.box_id.encode("utf-8"):
        key = "no key" if record.key is None else f"key {contract.show(record.key.decode('utf-8', 'replace'))}"
        raise contract.InvalidMessage(
            f"{key} is not the boxId {reading.box_id}: each reading is sent with its box's id as key, "
            "so that a box's readings stay in order on one partition"
        )
    if record.timestamp is not None and record.timestamp >= 0:
        received = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        if reading.timestamp - received > future_tolerance:
            raise contract.InvalidMessage(
                f"timestamp {contract.format_timestamp(reading.timestamp)} is later than the message reached "
                f"Kafka ({contract.format_timestamp(received)}): a sensor clock in the future"
            )
    return reading


class AlertSerializer(Serializer):
    """value_serializer for the alerts topic: an Alert becomes its JSON object."""

    def serialize(self, topic, headers, data: Alert) -> bytes:
        return json.dumps(data.as_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Rejected:
    """Messages that break the contract, kept with the reason instead of stopping the consumer.

    One row per message, however often it is read (a rebuild after a rebalance reads it again).
    """

    _rows: dict[tuple[str, int, int], dict] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict]:
        return list(self._rows.values())

    def add(self, record, reason: str) -> None:
        raw = record.value or b""
        self._rows[record.topic, record.partition, record.offset] = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason,
            "value": raw[:200].decode("utf-8", errors="replace"),
        }

    def table(self, partitions: tuple[int, ...] | None = None) -> pd.DataFrame:
        """All rows, or those of the given partitions."""
        rows = [row for row in self.rows if partitions is None or row["partition"] in partitions]
        return pd.DataFrame(rows, columns=REJECTED_COLUMNS)


def alerts_table(alerts: list[Alert]) -> pd.DataFrame:
    return pd.DataFrame([alert.as_dict() for alert in alerts], columns=ALERT_COLUMNS)


def write_outputs(
    output_dir: Path,
    alerts: list[Alert],
    rejected: Rejected,
    status: pd.DataFrame,
    share: Share,
    daily: pd.DataFrame | None = None,
) -> list[Path]:
    """alerts.csv, rejected.csv, sensor_status.csv (and daily_means.csv), each replaced in one step.

    Only a member that processed the whole topic writes those names. A member of a group that shared
    the topic knows only its partitions: it writes e.g. alerts_partitions_0_2.csv with the rows of
    its own boxes and partitions (Share.file_name, Share.own).
    """
    if not share.partitions:
        return []
    tables = {
        "alerts": alerts_table([alert for alert in alerts if share.whole or alert.box_id in share.box_ids]),
        "rejected": rejected.table(None if share.whole else share.partitions),
        "sensor_status": share.own(status),
    }
    if daily is not None:
        tables["daily_means"] = share.own(daily)
    paths = []
    for name, table in tables.items():
        paths.append(output_dir / share.file_name(f"{name}.csv"))
        write_csv(paths[-1], table)
    return paths


def lag_table(kafka_options: dict, group_id: str, topic: str, timeout_s: float = 10.0) -> pd.DataFrame:
    """Per partition: the group's committed offset, the newest offset, and the lag between them.

    A consumer of its own reads the group's commits without joining the group, then fetches once from
    each committed offset: a fetch answer carries the partition's high watermark (the newest offset),
    which every broker reports exactly (the embedded broker's end_offsets() does not). Nothing is committed.
    """
    with KafkaConsumer(**kafka_options, group_id=group_id, enable_auto_commit=False) as consumer:
        partitions = [TopicPartition(topic, number) for number in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        committed = {partition: consumer.committed(partition) or 0 for partition in partitions}
        for partition, offset in committed.items():
            consumer.seek(partition, offset)
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(p) is None for p in partitions) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1)
        rows = [
            {
                "partition": p.partition,
                "committed": committed[p],
                "newest": consumer.highwater(p),
                "lag": consumer.highwater(p) - committed[p],
            }
            for p in partitions
        ]
    return pd.DataFrame(rows, columns=["partition", "committed", "newest", "lag"])


def read_clocks(kafka_options: dict, topic: str, timeout_s: float = 60.0) -> pd.DataFrame:
    """Every reading on the topic with its two clocks: `arrival`, when Kafka got the message (the record's
    timestamp), and `event`, when the sensor measured it (the reading's timestamp). Messages that break the
    contract are left out. Reads without a group, so nothing is committed; stops at the newest offset."""
    arrival, event = [], []
    with KafkaConsumer(**kafka_options, enable_auto_commit=False, fetch_max_wait_ms=100) as consumer:
        partitions = [TopicPartition(topic, number) for number in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        deadline, complete = time.monotonic() + timeout_s, False
        while not complete and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    with contextlib.suppress(contract.InvalidMessage):
                        event.append(decode(record).timestamp)
                        arrival.append(record.timestamp)
            complete = all(
                consumer.highwater(p) is not None and consumer.position(p) >= consumer.highwater(p) for p in partitions
            )
    if not complete:
        print(f"Read {len(event):,} readings of {topic!r} in {timeout_s:g} s; the topic holds more.")
    elif not event:
        print(f"The topic {topic!r} holds no reading that keeps the contract: nothing to count.")
    arrival_times = pd.to_datetime(arrival, unit="ms", utc=True)
    return pd.DataFrame({"arrival": arrival_times, "event": pd.to_datetime(event, utc=True, format="ISO8601")})
