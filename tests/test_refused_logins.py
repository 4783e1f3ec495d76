"""A login the broker refused is named as such; without one, NoBroker says that no broker answers."""

from __future__ import annotations

import logging

from kafka.errors import KafkaConnectionError, SaslAuthenticationFailedError
from kafka.net.connection import KafkaConnection
from kafka.protocol.broker_version_data import BrokerVersionData

from pm25.streaming import refused_logins, sending


def test_no_broker_names_the_credentials_after_a_refused_login(monkeypatch):
    monkeypatch.setattr(refused_logins, "_last", None)
    assert "No Kafka broker answers" in str(sending.NoBroker("127.0.0.1:9093"))
    refusal = SaslAuthenticationFailedError("SaslAuthenticationFailedError: Authentication failed: invalid credentials")
    # as kafka-python's connection manager logs a refused bootstrap connection
    logging.getLogger("kafka.net.manager").warning(
        "Bootstrap connection to %s failed: %s (backoff %.2f secs)", "bootstrap-0", refusal, 0.05
    )
    message = str(sending.NoBroker("127.0.0.1:9093"))
    assert message.startswith("The Kafka broker at 127.0.0.1:9093 refused the login (")
    assert "invalid credentials" in message and "KAFKA_SASL_PASSWORD" in message, message


def test_a_connection_closed_during_the_sasl_login_counts_as_a_refusal(monkeypatch):
    monkeypatch.setattr(refused_logins, "_last", None)
    connection = KafkaConnection(
        None,
        node_id="bootstrap-0",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="u",
        sasl_plain_password="p",
    )
    connection.connection_lost(KafkaConnectionError("socket disconnected"))  # as the transport reports a close
    assert refused_logins.last_refusal() is None, "lost before ApiVersions: nothing says it was the login"
    connection.broker_version_data = BrokerVersionData(api_versions={18: (0, 4)})  # ApiVersions answered
    logging.getLogger("kafka.net.connection").error("%s: Connection lost: %s", connection, "socket disconnected")
    assert refused_logins.last_refusal() == refused_logins.CLOSED_DURING_LOGIN


def test_an_old_refusal_is_forgotten(monkeypatch):
    monkeypatch.setattr(refused_logins, "_last", (-refused_logins.REMEMBER_S - 1.0, "invalid credentials"))
    assert refused_logins.last_refusal() is None
