"""What became of the messages sent: DeliveryReport counts what the broker acknowledged and what failed, and
flush_and_close() ends a send without hanging or a traceback when the broker no longer answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from pm25.data.contract import Reading
from pm25.streaming.interrupts import ctrl_c_waits


@dataclass
class DeliveryReport:
    """What the broker acknowledged and what failed, read from the futures that send() returns.

    Only the first few sends get a callback (to print them as they are acknowledged); the rest
    are counted from their futures, which costs far less than a callback per message. Every
    `settle_every` sends, the answered futures are folded into counts and let go, so a long send
    keeps only the futures still in flight (fewer live objects also means shorter garbage collections).
    """

    show_first: int = 5
    settle_every: int = 10_000
    sent: int = field(default=0, init=False)
    _acknowledged: int = field(default=0, init=False, repr=False)
    _waiting: list[tuple[Future, Reading]] = field(default_factory=list, init=False, repr=False)
    _failures: list[tuple[Reading, str]] = field(default_factory=list, init=False, repr=False)
    _refused: int = field(default=0, init=False, repr=False)
    _partitions: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)

    def track(self, future: Future, reading: Reading) -> None:
        """Register a send: `future` is what producer.send() returned."""
        self.sent += 1
        self._waiting.append((future, reading))
        if self.sent <= self.show_first:
            future.add_callback(self._print_acknowledged, reading)
        if len(self._waiting) >= self.settle_every:
            self._settle()

    def refused(self, reading: Reading, error: Exception) -> None:
        """Register a send that the producer refused at once (e.g. a message larger than allowed)."""
        self.sent += 1
        self._refused += 1
        self._failures.append((reading, describe_error(error)))

    @staticmethod
    def _print_acknowledged(reading: Reading, metadata) -> None:
        print(
            f"  acknowledged: {reading.box_name[:24]:24} {reading.timestamp:%Y-%m-%d %H:%M} "
            f"-> partition {metadata.partition}, offset {metadata.offset}"
        )

    def _settle(self) -> None:
        """Count the sends the broker has answered and keep only those it has not.

        A Ctrl+C waits until the count is done: half-way, the counted futures would still be waiting and
        counted again."""
        with ctrl_c_waits():
            waiting = []
            for future, reading in self._waiting:
                if not future.is_done:
                    waiting.append((future, reading))
                elif future.succeeded():
                    self._acknowledged += 1
                    self._partitions.setdefault(reading.box_name, set()).add(future.value.partition)
                else:
                    self._failures.append((reading, describe_error(future.exception)))
            self._waiting = waiting

    @property
    def acknowledged(self) -> int:
        self._settle()
        return self._acknowledged

    @property
    def failures(self) -> list[tuple[Reading, str]]:
        self._settle()
        return list(self._failures)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def delivery_failures(self) -> int:
        """Failed after the producer took them (e.g. the broker stopped answering), unlike those refused at once."""
        return self.failed - self._refused

    @property
    def pending(self) -> int:
        self._settle()
        return len(self._waiting)

    @property
    def partitions_by_box(self) -> dict[str, set[int]]:
        self._settle()
        return {box: set(partitions) for box, partitions in self._partitions.items()}

    def summary(self, rows_read: int | None = None, rejected: int | None = None) -> str:
        lines = []
        if rows_read is not None:
            lines.append(f"rows read:    {rows_read}")
        if rejected is not None:
            lines.append(f"rejected:     {rejected} (never sent)")
        lines += [
            f"sent:         {self.sent}",
            f"acknowledged: {self.acknowledged}",
            f"failed:       {self.failed}",
        ]
        if self.pending:
            lines.append(f"unconfirmed:  {self.pending} (the producer was closed before the broker answered)")
        lines += [
            f"  failed: {reading.box_name} {reading.timestamp:%Y-%m-%d %H:%M}: {why}"
            for reading, why in self.failures[:10]
        ]
        return "\n".join(lines)


def describe_error(error: BaseException) -> str:
    text = str(error)
    return text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"


def flush_and_close(producer, timeout_s: float = 40) -> None:
    """The end of a send: wait until every message is acknowledged or failed, then close the producer.

    `timeout_s` is longer than the producer's delivery_timeout_ms, so normally nothing is left by then. What
    is left anyway fails as "closed forcefully" in the DeliveryReport, instead of a KafkaTimeoutError
    traceback: kafka-python 3.0.12's idempotent producer can leave messages unanswered for good once its
    broker is gone (a batch that expires after it was sent makes it fetch a new producer id, and while it
    waits for one it stops expiring the other batches).
    """
    flush_within(producer, timeout_s)
    producer.close(timeout=15)  # more than request_timeout_ms: the sender may be waiting on a connection


def flush_within(producer, timeout_s: float) -> None:
    """flush(), but what is unanswered after `timeout_s` fails (see flush_and_close) instead of raising."""
    try:
        producer.flush(timeout=timeout_s)
    except KafkaTimeoutError:
        # kafka-python's close() flushes first, so it would raise the same before reaching its own force
        # close; left open, the producer raises again from __del__ and at exit. So force it here.
        producer._sender.force_close()  # fails what is unanswered and ends the sender thread
