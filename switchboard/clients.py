"""Kafka client helpers shared by ingest and the workers: how to reach the cluster, how to ask
it about topics and groups, and how to stop a consumer."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from aiokafka import AIOKafkaConsumer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient

from switchboard.logs import get_logger

log = get_logger(__name__)

SecurityProtocol: TypeAlias = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism: TypeAlias = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
Compression: TypeAlias = Literal["none", "gzip", "snappy", "lz4", "zstd"]


@dataclass(frozen=True)
class KafkaConnection:
    """Where the cluster is and how to log in: every Kafka client we make is built from one,
    so a cluster that needs TLS or SASL (as managed ones do) is reached by all of them."""

    bootstrap_servers: str
    # Each client's id is this, a dash and its role (the broker's logs, quotas and ACLs see it).
    client_id_prefix: str = "switchboard"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    # For OAUTHBEARER: where tokens come from (switchboard.oauth), shared by every client.
    oauth_token: AbstractTokenProvider | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    # Of what our producers write: webhook bodies and events are repetitive JSON.
    compression: Compression = "none"
    # Put before every topic and consumer group name on the cluster, so that installs (say
    # staging and production) can share one. The code names topics plainly; clients add it.
    name_prefix: str = ""

    def __str__(self) -> str:
        return self.bootstrap_servers

    def topic(self, name: str) -> str:
        """The name on the cluster of the topic the code calls `name`."""
        return self.name_prefix + name

    def plain_topic(self, name: str) -> str:
        """The name the code uses for the cluster's topic `name`: the inverse of `topic`."""
        return name.removeprefix(self.name_prefix)

    def group(self, name: str) -> str:
        """The id on the cluster of the consumer group the code calls `name`."""
        return self.name_prefix + name

    def client_options(self, role: str) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                   "client_id": f"{self.client_id_prefix}-{role}",
                                   "security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            # aiokafka needs a context for TLS; without our own, trust the system's CAs.
            options["ssl_context"] = self.ssl_context or ssl.create_default_context()
        if self.security_protocol.startswith("SASL_") and self.sasl_mechanism == "OAUTHBEARER":
            options.update(sasl_mechanism="OAUTHBEARER",
                           sasl_oauth_token_provider=self.oauth_token)
        elif self.security_protocol.startswith("SASL_"):
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        return options

    def producer_options(self, role: str) -> dict[str, Any]:
        """client_options, and what only a producer takes."""
        compression = None if self.compression == "none" else self.compression
        return self.client_options(role) | {"compression_type": compression}


# A plain "host:port,..." string is a PLAINTEXT connection: the local broker, tests, bench.
KafkaTarget: TypeAlias = str | KafkaConnection


def as_connection(target: KafkaTarget) -> KafkaConnection:
    return KafkaConnection(target) if isinstance(target, str) else target


def topic_name(target: KafkaTarget, name: str) -> str:
    """The name on the cluster of the topic the code calls `name` (see `name_prefix`)."""
    return as_connection(target).topic(name)


def kafka_options(target: KafkaTarget, role: str) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client that does `role` (e.g. "ingest", "sender")."""
    return as_connection(target).client_options(role)


@asynccontextmanager
async def admin_client(target: KafkaTarget, request_timeout_s: float
                       ) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client whose requests each give up after `request_timeout_s`, closed
    on leaving. Started inside the try: a start that fails or is cancelled (a readiness probe
    given up against a silent broker) is closed too, not left open for each probe."""
    admin = AIOKafkaAdminClient(**kafka_options(target, "admin"),
                                request_timeout_ms=int(request_timeout_s * 1000))
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer, also while the broker is away.

    aiokafka's stop then cancels its own fetch task and lets that CancelledError out: it is
    not a cancellation of ours, and a worker stopping on SIGTERM should not exit with a
    traceback because of it. A cancellation of the calling task still goes through.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("kafka consumer stopped while the broker was unreachable")
