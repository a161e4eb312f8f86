"""A Kafka producer that returns only once every record is acknowledged by all in-sync replicas.

Ingest answers a provider 2xx only after `publish` returns; anything else (timeout, broker
down, record too large) raises PublishError so the caller can answer 503 and the provider
retries. Records already handed to the client may still land after a timeout: consumers see
at-least-once delivery and rely on the deterministic event ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from switchboard.records import OutRecord

MAX_REQUEST_BYTES = 3 * 1024 * 1024


class PublishError(Exception):
    """Kafka did not acknowledge in time; nothing may be reported as stored."""


class DurableProducer:
    def __init__(self, bootstrap_servers: str, *, client_id: str = "switchboard",
                 timeout_s: float = 5.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self.started = False

    async def start(self) -> None:
        # Built here, not in __init__: aiokafka binds to the running event loop.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_request_size=MAX_REQUEST_BYTES,
            request_timeout_ms=max(1000, int(self.timeout_s * 1000)),
            retry_backoff_ms=100,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        self.started = True

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        self.started = False
        if producer is not None:
            await producer.stop()  # flushes what is pending first

    async def publish(self, records: Sequence[OutRecord]) -> None:
        """Send all records and wait for every acknowledgement (acks=all), or raise."""
        producer = self._producer
        if producer is None:
            raise PublishError("Kafka producer is not connected")
        try:
            async with asyncio.timeout(self.timeout_s):  # cheaper than wait_for: no new task
                await self._send_all(producer, records)
        except TimeoutError:
            raise PublishError(f"Kafka did not acknowledge within {self.timeout_s}s") from None
        except KafkaError as exc:
            raise PublishError(f"Kafka refused the records: {exc!r}") from exc

    @staticmethod
    async def _send_all(producer: AIOKafkaProducer, records: Sequence[OutRecord]) -> None:
        futures = [
            await producer.send(r.topic, r.value, key=r.key, headers=r.headers)
            for r in records
        ]
        for future in futures:  # all were handed over; they are acknowledged together
            await future
