"""`make bench`: every benchmark of the tutorial, one table, build/bench.json with all figures, and one more
line in build/bench-history.jsonl (the table with the commit, the machine and its load), so that a regression
shows next to earlier runs.

Run from the repository root:  .venv/bin/python benchmarks/run_all.py [--full-naive]

It runs bench_detector.py, bench_producer.py, bench_latency.py, bench_consumer.py and bench_stream_processor.py
(step 4, on 100,000 readings; each with --json into build/), and times the three step notebooks executed headless
in order (nbclient, a fresh kernel each) against an embedded broker and the local openSenseMap replay, after one
untimed warm-up kernel (a warm environment). Then, on each real Apache Kafka line (--real-kafka; a line without
Java or jars is skipped with one line), one broker for bench_producer.py, bench_latency.py and bench_consumer.py
--idle-only: the table puts those figures beside the embedded broker's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pm25.brokers.embedded import EmbeddedBroker
from pm25.brokers.jvm import BROKERS
from pm25.brokers.jvm_process import NAMES, JvmKafka, missing
from tests.notebooks import execute_notebook
from tests.osem_replay import ReplayServer

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
STEPS = ("step_1_data_prep.ipynb", "step_2_producer.ipynb", "step_3_event_processing.ipynb")
TARGET_NOTEBOOKS_S = 60.0
# Step 4's pipeline, one instance, ran 6,900 readings/s on 100,000 readings and 7,900 on 300,000 (2 cores, load 2):
# its rate does not fall with size. 100,000 readings are about three days of event time on its 48 boxes, the last
# two with full 24-hour windows (the steady state), and take under a minute; 1,000,000 would add minutes, not facts.
STEP4_READINGS = 100_000


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def commit() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def load() -> str:
    """The load averages (1, 5, 15 min): other work on the machine slows every figure down."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def run_bench(script: str, *extra: str, broker: JvmKafka | None = None) -> dict:
    """One benchmark script as a process, on the embedded broker it starts, or on `broker`."""
    out = BUILD / f"{Path(script).stem}{f'_{broker.line}' if broker else ''}.json"
    print(
        f"\n== {script} {' '.join(extra)} on {broker.name if broker else 'the embedded broker'} "
        f"(load average {load()})",
        flush=True,
    )
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers} if broker else None
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--json", str(out), *extra], cwd=REPO, env=env
    )
    figures = json.loads(out.read_text()) if done.returncode == 0 and out.exists() else {"error": done.returncode}
    figures["wall_s"] = round(time.monotonic() - started, 1)
    return figures


def on_real_kafka(line: str) -> dict:
    """The producer, latency and idle-consumer figures on one real broker line, one broker for all three."""
    problem = missing(line)
    if problem:
        print(f"\n== {NAMES[line]} skipped: {problem}", flush=True)
        return {"skipped": problem}
    with BROKERS[line]() as broker:
        return {
            "broker": broker.name,
            "producer": run_bench("bench_producer.py", broker=broker),
            "latency": run_bench("bench_latency.py", broker=broker),
            "consumer": run_bench("bench_consumer.py", "--idle-only", broker=broker),
        }


def beside_real_kafka(figures: dict) -> dict[str, object]:
    """The table's figures that every broker gives, by row name."""
    lat = {(r["rate_per_s"], r["fetch_max_wait_ms"]): r for r in get(figures, "latency", "results", default=[])}
    wait = get(figures, "latency", "fetch_max_wait_ms")
    return {
        "producer ceiling msg/s (same run)": get(figures, "producer", "ceiling", "per_s"),
        "producer bulk msg/s": get(figures, "producer", "bulk", "per_s"),
        "latency p50/p99 ms at 1,000/s": (get(lat, (1000, wait), "p50_ms"), get(lat, (1000, wait), "p99_ms")),
        "  the same, fetch wait 500 ms": (get(lat, (1000, 500), "p50_ms"), get(lat, (1000, 500), "p99_ms")),
        "idle step 3 consumer % of a core": get(figures, "consumer", "idle", 0, "cpu_percent_of_one_core"),
        "  the same, fetch wait 500 ms (idle)": get(figures, "consumer", "idle", 1, "cpu_percent_of_one_core"),
    }


def shown(value) -> str:
    if value is None or value == (None, None):
        return ""
    if isinstance(value, tuple):
        return " / ".join(shown(one) for one in value)
    if isinstance(value, float) and value <= 100:
        return f"{value:.2f}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def time_notebooks() -> dict:
    print("\n== the three step notebooks, headless, in order", flush=True)
    with EmbeddedBroker() as broker, ReplayServer() as replay, tempfile.TemporaryDirectory() as data_dir:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "OSEM_API_URL": replay.url,
            "PM25_DATA_DIR": data_dir,
            "PM25_IDLE_TIMEOUT_S": "5",
        }
        execute_notebook("self_tests.ipynb", env)  # warm-up, untimed: kernel start, imports, file cache
        seconds = {}
        for name in STEPS:
            started = time.monotonic()
            execute_notebook(name, env)
            seconds[name] = round(time.monotonic() - started, 1)
            print(f"  {name}: {seconds[name]} s", flush=True)
    total = round(sum(seconds.values()), 1)
    return {
        "seconds": seconds,
        "total_s": total,
        "idle_timeout_s": 5,
        "target_s": TARGET_NOTEBOOKS_S,
        "targets_met": total < TARGET_NOTEBOOKS_S,
    }


def get(figures: dict, *path, default=None):
    for key in path:
        if not isinstance(figures, dict | list):
            return default
        try:
            figures = figures[key]
        except (KeyError, IndexError):
            return default
    return figures


def at_least(value, target) -> bool | None:
    return None if value is None else value >= target


def at_most(value, target) -> bool | None:
    return None if value is None else value <= target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full-naive",
        action="store_true",
        help="run the naive detector on all 10,000 readings "
        "(about 6 minutes) instead of estimating it from 200 messages",
    )
    parser.add_argument(
        "--real-kafka",
        nargs="*",
        default=["kraft", "zookeeper"],
        choices=["kraft", "zookeeper"],
        help="real Kafka lines to measure beside the embedded broker (default: both; none: only it)",
    )
    args = parser.parse_args()
    BUILD.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    results = {
        "machine": machine(),
        "load_average_at_start": load(),
        "detector": run_bench("bench_detector.py", *([] if args.full_naive else ["--naive-sample", "200"])),
        "producer": run_bench("bench_producer.py"),
        "latency": run_bench("bench_latency.py"),
        "consumer": run_bench("bench_consumer.py"),
        "step4": run_bench("bench_stream_processor.py", "--readings", str(STEP4_READINGS)),
        "notebooks": time_notebooks(),
        "real_kafka": {line: on_real_kafka(line) for line in args.real_kafka},
        "load_average_at_end": load(),
    }
    results["baselines"] = {
        "detector": "naive: append each message to a pandas DataFrame and recompute every box's hourly means "
        "and their 24 h mean "
        "over everything so far (bench_detector.py)",
        "producer": "the same producer and loop with a flush() after every message (bench_producer.py); "
        "ceiling: kafka-python alone, pre-serialized bytes, 1 MiB batches, no callbacks, same broker, same run",
    }
    d, p, c, n = results["detector"], results["producer"], results["consumer"], results["notebooks"]
    lat = {(r["rate_per_s"], r["fetch_max_wait_ms"]): r for r in get(results, "latency", "results", default=[])}
    wait = get(results, "latency", "fetch_max_wait_ms")
    idle = get(c, "idle", 0, "cpu_percent_of_one_core")
    growth = tuple(round(run["growth_kib"] / 1024, 1) for run in get(c, "runs", default=[]))
    rows = [
        (
            "detector readings/s (1e6)",
            get(d, "detector_readings_per_s_1e6"),
            ">= 200,000",
            at_least(get(d, "detector_readings_per_s_1e6"), 200_000),
        ),
        (
            "detector time(1e6) / time(1e5)",
            get(d, "time_ratio_1e6_over_1e5"),
            "<= 12",
            at_most(get(d, "time_ratio_1e6_over_1e5"), 12),
        ),
        (
            "detector speed-up over naive",
            get(d, "speedup_over_naive_1e4"),
            ">= 100x",
            at_least(get(d, "speedup_over_naive_1e4"), 100),
        ),
        ("producer ceiling msg/s (same run)", get(p, "ceiling", "per_s"), "(reference)", None),
        ("producer bulk msg/s", get(p, "bulk", "per_s"), ">= 30,000", get(p, "met", "bulk_per_s")),
        ("producer bulk / ceiling", get(p, "bulk_of_ceiling"), ">= 0.70", get(p, "met", "of_ceiling")),
        ("producer flush-every-message msg/s", get(p, "flush_each", "per_s"), "(baseline)", None),
        ("producer bulk / flush-every-message", get(p, "ratio"), ">= 30x", get(p, "met", "ratio")),
        ("latency p50/p99 ms at 100/s", (get(lat, (100, wait), "p50_ms"), get(lat, (100, wait), "p99_ms")), "-", None),
        (
            "latency p50/p99 ms at 1,000/s",
            (get(lat, (1000, wait), "p50_ms"), get(lat, (1000, wait), "p99_ms")),
            "< 25 / < 60",
            get(results, "latency", "targets_met"),
        ),
        (
            "  the same, fetch wait 500 ms",
            (get(lat, (1000, 500), "p50_ms"), get(lat, (1000, 500), "p99_ms")),
            "(Kafka default)",
            None,
        ),
        ("step 3 loop msg/s (1e6)", get(c, "runs", 1, "per_s"), ">= 20,000", get(c, "met", "per_s")),
        ("step 4 pipeline msg/s (1e5)", get(results, "step4", "step4_readings_per_s"), "(vs step 3)", None),
        ("step 3 memory growth MiB 1e5 / 1e6", growth, "ratio <= 1.25", get(c, "met", "memory_flat")),
        ("idle step 3 consumer % of a core", idle, "< 5", get(c, "met", "idle_cpu")),
        ("  the same, fetch wait 500 ms (idle)", get(c, "idle", 1, "cpu_percent_of_one_core"), "(Kafka default)", None),
        ("step notebooks wall s (1+2+3)", n["total_s"], "< 60", n["targets_met"]),
    ]
    print(
        f"\nmachine: {results['machine']['cpu']}, {results['machine']['nproc']} CPUs, "
        f"{results['machine']['ram_gib']} GiB; load average {results['load_average_at_start']} at the start, "
        f"{results['load_average_at_end']} at the end"
    )
    real = {
        NAMES[line]: beside_real_kafka(figures)
        for line, figures in results["real_kafka"].items()
        if "skipped" not in figures
    }
    print(f"\n{'figure':<38}{'embedded':<18}" + "".join(f"{name:<24}" for name in real) + f"{'target':<16}met?")
    for name, value, target, met in rows:
        beside = "".join(f"{shown(figures.get(name)):<24}" for figures in real.values())
        print(f"{name:<38}{shown(value):<18}{beside}{target:<16}{'-' if met is None else 'yes' if met else 'NO'}")
    print("(targets and met? are the embedded broker's: the tutorial's default)")
    results["table"] = [
        {
            "figure": r[0],
            "value": r[1],
            "target": r[2],
            "met": r[3],
            **{name: figures.get(r[0]) for name, figures in real.items()},
        }
        for r in rows
    ]
    (BUILD / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    history = {
        "started": started.isoformat(timespec="seconds"),
        **commit(),
        "machine": results["machine"],
        "load_average_at_start": results["load_average_at_start"],
        "load_average_at_end": results["load_average_at_end"],
        "table": results["table"],
    }
    with (BUILD / "bench-history.jsonl").open("a", encoding="utf-8") as lines:
        lines.write(json.dumps(history, default=str, ensure_ascii=False) + "\n")
    print(f"\nAll figures: {BUILD / 'bench.json'}; this run appended to {BUILD / 'bench-history.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
