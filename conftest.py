"""What the tests and the notebooks (run by nbmake) share: a Kafka broker, a local replay of the
openSenseMap API and a scratch data folder, set up once per test session.

Notebook items are not pytest functions and cannot use fixtures, so the services are started in
session hooks and handed to everything, notebooks included, through the environment.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import ExitStack

import pytest

from pm25.broker import BrokerError
from pm25.jvm_brokers import session_broker
from tests.osem_replay import ReplayServer

_services = ExitStack()
REPLAY_KEY = pytest.StashKey[ReplayServer]()


def pytest_sessionstart(session: pytest.Session) -> None:
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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _services.close()


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
