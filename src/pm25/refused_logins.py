"""A refused SASL login told apart from a broker that does not answer (imported by pm25.producing).

kafka-python 3.0.12 retries a refused login until its bootstrap timeout, then raises the same
KafkaTimeoutError as when nothing listens; the broker's reason only reaches its log. So:
- `last_refusal()` returns the broker's latest refusal, remembered by a filter on kafka-python's
  connection manager (it lets every record through): `producing.NoBroker` names the credentials then.
- Its transport dropped the bytes that came in together with the broker's close. Kafka sends the refusal
  and closes the connection right after, so whether the reason arrived at all was a race (in one run,
  0 of 6 attempts; tests/realkafka/test_sasl_tls.py). `_read_then_close` hands those bytes over first.
"""

from __future__ import annotations

import logging
import time

import kafka
from kafka.errors import KafkaProtocolError, SaslAuthenticationFailedError
from kafka.net.transport import KafkaTCPTransport

REMEMBER_S = 120  # longer than any bootstrap timeout the project uses

_last: tuple[float, str] | None = None


def last_refusal() -> str | None:
    """What the broker said when it last refused a login in this process, if within REMEMBER_S."""
    if _last is None or time.monotonic() - _last[0] > REMEMBER_S:
        return None
    return _last[1]


def _remember_refusals(record: logging.LogRecord) -> bool:
    global _last
    args = record.args if isinstance(record.args, tuple) else ()
    for argument in args:
        if isinstance(argument, SaslAuthenticationFailedError):
            _last = (time.monotonic(), str(argument).rsplit(": ", 1)[-1])
    return True


async def _read_then_close(self: KafkaTCPTransport) -> None:
    """kafka-python 3.0.12's `_read_from_sock`, except that data read before the close is delivered."""
    while self._read and not self._closed:
        await self._net.wait_read(self._sock)
        received, error = self._sock_recv()
        if received:
            self.last_read = time.monotonic()
            if self._protocol and self._protocol._sensors:
                self._protocol._sensors.bytes_received.record(len(received))
            try:
                self._protocol.data_received(received)
            except KafkaProtocolError as protocol_error:
                return self.abort(error=protocol_error)
        if error:
            return self.abort(error=error)


logging.getLogger("kafka.net.manager").addFilter(_remember_refusals)
if kafka.__version__ == "3.0.12":  # the pinned version; check its transport again when the pin moves
    KafkaTCPTransport._read_from_sock = _read_then_close
