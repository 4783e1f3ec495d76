"""SASL/SCRAM-SHA-512 over TLS on Kafka 4, with the settings the README documents for managed clusters.

The broker's certificate is made by the test (keytool) and trusted the way a private CA is: SSL_CERT_FILE.
"""

from __future__ import annotations

import logging

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from pm25.brokers.jvm import KRaftKafka, SaslTls
from pm25.config import Settings
from pm25.polling import wait_until
from pm25.streaming import refused_logins, sending
from tests.realkafka.certificates import broker_keystore
from tests.realkafka.conftest import skip_unless_kraft_session

pytestmark = pytest.mark.realkafka
USER = "learner"
TEST_PASSWORD = "test-scram-password"  # of a broker the test makes; the scan for secrets knows "test"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A KRaft broker with a SASL_SSL listener and one SCRAM-SHA-512 user, and its certificate as PEM."""
    skip_unless_kraft_session()  # a module fixture is set up before the function-scoped skips
    folder = tmp_path_factory.mktemp("tls")
    keystore, certificate = broker_keystore(folder, "keystore-password")
    with KRaftKafka(sasl_tls=SaslTls(keystore, "keystore-password", {USER: TEST_PASSWORD})) as broker:
        with pytest.MonkeyPatch.context() as patch:  # ready once the secured listener lets the user in
            patch.setenv("SSL_CERT_FILE", str(certificate))
            settings = documented_settings(broker, TEST_PASSWORD)
            wait_until(lambda: lets_in(settings), 90, "the SASL_SSL listener to answer")
        yield broker, certificate


def lets_in(settings: Settings) -> bool:
    try:
        with KafkaAdminClient(**settings.kafka_options(), bootstrap_timeout_ms=10_000) as admin:
            return isinstance(admin.list_topics(), list)
    except KafkaError:
        return False


def documented_settings(broker: KRaftKafka, test_password: str) -> Settings:
    return Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": broker.sasl_tls_bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": test_password,
        }
    )


def test_the_documented_sasl_ssl_settings_create_send_and_read(kraft_only, secured, topic, monkeypatch, report):
    broker, certificate = secured
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    options = documented_settings(broker, TEST_PASSWORD).kafka_options()
    with KafkaAdminClient(**options) as admin:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    with KafkaProducer(**options, **sending.PRODUCER_SETTINGS) as producer:
        futures = [producer.send(topic, value=str(number).encode()) for number in range(100)]
        producer.flush(timeout=30)
    with KafkaConsumer(**options, enable_auto_commit=False, consumer_timeout_ms=5000) as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        received = [int(record.value) for record in consumer]
    report(
        f"[realkafka sasl] SASL_SSL SCRAM-SHA-512: sent {len(futures)}, acknowledged "
        f"{sum(f.succeeded() for f in futures)}, read back {len(received)}"
    )
    assert received == list(range(100))


def test_a_wrong_password_is_refused_during_the_login_and_the_client_can_tell(
    kraft_only, secured, monkeypatch, caplog, report
):
    """The broker logs "Failed authentication ... invalid credentials" for every attempt, but over SASL_SSL its
    reason often does not reach the client before the close; the close during the login is what always does."""
    broker, certificate = secured
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    monkeypatch.setattr(refused_logins, "_last", None)
    options = documented_settings(broker, "not-the-test-password").kafka_options()
    with caplog.at_level(logging.WARNING, logger="kafka"), pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(**options, bootstrap_timeout_ms=5_000)  # as step 2 opens its admin client
    attempts = [r for r in caplog.records if r.name == "kafka.net.connection" and "Connection lost" in r.msg]
    reasons = [r for r in caplog.records if "invalid credentials" in r.getMessage()]
    report(
        f"[realkafka sasl] wrong password: {len(attempts)} attempts refused, {len(reasons)} log lines with the "
        f"broker's reason; the client concluded: {refused_logins.last_refusal()}"
    )
    assert attempts, "the client never reached the login"
    assert refused_logins.last_refusal(), "the client did not tell a refused login from a missing broker"


def test_a_wrong_password_gives_one_clear_line(kraft_only, secured, monkeypatch, report):
    broker, certificate = secured
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    monkeypatch.setattr(refused_logins, "_last", None)  # this attempt's own refusal, not the test's before
    settings = documented_settings(broker, "not-the-test-password")
    with pytest.raises(KafkaTimeoutError):  # as step 2 opens its admin client, then raises NoBroker
        KafkaAdminClient(**settings.kafka_options(), bootstrap_timeout_ms=5_000)
    message = str(sending.NoBroker(settings.bootstrap_servers))
    report(f"[realkafka sasl] wrong password, step 2 says: {message}")
    assert "\n" not in message and "refused the login" in message, message
    assert "KAFKA_SASL_USERNAME" in message and "KAFKA_SASL_PASSWORD" in message, message
