"""`make bench`: every benchmark of the tutorial, one table, and build/bench.json with all figures.

Run from the repository root:  .venv/bin/python benchmarks/run_all.py [--full-naive]

It runs bench_detector.py, bench_producer.py, bench_latency.py and bench_memory.py (each with --json into
build/), and times the three step notebooks executed headless in order (nbclient, a fresh kernel each) against
an embedded broker and the local openSenseMap replay, after one untimed warm-up kernel (a warm environment).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from pm25.broker import EmbeddedBroker  # from src/ (see the path above), not installed
from tests.notebooks import execute_notebook
from tests.osem_replay import ReplayServer

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
STEPS = ("step_1_data_prep.ipynb", "step_2_producer.ipynb", "step_3_event_processing.ipynb")
TARGET_NOTEBOOKS_S = 90.0


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))  # fmt: skip
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kib / 1024**2, 1),
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


def run_bench(script: str, *extra: str) -> dict:
    out = BUILD / f"{Path(script).stem}.json"
    print(f"\n== {script} {' '.join(extra)}", flush=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--json", str(out), *extra], cwd=REPO)
    figures = json.loads(out.read_text()) if done.returncode == 0 and out.exists() else {"error": done.returncode}
    figures["wall_s"] = round(time.monotonic() - started, 1)
    return figures


def time_notebooks() -> dict:
    print("\n== the three step notebooks, headless, in order", flush=True)
    with EmbeddedBroker() as broker, ReplayServer() as replay, tempfile.TemporaryDirectory() as data_dir:
        env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "OSEM_API_URL": replay.url,
               "PM25_DATA_DIR": data_dir, "PM25_IDLE_TIMEOUT_S": "5"}  # fmt: skip
        execute_notebook("self_tests.ipynb", env)  # warm-up, untimed: kernel start, imports, file cache
        seconds = {}
        for name in STEPS:
            started = time.monotonic()
            execute_notebook(name, env)
            seconds[name] = round(time.monotonic() - started, 1)
            print(f"  {name}: {seconds[name]} s", flush=True)
    total = round(sum(seconds.values()), 1)
    return {"seconds": seconds, "total_s": total, "idle_timeout_s": 5, "target_s": TARGET_NOTEBOOKS_S,
            "targets_met": total < TARGET_NOTEBOOKS_S}  # fmt: skip


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
    parser.add_argument("--full-naive", action="store_true", help="run the naive detector on all 10,000 readings "
                        "(about 6 minutes) instead of estimating it from 200 messages")  # fmt: skip
    args = parser.parse_args()
    BUILD.mkdir(exist_ok=True)
    results = {
        "machine": machine(),
        "detector": run_bench("bench_detector.py", *([] if args.full_naive else ["--naive-sample", "200"])),
        "producer": run_bench("bench_producer.py"),
        "latency": run_bench("bench_latency.py"),
        "memory": run_bench("bench_memory.py"),
        "notebooks": time_notebooks(),
    }
    results["baselines"] = {
        "detector": "naive: append each message to a pandas DataFrame and recompute every box's hourly means "
        "and their 24 h mean "
        "over everything so far (bench_detector.py)",
        "producer": "a flush() after every message instead of batching with one flush at the end (bench_producer.py)",
    }
    d, p, m, n = results["detector"], results["producer"], results["memory"], results["notebooks"]
    lat = {r["rate_per_s"]: r for r in get(results, "latency", "results", default=[])}
    rows = [
        ("detector readings/s (1e6)", get(d, "detector_readings_per_s_1e6"), ">= 200,000",
         at_least(get(d, "detector_readings_per_s_1e6"), 200_000)),
        ("detector time(1e6) / time(1e5)", get(d, "time_ratio_1e6_over_1e5"), "<= 12",
         at_most(get(d, "time_ratio_1e6_over_1e5"), 12)),
        ("detector speed-up over naive", get(d, "speedup_over_naive_1e4"), ">= 100x",
         at_least(get(d, "speedup_over_naive_1e4"), 100)),
        ("producer bulk msg/s", get(p, "bulk", "per_s"), ">= 20,000", get(p, "met", "bulk_per_s")),
        ("producer flush-every-message msg/s", get(p, "flush_each", "per_s"), "(baseline)", None),
        ("producer bulk / flush-every-message", get(p, "ratio"), ">= 30x", get(p, "met", "ratio")),
        ("latency p50/p99 ms at 100/s", (get(lat, 100, "p50_ms"), get(lat, 100, "p99_ms")), "-", None),
        ("latency p50/p99 ms at 1,000/s", (get(lat, 1000, "p50_ms"), get(lat, 1000, "p99_ms")), "p99 < 500",
         get(results, "latency", "targets_met")),
        ("memory growth MiB 1e5 / 1e6", tuple(round(r["growth_kib"] / 1024, 1) for r in get(m, "runs", default=[])),
         "ratio <= 1.25", get(m, "targets_met")),
        ("step notebooks wall s (1+2+3)", n["total_s"], "< 90", n["targets_met"]),
    ]  # fmt: skip
    print(f"\n{'figure':<38}{'value':<22}{'target':<16}met?")
    for name, value, target, met in rows:
        shown = f"{value:,.0f}" if isinstance(value, int | float) and value > 100 else str(value)
        shown = f"{value:.1f}" if isinstance(value, float) and value <= 100 else shown
        print(f"{name:<38}{shown:<22}{target:<16}{'-' if met is None else 'yes' if met else 'NO'}")
    results["table"] = [{"figure": r[0], "value": r[1], "target": r[2], "met": r[3]} for r in rows]
    (BUILD / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nAll figures: {BUILD / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
