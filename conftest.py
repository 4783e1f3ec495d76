"""What the tests and the notebooks (run by nbmake) share: a Kafka broker, a local replay of the
openSenseMap API and a scratch data folder, set up once per test session.

Notebook items are not pytest functions and cannot use fixtures, so the services are started in
session hooks and handed to everything, notebooks included, through the environment. Under
pytest-xdist (`make test`: `-n 2`) each worker is a session of its own, with its own broker, replay,
ports and data folder; the controller, which runs no test, starts none.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import ExitStack

import pytest

from pm25.brokers.embedded import BrokerError
from pm25.brokers.jvm import session_broker
from tests.faults.support import FIGURES, Figures
from tests.notebooks import execute_notebook, stream_text, worker_group
from tests.osem_replay import ReplayServer

_services = ExitStack()
REPLAY_KEY = pytest.StashKey[ReplayServer]()


def _is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.getplugin("dsession") is not None


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_xdist_controller(session.config):
        return
    # A broker named by KAFKA_BOOTSTRAP_SERVERS (e.g. the compose stack's) is used as it is; otherwise
    # PM25_BROKER=embedded (default), zookeeper or kraft chooses the one started (make test-kafka).
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        try:
            broker = _services.enter_context(session_broker(os.environ.get("PM25_BROKER")))
        except BrokerError as error:
            pytest.exit(f"No broker for the tests: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    replay = _services.enter_context(ReplayServer())
    session.config.stash[REPLAY_KEY] = replay
    os.environ["OSEM_API_URL"] = replay.url
    data_dir = _services.enter_context(tempfile.TemporaryDirectory(prefix="pm25-data-"))
    os.environ["PM25_DATA_DIR"] = data_dir
    # Notebooks stop consuming after this many idle seconds; the broker is local, so be brisk.
    os.environ.setdefault("PM25_IDLE_TIMEOUT_S", "5")
    # Step 3b pretends each record takes this long to process; the tests prove the group, not the wait.
    os.environ.setdefault("PM25_WORK_MS_PER_RECORD", "0")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, called on the controller
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadgroup` with the groups of tests.notebooks.worker_group: the tests of a group run on one
    worker, in order, and (larger scopes first) the groups start first.

    xdist 3.8 reads `xdist_group` marks by rewriting a test's node id, which pytest 9 no longer allows (the
    marks have no effect), and the controller never sees the marks: so the groups are named by node id.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class NotebookGroups(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid) or super()._split_scope(nodeid)

    return NotebookGroups(config, log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _services.close()


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: a worker finished
def pytest_testnodedown(node, error) -> None:
    if counted := getattr(node, "workeroutput", {}).get("fault_figures"):
        FIGURES.add(counted)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    # Here, not in tests/faults/conftest.py: under pytest-xdist the controller loads no other conftest.
    if Figures() != FIGURES:
        terminalreporter.write_sep("=", "fault suite figures")
        terminalreporter.write_line(FIGURES.line())


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    """The broker every test talks to: the embedded one, or KAFKA_BOOTSTRAP_SERVERS."""
    return os.environ["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture
def replay_api(request: pytest.FixtureRequest) -> ReplayServer:
    """The openSenseMap replay, with no faults pending before and after the test."""
    replay = request.config.stash[REPLAY_KEY]
    replay.clear_faults()
    yield replay
    replay.clear_faults()


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses (the broker lives for the whole session)."""
    return f"test_{uuid.uuid4().hex[:12]}"


# Notebooks that tests run as committed, so nbmake does not run them a second time: step 4 reads step 3's
# alerts and takes minutes (tests/test_step4_notebook.py runs it after the shared offline chain); the task
# demo's committed run is tests/test_tasks.py's test_the_committed_demo_falls_back_to_every_solution.
RUN_AS_COMMITTED_BY_TESTS = {"step_4_stream_processor.ipynb", "tasks_demo.ipynb"}


def pytest_ignore_collect(collection_path, config: pytest.Config) -> bool | None:
    return True if collection_path.name in RUN_AS_COMMITTED_BY_TESTS else None


@pytest.fixture(scope="session")
def offline_chain(tmp_path_factory) -> tuple[dict[str, str], str]:
    """Steps 1-3 as committed, headless with OSEM_OFFLINE=1 and the default settings, on topics of their own,
    run once for the tests that need them (tests.notebooks.worker_group keeps those on one worker).

    Returns the environment the steps ran with (for step 4) and what step 3 printed.
    """
    data_dir = tmp_path_factory.mktemp("offline")
    topic = f"test_offline_{uuid.uuid4().hex[:12]}"
    env = {"OSEM_OFFLINE": "1", "PM25_DATA_DIR": str(data_dir), "PM25_TOPIC": topic,
           "PM25_ALERT_TOPIC": f"{topic}_alerts"}  # fmt: skip
    for step in ("step_1_data_prep.ipynb", "step_2_producer.ipynb"):
        execute_notebook(step, env)
    return env, stream_text(execute_notebook("step_3_event_processing.ipynb", env))
