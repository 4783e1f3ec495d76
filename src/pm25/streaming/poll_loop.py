"""Step 3's poll loop on the stream: Stream is the consumer as the learner's run_loop sees it (each record
processed with an interrupt held back, only processed offsets committed, one line when the learner's code
fails), IdleTimer ends the loop once the stream is quiet, with a line that counts down, and require_empty
refuses a detector left over from an earlier consumer."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

from kafka import KafkaConsumer

from pm25.data.contract import Reading
from pm25.errors import LearnerError, StoppedByYou
from pm25.learners_code import code_objects, learners_line
from pm25.streaming import latency
from pm25.streaming.commits import ProcessedOffsets
from pm25.streaming.interrupts import ctrl_c_between_sends


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


def not_a_record(thing) -> str:
    """What to say when the learner's loop hands process() something else, such as a batch's partition."""
    return (
        f"process() got {thing!r}, not a record. A batch is a dict {{partition: [records]}}: loop over "
        "batch.values(), then over the records in each list."
    )


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
            raise LearnerError(not_a_record(record))
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
        with ctrl_c_between_sends() as held:
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
