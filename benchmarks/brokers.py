"""The broker a benchmark measures on: KAFKA_BOOTSTRAP_SERVERS when set, else an embedded Tansu broker."""

import os
from contextlib import ExitStack

from pm25.broker import EmbeddedBroker  # the scripts put src/ on sys.path before importing this module


def broker_to_measure(stack: ExitStack) -> tuple[str, str]:
    """(bootstrap servers, the broker's name for the figures); an embedded broker lives as long as `stack`."""
    bootstrap_servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap_servers:
        return bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS"
    return stack.enter_context(EmbeddedBroker()).bootstrap_servers, "embedded Tansu broker (in memory)"
