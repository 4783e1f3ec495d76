"""A login the broker refused is named as such; without one, NoBroker says that no broker answers."""

from __future__ import annotations

import logging

from kafka.errors import SaslAuthenticationFailedError

from pm25 import producing, refused_logins


def test_no_broker_names_the_credentials_after_a_refused_login(monkeypatch):
    monkeypatch.setattr(refused_logins, "_last", None)
    assert "No Kafka broker answers" in str(producing.NoBroker("127.0.0.1:9093"))
    refusal = SaslAuthenticationFailedError("SaslAuthenticationFailedError: Authentication failed: invalid credentials")
    # as kafka-python's connection manager logs a refused bootstrap connection
    logging.getLogger("kafka.net.manager").warning("Bootstrap connection to %s failed: %s (backoff %.2f secs)",
                                                   "bootstrap-0", refusal, 0.05)
    message = str(producing.NoBroker("127.0.0.1:9093"))
    assert message.startswith("The Kafka broker at 127.0.0.1:9093 refused the login (")
    assert "invalid credentials" in message and "KAFKA_SASL_PASSWORD" in message, message


def test_an_old_refusal_is_forgotten(monkeypatch):
    monkeypatch.setattr(refused_logins, "_last", (-refused_logins.REMEMBER_S - 1.0, "invalid credentials"))
    assert refused_logins.last_refusal() is None
