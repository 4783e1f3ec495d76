"""A refused SASL login told apart from a broker that does not answer (imported by pm25.streaming.sending).

kafka-python 3.0.12 retries a refused login until its bootstrap timeout, then raises the same
KafkaTimeoutError as when nothing listens. What it leaves is its log, and two filters here read it (they let
every record through): a refusal with the broker's reason (SaslAuthenticationFailedError), and a connection
the broker closed after answering ApiVersions but before the SASL login completed. Kafka 4.3 over SASL_SSL
logs "Failed authentication ... invalid credentials" for every attempt, yet the client often receives no
reason, only the close (tests/realkafka/test_sasl_tls.py): so the close counts too.
`sending.NoBroker` names the credentials when `last_refusal()` has something.
"""

from __future__ import annotations

import logging
import time

from kafka.errors import SaslAuthenticationFailedError
from kafka.net.connection import KafkaConnection

REMEMBER_S = 120  # longer than any bootstrap timeout the project uses
CLOSED_DURING_LOGIN = "the broker closed the connection during the SASL login"

_last: tuple[float, str] | None = None


def last_refusal() -> str | None:
    """What the broker said (or did) when it last refused a login in this process, if within REMEMBER_S."""
    if _last is None or time.monotonic() - _last[0] > REMEMBER_S:
        return None
    return _last[1]


def _remember(what: str) -> None:
    global _last
    _last = (time.monotonic(), what)


def _refused_with_a_reason(record: logging.LogRecord) -> bool:
    for argument in record.args if isinstance(record.args, tuple) else ():
        if isinstance(argument, SaslAuthenticationFailedError):
            _remember(str(argument).rsplit(": ", 1)[-1])
    return True


def _closed_during_login(record: logging.LogRecord) -> bool:
    """kafka-python's "<connection>: Connection lost: <error>" of a connection that never finished starting."""
    args = record.args if isinstance(record.args, tuple) else ()
    connection = args[0] if args else None
    if (
        isinstance(connection, KafkaConnection)
        and "Connection lost" in str(record.msg)
        and connection.sasl_enabled
        and connection.broker_version_data is not None
        and connection.init_future.failed()
        and not (last_refusal() or "").startswith("Authentication failed")
    ):  # a reason says more: keep it
        _remember(CLOSED_DURING_LOGIN)
    return True


logging.getLogger("kafka.net.manager").addFilter(_refused_with_a_reason)
logging.getLogger("kafka.net.connection").addFilter(_closed_during_login)
