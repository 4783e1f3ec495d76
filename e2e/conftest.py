"""What the browser test needs: `make lab` running against the session's broker and replay API, and a
headless Chromium (Debian's, driven by Playwright) that only talks to 127.0.0.1.

Run from the repository root so that the root conftest.py starts the broker and the openSenseMap
replay and puts KAFKA_BOOTSTRAP_SERVERS, OSEM_API_URL and PM25_DATA_DIR into the environment:

    .venv/bin/python -m pytest e2e -o addopts="" -p no:nbmake
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from pm25.brokers.embedded import free_port, port_is_free

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PM25_E2E_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAB_START_TIMEOUT_S = 90

# JupyterLab user settings for the test: never write the notebooks back to src/ (no autosave), keep every
# cell in the DOM (windowing off) so all outputs can be inspected, and never ask about or fetch the news.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    data_dir: Path

    def api(self, method: str, path: str) -> requests.Response:
        return requests.request(
            method, f"{self.url}{path}", headers={"Authorization": f"token {self.token}"}, timeout=10
        )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """`python -m pm25.classroom.lab`, as `make lab` runs it, with the session's broker (it starts none of its own)."""
    for variable in ("KAFKA_BOOTSTRAP_SERVERS", "OSEM_API_URL", "PM25_DATA_DIR"):
        assert os.environ.get(variable), f"{variable} is not set: run pytest from the repository root"
    port, token = free_port(), secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="pm25-e2e-lab-") as scratch:
        settings_dir = Path(scratch) / "settings"
        for name, values in LAB_SETTINGS.items():
            (settings_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (settings_dir / name).write_text(json.dumps(values))
        env = {
            **os.environ,
            "JUPYTER_PORT": str(port),
            "JUPYTER_TOKEN": token,
            "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
            "JUPYTERLAB_WORKSPACES_DIR": str(Path(scratch) / "workspaces"),
            "PM25_IDLE_TIMEOUT_S": os.environ.get("PM25_IDLE_TIMEOUT_S", "5"),
        }
        # Step 3b's pretend work per record as a learner has it (the other tests set none): the first member is
        # still catching up when the second joins, so both process records and the handover shows.
        env.pop("PM25_WORK_MS_PER_RECORD", None)
        log = (Path(scratch) / "lab.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "pm25.classroom.lab"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + LAB_START_TIMEOUT_S
            while not _answers(f"{url}/api/status?token={token}"):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"JupyterLab did not start:\n{(Path(scratch) / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.2)  # polling interval while the server starts, not synchronisation
            yield Lab(url, token, Path(os.environ["PM25_DATA_DIR"]))
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)  # Ctrl+C, twice: Jupyter asks for confirmation
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            log.close()
            saved = [line for line in (Path(scratch) / "lab.log").read_text().splitlines() if "Saving file" in line]
    assert port_is_free(port)
    assert not saved, f"JupyterLab wrote notebooks back to src/ (autosave must be off): {saved}"


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make e2e does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def blocked_requests() -> list[str]:
    """Every request the browser tried outside 127.0.0.1 (map tiles, fonts, ...), each refused."""
    return []


@pytest.fixture(scope="session")
def page(browser, lab, blocked_requests):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)

    def loopback_only(route):
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked_requests.append(route.request.url)
            route.abort()

    context.route("**/*", loopback_only)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
