"""Peak memory of step 3's consumer core on a long stream: it keeps state per box, not per reading.

Run from the repository root:  .venv/bin/python benchmarks/bench_memory.py [--json PATH]

Each size runs in a fresh subprocess: the same 1,000 boxes send hourly readings, 100,000 and then 1,000,000
of them. The messages come from an in-memory generator of encoded messages (contract.encode, made one at a
time, never all held), not from Kafka: what is measured is the core of step 3's loop, decode + Detector +
StatusTracker. The figure is the child's peak RSS (resource.getrusage ru_maxrss) above its RSS after
imports and warm-up, so the interpreter and the libraries are not counted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from figures import write_figures  # benchmarks/figures.py, next to this script

from pm25 import contract  # from src/ (see the path above), not installed
from pm25.detector import Detector
from pm25.status import StatusTracker

BOXES = 1_000
SIZES = (100_000, 1_000_000)
START = datetime(2024, 1, 15, tzinfo=UTC)
SENSOR = "0" * 24
TARGET_GROWTH_RATIO = 1.25  # flat: 10 times the readings may cost at most 25 % more memory


def rss_now_kib() -> int:
    """Resident set size now, from /proc (ru_maxrss only knows the peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


def messages(count: int):
    """Encoded hourly readings from BOXES boxes, one at a time; values wander so alerts come and go."""
    for index in range(count):
        hour, box = divmod(index, BOXES)
        value = 5.0 + (box % 9) * 2.5 + (hour * 7 + box) % 24 * 0.5
        name = f"Box {box}"
        reading = contract.Reading(f"{box:024x}", name, SENSOR, 51.96, 7.62, START + timedelta(hours=hour), value)
        yield contract.encode(reading)


def child(count: int) -> dict:
    detector, status = Detector(), StatusTracker(active_hours=24)
    for raw in messages(2_000):  # warm up the decoder (imports, caches) before the baseline is taken
        contract.decode(raw)
    baseline = rss_now_kib()
    started = time.perf_counter()
    alerts = 0
    for raw in messages(count):
        reading = contract.decode(raw)
        if detector.process(reading) is not None:
            alerts += 1
        status.update(reading)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"readings": count, "boxes": len(detector.box_ids()), "alerts": alerts, "seconds": round(seconds, 1),
            "baseline_rss_kib": baseline, "peak_rss_kib": peak, "growth_kib": peak - baseline}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return

    runs = []
    for size in SIZES:
        done = subprocess.run([sys.executable, __file__, "--child", str(size)], capture_output=True, text=True,
                              check=True, timeout=1800)  # fmt: skip
        runs.append(json.loads(done.stdout))
    small, large = runs
    ratio = large["growth_kib"] / max(small["growth_kib"], 1)
    met = ratio <= TARGET_GROWTH_RATIO
    print(f"Step 3's consumer core (decode + Detector + StatusTracker), {BOXES:,} boxes, in-memory messages")
    print(f"{'readings':>10}{'seconds':>9}{'alerts':>8}{'base MiB':>10}{'peak MiB':>10}{'growth MiB':>12}")
    for run in runs:
        print(
            f"{run['readings']:>10,}{run['seconds']:>9.1f}{run['alerts']:>8}{run['baseline_rss_kib'] / 1024:>10.1f}"
            f"{run['peak_rss_kib'] / 1024:>10.1f}{run['growth_kib'] / 1024:>12.1f}"
        )
    print(f"growth(1e6) / growth(1e5) = {ratio:.2f} (target <= {TARGET_GROWTH_RATIO}): {'met' if met else 'NOT met'}")
    figures = {"boxes": BOXES, "source": "in-memory generator of encoded messages (no Kafka)", "runs": runs,
               "growth_ratio_1e6_over_1e5": round(ratio, 3), "target_growth_ratio": TARGET_GROWTH_RATIO,
               "targets_met": met}  # fmt: skip
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
