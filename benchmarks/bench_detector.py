"""How fast is the 24-hour-mean Detector, and does its cost per reading stay flat as the stream grows?

Run from the repository root:  .venv/bin/python benchmarks/bench_detector.py [--json PATH] [--naive-sample 0]

It times Detector.process on 100,000 and 1,000,000 synthetic readings at the raw rate of a senseBox
(one every ~2.5 minutes per box, 1,000 boxes), each time after an untimed warm-up of a full window
(the first 24 hours of every box), and compares it at 10,000 readings with the naive way: append every
message to a pandas DataFrame and recompute every box's hourly means and their 24-hour mean over
everything received so far.

Fair to both sizes: from a fresh detector, the first 18 hours of each box cannot decide anything
(coverage), so they cost about a third less per reading. With 1,000 boxes that is the first 432,000
readings: a run of 100,000 from a fresh start would be all warm-up and one of 1,000,000 mostly full
work, and their time ratio would measure that mix, not growth. After the warm-up every timed reading
has a full window; every ~24 readings its box opens a new hour, which closes one, decides once and drops
the oldest hour, at both sizes.

Times are CPU time of this process (time.process_time): the machine may be shared, and the best of a
few wall-clock runs favours the short run, which can slip between other processes, over the long one,
which cannot. Wall times are reported too. The garbage collector is off while timing, as in timeit.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from figures import write_figures  # benchmarks/figures.py, next to this script

from pm25.rules.detector import Detector

# 1,000 boxes, a city-sized network: 100,000 readings are then ~4 hours of stream (each box closes and
# drops 4 hours), 1,000,000 are ~42 hours, longer than the window: a cost that grew with the stream would show.
BOXES = 1_000
# A box's median interval between raw readings in the real Berlin recording
# (data/berlin_pm25_raw_2023-02-26.csv.gz) is 149.6 s: 24 readings per clock hour.
SECONDS_BETWEEN_READINGS = 150
WARM_UP_HOURS = 24  # the default window: from then on every box's window is full
WARM_UP_READINGS = BOXES * WARM_UP_HOURS * 3600 // SECONDS_BETWEEN_READINGS
SIZES = (10_000, 100_000, 1_000_000)  # 1e5 and 1e6 for the growth ratio, 1e4 against the naive way
START = datetime(2024, 1, 15, tzinfo=UTC)
TARGET_READINGS_PER_S = 200_000
TARGET_SPEEDUP = 100
TARGET_TIME_RATIO = 12


@dataclass(frozen=True, slots=True)
class Reading:
    """The four attributes the detector reads, as in pm25.data.contract.Reading."""

    box_id: str
    box_name: str
    timestamp: datetime
    value: float


def synthetic_readings(count: int, seed: int = 2024) -> list[Reading]:
    """Readings every 150 s (+ 0 to 10 s) per box, box after box within each round; values (two decimals,
    as on openSenseMap) wander around 15 µg/m³ with a daily cycle."""
    rng = random.Random(seed)
    levels = [rng.uniform(5.0, 25.0) for _ in range(BOXES)]  # some boxes mostly clean, some mostly not
    readings = []
    for index in range(count):
        step, box = divmod(index, BOXES)
        moment = START + timedelta(seconds=SECONDS_BETWEEN_READINGS * step + rng.uniform(0, 10))
        daily_cycle = 6.0 * math.sin(2 * math.pi * moment.hour / 24 + box)
        value = round(max(0.0, levels[box] + daily_cycle + rng.gauss(0.0, 4.0)), 2)
        readings.append(Reading(f"box{box:04d}", f"Box {box}", moment, value))
    return readings


@dataclass(frozen=True)
class Timing:
    cpu_s: float
    wall_s: float
    alerts: int


def time_detector(warm_up: list[Reading], readings: list[Reading]) -> Timing:
    """Times a fresh Detector over `readings`, after feeding it `warm_up` untimed."""
    detector = Detector()
    process = detector.process
    for reading in warm_up:
        process(reading)
    alerts = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: no collector passes over the million input readings in the timing
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for reading in readings:
            if process(reading) is not None:
                alerts += 1
        return Timing(time.process_time() - cpu, time.perf_counter() - wall, alerts)
    finally:
        if gc_was_enabled:
            gc.enable()


def best_timings(warm_up: list[Reading], stream: list[Reading], repeats: int) -> dict[int, Timing]:
    """The best (least CPU time) of `repeats` runs per size; the sizes take turns, so a change in the
    machine's load falls on all of them alike."""
    runs: dict[int, list[Timing]] = {size: [] for size in SIZES}
    for _ in range(repeats):
        for size in SIZES:
            runs[size].append(time_detector(warm_up, stream[:size]))
    return {size: min(timings, key=lambda t: t.cpu_s) for size, timings in runs.items()}


def naive_step(frame: pd.DataFrame, reading: Reading) -> tuple[pd.DataFrame, bool]:
    """One message the naive way: append it, recompute every box's hourly means and their 24-hour
    rolling mean, look up its box."""
    row = pd.DataFrame({"box_id": [reading.box_id], "timestamp": [reading.timestamp], "value": [reading.value]})
    frame = row if frame.empty else pd.concat([frame, row], ignore_index=True)
    hourly = frame.groupby(["box_id", frame["timestamp"].dt.floor("h")])["value"].mean()
    daily = hourly.reset_index(level=0).groupby("box_id")["value"].rolling("24h").mean()
    return frame, bool(daily.loc[reading.box_id].iloc[-1] > 15.0)


def as_frame(readings: list[Reading]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "box_id": pd.Series([r.box_id for r in readings], dtype="str"),
            "timestamp": pd.Series([r.timestamp for r in readings], dtype="datetime64[us, UTC]"),
            "value": pd.Series([r.value for r in readings], dtype="float64"),
        }
    )


def time_naive(readings: list[Reading], sample: int = 0) -> float:
    """CPU time of the naive way over all readings; with a sample, estimated from that many messages.

    It starts from an empty frame, its cheapest start, while the detector is timed with full windows,
    its dearest: the speed-up over it is a lower bound. The estimate times single messages at evenly
    spread stream positions (the frame before each is prepared untimed) and multiplies their mean cost
    by the number of readings.
    """
    if not sample:
        frame = as_frame([])
        started = time.process_time()
        for reading in readings:
            frame, _ = naive_step(frame, reading)
        return time.process_time() - started
    everything = as_frame(readings)
    positions = range(0, len(readings), max(1, len(readings) // sample))
    spent = 0.0
    for position in positions:
        before = everything.iloc[:position].copy()
        started = time.process_time()
        naive_step(before, readings[position])
        spent += time.process_time() - started
    return spent / len(positions) * len(readings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--repeats", type=int, default=3, help="detector runs per size; the best counts")
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=200,
        metavar="N",
        help="estimate the naive time from N evenly spread messages (default 200); 0 runs all 10,000 "
        "of them, which takes about 10 minutes",
    )
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    readings = synthetic_readings(WARM_UP_READINGS + max(SIZES))
    warm_up, stream = readings[:WARM_UP_READINGS], readings[WARM_UP_READINGS:]
    best = best_timings(warm_up, stream, args.repeats)
    naive_seconds = time_naive(stream[:10_000], args.naive_sample)
    load_after = os.getloadavg()[0]

    rate_1e6 = 1_000_000 / best[1_000_000].cpu_s
    rate_1e5 = 100_000 / best[100_000].cpu_s
    speedup = naive_seconds / best[10_000].cpu_s
    time_ratio = best[1_000_000].cpu_s / best[100_000].cpu_s
    figures = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_1min_before_after": [load_before, load_after],
        "timer": "process CPU time",
        "boxes": BOXES,
        "seconds_between_readings": SECONDS_BETWEEN_READINGS,
        "warm_up_readings": WARM_UP_READINGS,
        "detector_readings_per_s_1e6": round(rate_1e6),
        "detector_readings_per_s_1e5": round(rate_1e5),
        "detector_seconds_1e6": best[1_000_000].cpu_s,
        "detector_seconds_1e5": best[100_000].cpu_s,
        "detector_wall_seconds_1e6": best[1_000_000].wall_s,
        "detector_wall_seconds_1e5": best[100_000].wall_s,
        "alerts_1e6": best[1_000_000].alerts,
        "alerts_1e5": best[100_000].alerts,
        "time_ratio_1e6_over_1e5": time_ratio,
        "detector_seconds_1e4": best[10_000].cpu_s,
        "naive_seconds_1e4": naive_seconds,
        "naive_estimated_from_messages": args.naive_sample or None,
        "naive_readings_per_s_1e4": round(10_000 / naive_seconds),
        "speedup_over_naive_1e4": speedup,
    }

    checks = [
        (
            "readings/s, 1,000,000 readings",
            f"{rate_1e6:,.0f}",
            f">= {TARGET_READINGS_PER_S:,}",
            rate_1e6 >= TARGET_READINGS_PER_S,
        ),
        (
            "readings/s, 100,000 readings",
            f"{rate_1e5:,.0f}",
            f">= {TARGET_READINGS_PER_S:,}",
            rate_1e5 >= TARGET_READINGS_PER_S,
        ),
        ("time(1e6) / time(1e5)", f"{time_ratio:.2f}", f"<= {TARGET_TIME_RATIO}", time_ratio <= TARGET_TIME_RATIO),
        (
            "speed-up over naive, 10,000 readings",
            f"{speedup:,.0f}x",
            f">= {TARGET_SPEEDUP}x",
            speedup >= TARGET_SPEEDUP,
        ),
    ]
    print(
        f"Detector on {BOXES:,} boxes, a reading every ~2.5 min per box, after a {WARM_UP_HOURS}-hour warm-up "
        f"({WARM_UP_READINGS:,} readings, untimed); CPU time, best of {args.repeats} "
        f"(Python {figures['python']}, load {load_before:.1f} -> {load_after:.1f})"
    )
    print(f"  wall time: {best[1_000_000].wall_s:.2f} s for 1,000,000, {best[100_000].wall_s:.3f} s for 100,000")
    how = f"estimated from {args.naive_sample} messages" if args.naive_sample else "measured"
    print(
        f"  naive pandas recomputation: {figures['naive_readings_per_s_1e4']:,} readings/s "
        f"({naive_seconds:.1f} s for 10,000, {how})"
    )
    print(f"{'figure':<40}{'measured':>14}{'target':>14}  met")
    for name, measured, target, met in checks:
        print(f"{name:<40}{measured:>14}{target:>14}  {'yes' if met else 'NO'}")
    figures["targets_met"] = all(met for *_, met in checks)
    write_figures(args.json, figures)


if __name__ == "__main__":
    main()
