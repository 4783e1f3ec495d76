"""Step 3's self-check of the learner's consumer: `make_consumer` and the poll-process-commit loop `run_loop`.

consumer_loop_check returns a checker for pm25.learning.tasks.check: it runs the learner's loop on a practice
topic of its own, makes its first commit fail as a rebalance does, and compares what the group committed with
what was processed; it returns a sentence confirming the loop, or raises WrongAnswer with the first thing that
is wrong and how to fix it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError

from pm25.data.contract import Reading
from pm25.learning.practice_topic import PRACTICE_PARTITIONS, practice_topic
from pm25.learning.tasks import WrongAnswer
from pm25.streaming.poll_loop import not_a_record

# A group's first join waits for members up to about this long: the smallest a broker allows (kafka-python's
# default is 45 s).
GROUP_SESSION_TIMEOUT_MS = 6000


class _WatchedConsumer:
    """A KafkaConsumer that notes what was processed when each commit() was made, whether that commit followed an
    empty poll, and whether it was closed. Its first commit after a batch fails with CommitFailedError, as one
    does when the group rebalances; then it sends the rest, so a loop that goes on has more to process and commit."""

    def __init__(self, consumer: KafkaConsumer, send_rest: Callable[[], None]):
        self._consumer = consumer
        self._send_rest = send_rest
        self.processed: list[tuple[int, int]] = []  # (partition, offset), in processing order
        self.commits = 0  # those that succeeded
        self.commit_failed = False  # the one made to fail has happened
        self.idle_commits = 0  # commits right after a poll that returned nothing
        self.closed = False
        self.polls = 0
        self.polls_since_progress = 0
        self.committed_unprocessed: tuple[int, int] | None = None  # the first record committed unprocessed
        self._last_batch_empty = True
        self.first_half = 0  # records sent before the loop started

    def poll(self, *args, **kwargs):
        batch = self._consumer.poll(*args, **kwargs)
        self.polls += 1
        self._last_batch_empty = not batch
        self.polls_since_progress = 0 if batch else self.polls_since_progress + 1
        if not batch and len(self.processed) >= self.first_half:
            self._send_rest_once()  # a loop that never commits gets the rest too
        return batch

    def _send_rest_once(self):
        if self._send_rest is not None:
            self._send_rest()
            self._send_rest = None

    def commit(self, offsets: dict | None = None):
        if offsets is None:
            offsets = {tp: OffsetAndMetadata(self._consumer.position(tp), "") for tp in self._consumer.assignment()}
        done = set(self.processed)
        for tp, offset in offsets.items():
            start = self._consumer.committed(tp) or 0
            missing = [o for o in range(start, offset.offset) if (tp.partition, o) not in done]
            if missing and self.committed_unprocessed is None:
                self.committed_unprocessed = (tp.partition, missing[0])
        self.idle_commits += self._last_batch_empty
        if not self.commit_failed and not self._last_batch_empty:
            self.commit_failed = True
            self._send_rest_once()
            raise CommitFailedError("the group rebalanced (made to fail by the check)")
        self.commits += 1
        return self._consumer.commit(offsets)

    def close(self, *args, **kwargs):
        self.closed = True
        return self._consumer.close(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._consumer, name)


NO_PROGRESS_POLLS = 10  # polls of 0.5 s with no record, once all were sent: the loop misses records
NO_POLL_S = 5  # stop() asked this long without a poll: the loop never polls


def consumer_loop_check(
    kafka_options: dict, readings: Iterable[Reading], timeout_s: float = 60.0
) -> Callable[..., str]:
    """Step 3: `make_consumer(kafka_options, topic, group_id)` makes a consumer of the group, subscribed to the topic,
    starting at the earliest offset, auto-commit off; `run_loop(consumer, process, stop)` polls, processes every
    record, commits after each batch with records (a failed commit is reported and polling goes on), and closes
    the consumer at the end.

    The check sends half the readings to a practice topic, runs run_loop with make_consumer's consumer of a new
    group, makes its first commit fail and then sends the other half; it stops the loop after a
    poll that found nothing once every record was processed (or after polls that found nothing new), and
    compares what the group committed with what was processed.
    """
    values = [json.dumps(reading.as_message()).encode() for reading in readings]
    half = len(values) // 2

    def check(make_consumer, run_loop) -> str:
        with practice_topic(kafka_options) as topic, KafkaProducer(**kafka_options) as producer:

            def send(numbers: range) -> None:
                for number in numbers:
                    producer.send(topic, value=values[number], partition=number % PRACTICE_PARTITIONS)
                producer.flush()

            send(range(half))
            group = f"pm25_practice_{uuid.uuid4().hex[:8]}"
            group_options = {
                "session_timeout_ms": GROUP_SESSION_TIMEOUT_MS,
                "heartbeat_interval_ms": GROUP_SESSION_TIMEOUT_MS // 3,
            }
            consumer = make_consumer({**kafka_options, **group_options}, topic, group)
            try:
                _judge_consumer(consumer, topic, group)
            except WrongAnswer:
                if isinstance(consumer, KafkaConsumer):
                    consumer.close()
                raise
            watched = _WatchedConsumer(consumer, lambda: send(range(half, len(values))))
            watched.first_half = half
            started = time.monotonic()

            def stop() -> bool:  # a verdict within seconds, not after a minute of silence
                done = len(watched.processed) >= len(values) and watched.polls_since_progress > 0
                stuck = watched.polls_since_progress > NO_PROGRESS_POLLS and bool(consumer.assignment())
                never_polled = watched.polls == 0 and time.monotonic() - started > NO_POLL_S
                return done or stuck or never_polled or time.monotonic() - started > timeout_s

            def process(record) -> None:
                if not hasattr(record, "offset"):
                    raise WrongAnswer(not_a_record(record))
                watched.processed.append((record.partition, record.offset))

            print(
                "The check makes your loop's first commit fail on purpose, as a rebalance does; your loop "
                "should say so and go on."
            )
            try:
                run_loop(watched, process, stop)
                stopped = None
            except CommitFailedError as error:
                stopped = error
            finally:
                consumer.close()
            committed = _committed(kafka_options, group, topic)
        return _judge_loop(watched, committed, len(values), stopped)

    return check


def _judge_consumer(consumer, topic: str, group: str) -> None:
    """WrongAnswer naming the first setting of the learner's consumer that the loop cannot work with."""
    if not isinstance(consumer, KafkaConsumer):
        raise WrongAnswer(f"make_consumer returned {consumer!r}, not a KafkaConsumer: end it with return consumer.")
    config = consumer.config
    if config["group_id"] is None:
        raise WrongAnswer(
            "Your consumer has no group_id: without a group nothing can be committed. Pass group_id=group_id."
        )
    if config["group_id"] != group:
        raise WrongAnswer(
            f"Your consumer's group_id is {config['group_id']!r}, not the group_id the function was given "
            f"({group!r}): pass group_id=group_id, so that the caller chooses the group."
        )
    if str(config["auto_offset_reset"]).lower() != "earliest":
        raise WrongAnswer(
            f"Your consumer's auto_offset_reset is {config['auto_offset_reset']!r}: a new group then starts after the "
            'newest record and never sees those already in the topic. Use auto_offset_reset="earliest".'
        )
    if config["enable_auto_commit"]:
        raise WrongAnswer(
            "Your consumer commits by itself every few seconds (enable_auto_commit is True), records not processed "
            "yet included: a crash could lose them. Use enable_auto_commit=False; your loop commits after processing."
        )
    if consumer.subscription() != {topic}:
        raise WrongAnswer(
            f"Your consumer is not subscribed to the topic (its subscription: {consumer.subscription() or 'none'}): "
            "call consumer.subscribe([topic])."
        )


def _committed(kafka_options: dict, group: str, topic: str) -> int:
    """The sum of the group's committed offsets (asked without joining the group)."""
    with KafkaConsumer(**kafka_options, group_id=group, enable_auto_commit=False) as reader:
        return sum(reader.committed(TopicPartition(topic, p)) or 0 for p in range(PRACTICE_PARTITIONS))


def _judge_loop(watched: _WatchedConsumer, committed: int, sent: int, stopped: CommitFailedError | None) -> str:
    if watched.committed_unprocessed is not None:
        partition, offset = watched.committed_unprocessed
        raise WrongAnswer(
            f"You committed partition {partition}, offset {offset} before processing it. If the consumer crashed "
            "right after that commit, the record would be lost. consumer.commit() without arguments commits the "
            "position of every partition polled so far, records not processed yet included: call it after the loop "
            "over the batch. (Production code commits exactly what it processed: consumer.commit({TopicPartition("
            "record.topic, record.partition): OffsetAndMetadata(record.offset + 1)}).)"
        )
    if stopped is not None:
        raise WrongAnswer(
            "Your loop stopped with CommitFailedError: the check made one commit fail, as it does when the group "
            "rebalances. That loses nothing (the records are read again), so catch it, print a line, and go on "
            "polling: try: consumer.commit() except CommitFailedError: ..."
        )
    processed = Counter(watched.processed)
    if not watched.polls:
        raise WrongAnswer("consumer.poll() was never called: each round of the loop starts with a poll.")
    if not processed:
        raise WrongAnswer("process(record) was never called: call it for every record of the batch.")
    twice = [record for record, times in processed.items() if times > 1]
    if twice:
        raise WrongAnswer(f"The record at partition {twice[0][0]}, offset {twice[0][1]} was processed twice.")
    if len(processed) < sent:
        raise WrongAnswer(f"{len(processed)} of {sent} records were processed: process every record of every batch.")
    if not watched.commit_failed:
        raise WrongAnswer(
            "Nothing was committed: call consumer.commit() after processing the batch. "
            "Without it, a restarted consumer of this group reads everything again."
        )
    if watched.idle_commits:
        raise WrongAnswer(
            f"Your loop committed {watched.idle_commits} times after a poll that returned nothing. Such a commit "
            "has nothing new to say, and an idle consumer would send two a second: commit only after a batch "
            "with records (if batch: ...)."
        )
    if committed < sent:
        raise WrongAnswer(
            f"{sent} records were processed but only {committed} committed: the last batch was not "
            "committed. Commit after processing each batch, inside the loop."
        )
    if not watched.closed:
        raise WrongAnswer(
            "The consumer was never closed: close it at the end, in a finally: block, so that it leaves its group "
            "at once (its partitions go to the other members) even when the loop stops with an error."
        )
    return (
        f"the loop processed all {sent} records on {PRACTICE_PARTITIONS} partitions, went on after the commit the "
        f"check made fail, committed {watched.commits} time{'s' * (watched.commits != 1)}, each after a batch: the "
        f"group's committed offsets add up to {committed}. It closed the consumer."
    )
