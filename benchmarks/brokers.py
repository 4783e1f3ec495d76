"""The broker a benchmark measures on: KAFKA_BOOTSTRAP_SERVERS when set, else the one PM25_BROKER names
(embedded Tansu by default; zookeeper or kraft: real Apache Kafka from `make kafka-jars`)."""

import os
from contextlib import ExitStack

from pm25.brokers.jvm import session_broker


def broker_to_measure(stack: ExitStack) -> tuple[str, str]:
    """(bootstrap servers, the broker's name for the figures); a started broker lives as long as `stack`."""
    bootstrap_servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap_servers:
        return bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS"
    broker = stack.enter_context(session_broker(os.environ.get("PM25_BROKER")))
    name = getattr(broker, "name", "embedded Tansu broker (in memory)")
    return broker.bootstrap_servers, name
