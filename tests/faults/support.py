"""What the fault tests share: synthetic streams, running the notebooks as processes, reading topics back,
and the figures the suite reports at the end."""

from __future__ import annotations

import csv
import io
import json
import linecache
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pandas as pd
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pm25.data.contract import Reading, encode
from pm25.data.dataset import READINGS_FILE
from pm25.polling import wait_until
from tests.notebooks import SRC, cell_index, notebook_as_script, small_readings

START = datetime(2024, 1, 15, tzinfo=UTC)


@dataclass
class Figures:
    """Counted by the tests, printed by tests/faults/conftest.py at the end of the session."""

    kills_survived: int = 0
    faults_injected: int = 0
    hostile_inputs: int = 0
    messages_lost: int = 0
    alerts_duplicated_in_csv: int = 0
    alert_topic_duplicates: int = 0  # at-least-once: republished between the last commit and a kill

    def line(self) -> str:
        return ", ".join(f"{field.name.replace('_', ' ')}: {getattr(self, field.name)}" for field in fields(self))

    def add(self, counted: dict[str, int]) -> None:
        """Add figures counted elsewhere (by a pytest-xdist worker, as asdict() of its Figures)."""
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + counted[field.name])


FIGURES = Figures()


# -- streams -------------------------------------------------------------------------------------


def box_id(number: int) -> str:
    return f"{number:024x}"


def random_walk_stream(boxes: int, steps: int, seed: int, every: timedelta = timedelta(hours=1)) -> list[Reading]:
    """Readings of `boxes` boxes at `steps` times, in time order; each box's PM2.5 wanders around 15 µg/m³."""
    rnd = random.Random(seed)
    level = [rnd.uniform(5, 25) for _ in range(boxes)]
    readings = []
    for step in range(steps):
        for number in range(boxes):
            level[number] = min(60.0, max(0.0, level[number] + rnd.gauss(0, 3)))
            readings.append(
                Reading(
                    box_id(number),
                    f"Box {number} – Münster",
                    box_id(10_000 + number),
                    51.90 + number * 1e-3,
                    7.60,
                    START + step * every,
                    round(level[number], 2),
                )
            )
    return readings


def readings_csv(readings: list[Reading]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["boxId", "boxName", "sensorId", "lat", "lon", "timestamp", "value"])
    for reading in readings:
        message = reading.as_message()
        writer.writerow(
            [message[column] for column in ("boxId", "boxName", "sensorId", "lat", "lon", "timestamp")]
            + [message["value"]]
        )
    return buffer.getvalue()


def boxes_geojson(readings: list[Reading]) -> str:
    """senseboxes.geojson for the boxes of a stream, so step 3's status table lists them in a fixed order."""
    seen: dict[str, Reading] = {}
    for reading in readings:
        seen.setdefault(reading.box_id, reading)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
            "properties": {"boxId": r.box_id, "name": r.box_name, "readings": 0},
        }
        for r in seen.values()
    ]
    return json.dumps({"type": "FeatureCollection", "features": features})


def data_folder(directory: Path, readings: list[Reading]) -> Path:
    """`directory` (made if missing) as a data folder for step 3: with senseboxes.geojson of the stream's boxes,
    and a small readings file of step 1 unless the test wrote one."""
    directory.mkdir(exist_ok=True)
    (directory / "senseboxes.geojson").write_text(boxes_geojson(readings), encoding="utf-8")
    if not (directory / READINGS_FILE).exists():
        small_readings(directory)
    return directory


def sorted_csv(path: Path) -> pd.DataFrame:
    """An output table's rows in one fixed order, to compare runs whose partitions interleaved differently."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return table.sort_values(list(table.columns), ignore_index=True)


# -- Kafka ---------------------------------------------------------------------------------------


def create_topic(bootstrap_servers: str, name: str, partitions: int = 3) -> None:
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})


def produce(bootstrap_servers: str, topic: str, readings: list[Reading]) -> None:
    messages = [(reading.key.encode(), encode(reading)) for reading in readings]
    with KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=50,
        batch_size=1 << 20,
        request_timeout_ms=10_000,
        delivery_timeout_ms=30_000,
    ) as producer:
        futures = [producer.send(topic, key=key, value=value) for key, value in messages]
        producer.flush(timeout=40)  # longer than the delivery time-out: every send ends acknowledged or failed
    assert all(future.succeeded() for future in futures)


def read_topic(bootstrap_servers: str, topic: str, timeout_s: float = 30.0) -> list:
    """Every record of the topic, read from the start to each partition's high watermark.

    The tests' one whole-topic reader. It waits for the records up to the end, not for a quiet spell, so a
    slow machine makes it slower, never shorter. The end is the high watermark of the fetch answers: the
    embedded broker's ListOffsets (`end_offsets`) answers the start of a partition's last batch instead.
    """
    with KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False) as consumer:
        numbers = wait_until(lambda: consumer.partitions_for_topic(topic), 30, f"topic {topic} to exist")
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records = []

        def at_the_end() -> bool:
            new = [record for batch in consumer.poll(timeout_ms=500).values() for record in batch]
            records.extend(new)
            ends = [consumer.highwater(partition) for partition in partitions]  # None until a fetch answered
            return not new and all(
                end is not None and consumer.position(partition) >= end
                for partition, end in zip(partitions, ends, strict=True)
            )

        wait_until(at_the_end, timeout_s, f"{topic} read to its end", every_s=0)
        return records


def committed_total(bootstrap_servers: str, group: str, topic: str) -> int:
    """The sum of the group's committed offsets on the topic (0 before its first commit)."""
    # committed() asks the group coordinator without joining the group, so it does not disturb the members.
    with KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False) as consumer:
        partitions = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions)


# -- the notebook in this process, cell by cell, as a kernel runs it -------------------------------


class NotebookCells:
    """Step 3's code cells run one by one in one namespace, so a test can run a cell again, as a learner does.

    Cells are named by their ids (tests.notebooks.cell_index).
    """

    def __init__(self, name: str = "step_3_event_processing.ipynb"):
        notebook = nbformat.read(SRC / name, as_version=4)
        self.cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        self.namespace: dict = {"__name__": "__main__"}

    def run(self, cell_id: str) -> None:
        self._run(cell_index(self.cells, cell_id))

    def run_before(self, cell_id: str) -> None:
        """Every code cell before the one with this id."""
        for number in range(cell_index(self.cells, cell_id)):
            self._run(number)

    def _run(self, number: int) -> None:
        source, name = self.cells[number].source, f"<cell {number}>"
        # Like IPython, keep the cell's source where inspect finds it: pm25.learning.tasks reads a task's source
        # for `...`.
        linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
        exec(compile(source, name, "exec"), self.namespace)

    def run_from_until(self, first_id: str, last_id: str) -> None:
        """The code cells from the one with id `first_id` up to and including the one with `last_id`."""
        for number in range(cell_index(self.cells, first_id), cell_index(self.cells, last_id) + 1):
            self._run(number)

    def run_until(self, cell_id: str) -> None:
        """Every code cell up to and including the one with this id."""
        self.run_before(cell_id)
        self.run(cell_id)

    def __getitem__(self, name: str):
        return self.namespace[name]


DETECTOR_CELL = "detector"  # step 3's detector (the learner's, Detector beside it), from the settings
LOOP_CELL = "poll-loop"  # step 3's poll loop
CLOSE_CELL = "close"  # the consumer and the alert producer closed


# -- the notebooks as processes ------------------------------------------------------------------


def consumer_script(directory: Path) -> Path:
    """Step 3 as a script, up to and including the review of its alerts: it writes alerts.csv,
    sensor_status.csv and alert_review.csv.

    The cells after it only draw (a map and one plot per box: a minute for 100 boxes) and are left out.
    """
    return notebook_as_script("step_3_event_processing.ipynb", directory, last_cell="review")


def script_env(**settings: str) -> dict[str, str]:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    env.update(settings)
    return env


def start_script(script: Path, env: dict[str, str], log: Path, *arguments: str) -> subprocess.Popen:
    """Run a notebook script as its own process (group), output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(script), *arguments],
            cwd=SRC,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )


def _ctrl_c_as_in_a_terminal() -> None:
    # A shell's background job ignores SIGINT, and its children inherit that: undo it, so SIGINT
    # becomes KeyboardInterrupt in the script as Ctrl+C (or Jupyter's interrupt button) would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(process: subprocess.Popen, log: Path, timeout_s: float) -> str:
    """Wait for the process; its output; fail with that output if it did not succeed."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(
            f"{process.args[1]} still ran after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}"
        ) from None
    output = log.read_text(encoding="utf-8", errors="replace")
    assert process.returncode == 0, f"exit code {process.returncode}:\n{output[-3000:]}"
    return output


# -- the notebook in a real kernel, every cell queued at once, as JupyterLab's Run All does ----------


class QueuedKernel:
    """A notebook's code cells sent to a fresh kernel all at once, as JupyterLab's Run All sends them: the kernel
    runs them in order and, once one ends in an error, aborts those still queued (stop_on_error).

    `insert` puts test-only code cells before the cell with an id; the messages are read from the
    kernel's output channel as they come, so a test can wait for a line a cell prints.
    """

    def __init__(self, name: str, env: dict[str, str], insert: dict[str, str] | None = None):
        from jupyter_client import KernelManager

        notebook = nbformat.read(SRC / name, as_version=4)
        self.cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        for cell_id, source in (insert or {}).items():
            self.cells.insert(cell_index(self.cells, cell_id), nbformat.v4.new_code_cell(source))
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=script_env(**env), cwd=str(SRC))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self.printed: dict[str, str] = {}  # request id -> what its cell printed
        self.queued: list[str] = []

    def index(self, cell_id: str) -> int:
        return cell_index(self.cells, cell_id)

    def run_all(self) -> list[str]:
        """Queue every cell; their request ids, in cell order."""
        self.queued = [self.client.execute(cell.source, stop_on_error=True) for cell in self.cells]
        return self.queued

    def run(self, cell_id: str, timeout_s: float = 120) -> dict:
        """Run one cell again (as Shift+Enter does) and return its reply."""
        return self.reply(self.client.execute(self.cells[self.index(cell_id)].source, stop_on_error=True), timeout_s)

    def wait_for(self, text: str, timeout_s: float) -> None:
        """Read the kernel's output until some cell prints `text`."""
        deadline = time.monotonic() + timeout_s
        while not any(text in printed for printed in self.printed.values()):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"within {timeout_s:.0f} s: no cell printed {text!r}:\n{self.all_printed()[-3000:]}"
            self._read_output(remaining)

    def reply(self, request: str, timeout_s: float = 120) -> dict:
        """The kernel's reply to one request (content: status ok, error or aborted), once its output is read."""
        deadline = time.monotonic() + timeout_s
        while True:
            message = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if message["parent_header"].get("msg_id") == request:
                break
        while self._read_output(0.5):
            pass  # the rest of what it printed
        return message["content"]

    def _read_output(self, timeout_s: float) -> bool:
        import queue

        try:
            message = self.client.get_iopub_msg(timeout=timeout_s)
        except queue.Empty:
            return False
        request = message["parent_header"].get("msg_id", "")
        content = message["content"]
        if message["msg_type"] == "stream":
            self.printed[request] = self.printed.get(request, "") + content["text"]
        elif message["msg_type"] == "error":
            self.printed[request] = self.printed.get(request, "") + "\n".join(content["traceback"])
        return True

    def all_printed(self) -> str:
        return "".join(self.printed.get(request, "") for request in self.queued)

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def interrupt_when_reached(patch: str) -> str:
    """A test-only cell: `patch` (code that calls `reached()` once at the chosen moment) plus `reached()`, which
    prints a line for the test and waits until the kernel has been interrupted (■ sends SIGINT), so the
    interrupt lands exactly there. A loop that holds ■ until its message is done sees it right after."""
    return (
        "import threading\n"
        "from pm25.streaming import interrupts as _interrupts\n"
        "_interrupted, _on_sigint = threading.Event(), _interrupts.HeldCtrlC.on_sigint\n"
        "def _noting(self, number, frame):\n"
        "    _interrupted.set()\n"
        "    _on_sigint(self, number, frame)\n"
        "_interrupts.HeldCtrlC.on_sigint = _noting\n"
        "def reached():\n"
        "    print('INTERRUPT NOW', flush=True)\n"
        "    assert _interrupted.wait(60), 'no interrupt came'\n" + patch
    )


LEARNER_GOES_ON = """
import sys

import nbformat

from pm25.errors import StoppedByYou

namespace = {{"__name__": "__main__"}}
for source in [cell.source for cell in nbformat.read({notebook!r}, as_version=4).cells if cell.cell_type == "code"]:
    try:
        exec(compile(source, "<cell>", "exec"), namespace)
    except StoppedByYou as stopped:
        print(f"■ {{stopped}}", flush=True)  # the learner reads the line, then runs the next cell
"""


def stopped_then_next_cells_script(name: str, directory: Path) -> Path:
    """src/<name> as a script that runs its code cells in order and, after a cell stopped with ■ (StoppedByYou),
    goes on with the next one, as a learner does who ran the cells one by one."""
    path = directory / f"{Path(name).stem}_cells.py"
    path.write_text(LEARNER_GOES_ON.format(notebook=str(SRC / name)), encoding="utf-8")
    return path
