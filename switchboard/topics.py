"""Every Kafka topic Switchboard uses, with its settings, in one place.

Names carry the schema version (`.v1`): a breaking change to a record's shape gets a new topic,
so old and new consumers can run side by side during a migration.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    InvalidReplicationFactorError,
    TopicAlreadyExistsError,
    UnknownError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.offset import OffsetRequest

from switchboard.clients import KafkaTarget, admin_client, kafka_options, topic_name
from switchboard.logs import get_logger

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient

log = get_logger(__name__)

DAY_MS = 24 * 60 * 60 * 1000


# Kafka's default max.message.bytes, for topics that do not set their own.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


@dataclass(frozen=True)
class TopicSpec:
    name: str
    purpose: str
    config: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None  # None: the configured default

    @property
    def max_message_bytes(self) -> int:
        return int(self.config.get("max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES))


RAW = TopicSpec(
    "switchboard.raw.v1",
    "every authenticated webhook request as received (the replayable source of truth)",
    {"retention.ms": str(14 * DAY_MS), "max.message.bytes": str(2 * 1024 * 1024)},
)
MESSAGE_INBOUND = TopicSpec(
    "switchboard.message.inbound.v1",
    "normalized message.inbound events",
    {"retention.ms": str(7 * DAY_MS)},
)
MESSAGE_STATUS = TopicSpec(
    "switchboard.message.status.v1",
    "normalized message.status events",
    {"retention.ms": str(7 * DAY_MS)},
)
DEAD_LETTER = TopicSpec(
    "switchboard.dead-letter.v1",
    "records that could not be normalized or handled, with the reason",
    {"retention.ms": str(30 * DAY_MS), "max.message.bytes": str(2 * 1024 * 1024)},
)
OUTBOUND = TopicSpec(
    "switchboard.outbound.v1",
    "outbound commands: messages to send through a provider",
    {"retention.ms": str(7 * DAY_MS)},
)
OUTBOUND_RESULTS = TopicSpec(
    "switchboard.outbound-results.v1",
    "the result of each outbound command (accepted or failed)",
    {"retention.ms": str(7 * DAY_MS)},
)
# Ids are kept a day past the outbound topic's 7, after which Kafka can no longer redeliver a
# command. Compaction alone would keep every id ever sent: each sender reads them all at start
# and holds them in memory (about 0.7 KB each, with the result: the record's bytes as read).
LEDGER_RETENTION_DAYS = 8
OUTBOUND_SENT = TopicSpec(
    "switchboard.outbound-sent.v1",
    "ids of commands already sent, so a redelivered command is not sent twice",
    {"cleanup.policy": "compact,delete", "retention.ms": str(LEDGER_RETENTION_DAYS * DAY_MS),
     "min.compaction.lag.ms": "0", "segment.ms": str(DAY_MS)},
)
OPT_OUTS = TopicSpec(
    "switchboard.opt-outs.v1",
    "opt-out state per account and contact (latest record per key wins)",
    {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": str(DAY_MS)},
)


def creation_config(spec: TopicSpec, replication_factor: int) -> dict[str, str]:
    """The topic's settings when we create it. With acks=all, Kafka acknowledges once every
    replica still in sync has a record; its default min.insync.replicas of 1 lets that be the
    leader alone, whose loss would then lose webhooks already answered 2xx. Two copies are
    required wherever there can be two (with 2 replicas, a broker down means 503s and the
    providers' retries, not a loss)."""
    return {"min.insync.replicas": str(min(2, replication_factor))} | spec.config


# The topics whose records may be as large as their own max.message.bytes allows (raw bodies).
LARGE_RECORD_TOPICS = (RAW, DEAD_LETTER)


ALL_TOPICS: tuple[TopicSpec, ...] = (
    RAW,
    MESSAGE_INBOUND,
    MESSAGE_STATUS,
    DEAD_LETTER,
    OUTBOUND,
    OUTBOUND_RESULTS,
    OUTBOUND_SENT,
    OPT_OUTS,
)


class TopicsRefused(RuntimeError):
    """Kafka answered the request to create topics, and refused some: a setting or a
    permission to change, not a network to look at. It was said as any failure to connect
    (`Kafka unreachable` on ingest's /readyz), which sent the operator to the network.

    `error` is Kafka's name for the refusal (INVALID_REPLICATION_FACTOR,
    TOPIC_AUTHORIZATION_FAILED, POLICY_VIOLATION, ...), safe to show anyone; the text, with the
    topics' names and Kafka's own message, is for the log and the command line."""

    def __init__(self, refused: list[tuple[str, int, str]], replication_factor: int) -> None:
        name, code, message = refused[0]  # one cause, as a rule: the same for every topic
        kind = for_code(code)
        self.error: str = kind.message if kind is not UnknownError else f"error {code}"
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        said = f"Kafka refused to create topic {name}{more}: {self.error}"
        said += f" ({message})" if message else ""
        hint = _refusal_hint(kind, replication_factor)
        super().__init__(f"{said}; {hint}" if hint else said)


def _refusal_hint(kind: type[Exception], replication_factor: int) -> str | None:
    """What to change, for the refusals whose cure is one of our settings or an ACL."""
    if kind is InvalidReplicationFactorError:
        return (f"SWITCHBOARD_TOPIC_REPLICATION_FACTOR is {replication_factor}: at most the "
                "number of brokers the cluster has")
    if kind.__name__.endswith("AuthorizationFailedError"):
        return ("the ACLs of its Kafka user do not allow creating topics: grant it Create, or "
                "create them yourself and set SWITCHBOARD_CREATE_TOPICS=false")
    return None


async def ensure_topics(
    kafka: KafkaTarget,
    *,
    partitions: int,
    replication_factor: int,
    specs: tuple[TopicSpec, ...] = ALL_TOPICS,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created (on the
    cluster, with the connection's name prefix)."""
    async with admin_client(kafka, request_timeout_s=15) as admin:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if topic_name(kafka, spec.name) not in existing]
        if not missing:
            return []
        new_topics = [
            NewTopic(
                name=topic_name(kafka, spec.name),
                num_partitions=spec.partitions or partitions,
                replication_factor=replication_factor,
                topic_configs=creation_config(spec, replication_factor),
            )
            for spec in missing
        ]
        response = await asyncio.wait_for(admin.create_topics(new_topics), timeout_s)
        created = []
        refused: list[tuple[str, int, str]] = []
        for topic_error in response.topic_errors:
            name, code = topic_error[0], topic_error[1]
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:  # lost a race with another process: fine
                refused.append((name, code, topic_error[2] if len(topic_error) > 2 else ""))
        if refused:
            raise TopicsRefused(refused, replication_factor)
        deadline = asyncio.get_running_loop().time() + timeout_s
        described = await _wait_for_leaders(admin, created, deadline)
        await _wait_for_leaders_serving(kafka, described, deadline)
        log.info("topics created", topics=created)
        return created


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str],
                            deadline: float) -> list[dict[str, Any]]:
    """The topics' descriptions once every partition has a leader (or at the deadline).

    A new topic elects its leaders a moment after it is created; clients that start in
    between log NotLeaderForPartition errors before retrying, which looks like a failure on
    a first `make run`.
    """
    described: list[dict[str, Any]] = []
    while topics and asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(topics)
        if all(not t["error_code"] and t["partitions"]
               and all(p["leader"] >= 0 for p in t["partitions"]) for t in described):
            break
        await asyncio.sleep(0.1)
    return described


async def _wait_for_leaders_serving(kafka: KafkaTarget, described: list[dict[str, Any]],
                                    deadline: float) -> None:
    """Return once each new partition's leader answers ListOffsets (or at the deadline).

    The metadata names a leader before that broker has taken the partition on: a consumer
    asking for offsets then (the sender's ledger does, at start) gets NotLeaderForPartition,
    which aiokafka logs as an error before retrying. Asking here, quietly, spares a first
    start that alarming line.
    """
    by_leader: dict[int, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for topic in described:
        for partition in topic["partitions"]:
            if partition["leader"] >= 0:
                by_leader[partition["leader"]][topic["topic"]].append(
                    (partition["partition"], -1))  # -1: the end offset
    if not by_leader:
        return
    client = AIOKafkaClient(**kafka_options(kafka, "admin"))
    try:
        await client.bootstrap()
        for leader, topics in by_leader.items():
            request = OffsetRequest(-1, 0, list(topics.items()))
            while asyncio.get_running_loop().time() < deadline:
                response = await client.send(leader, request)
                if all(error_code == 0 for _, partitions in response.topics
                       for _, error_code, *_ in partitions):
                    break
                await asyncio.sleep(0.1)
    finally:
        await client.close()


async def missing_topics(kafka: KafkaTarget, specs: tuple[TopicSpec, ...] = ALL_TOPICS
                         ) -> list[str]:
    async with admin_client(kafka, request_timeout_s=5) as admin:
        existing = set(await admin.list_topics())
    return [name for name in (topic_name(kafka, spec.name) for spec in specs)
            if name not in existing]


async def topic_partitions(kafka: KafkaTarget, topic: str) -> list[TopicPartition]:
    """The partitions of a topic, named as on the cluster (empty if it does not exist)."""
    return [TopicPartition(topic_name(kafka, topic), p) for p in await partitions_of(kafka, topic)]


async def partitions_of(kafka: KafkaTarget, topic: str) -> list[int]:
    """The partition numbers of a topic (empty if it does not exist)."""
    topic = topic_name(kafka, topic)
    async with admin_client(kafka, request_timeout_s=10) as admin:
        described = await admin.describe_topics([topic])
    return sorted(p["partition"] for t in described if t["topic"] == topic and not t["error_code"]
                  for p in t["partitions"])


async def max_message_bytes(kafka: KafkaTarget, specs: tuple[TopicSpec, ...]
                            ) -> tuple[dict[str, int], dict[str, str]]:
    """Each topic's max.message.bytes as the cluster has it (the topic's own, or else the
    broker's message.max.bytes, as Kafka reports it), keyed by the name the code uses, and the
    topics Kafka would not describe, with its error; a topic that does not exist is left out of
    both. One request for all of them."""
    names = {topic_name(kafka, spec.name): spec.name for spec in specs}
    async with admin_client(kafka, request_timeout_s=10) as admin:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": None})
             for name in names])
    return read_limits(responses, names)


def read_limits(responses: list[Any], names: dict[str, str]
                ) -> tuple[dict[str, int], dict[str, str]]:
    """`max_message_bytes` from DescribeConfigs responses. A topic refused by its own error
    (no DescribeConfigs permission on a cluster with ACLs) is named: the check would otherwise
    pass in silence, though it could not look."""
    limits: dict[str, int] = {}
    unreadable: dict[str, str] = {}
    for response in responses:
        for error_code, error_message, _, name, entries, *_ in response.resources:
            if name not in names:
                continue
            if error_code == UnknownTopicOrPartitionError.errno:
                continue
            if error_code:
                reason = for_code(error_code).__name__
                unreadable[names[name]] = f"{reason}: {error_message}" if error_message else reason
                continue
            for key, value, *_ in entries:
                if key == "max.message.bytes":
                    limits[names[name]] = int(value)
    return limits, unreadable


async def warn_of_small_topics(kafka: KafkaTarget,
                               specs: tuple[TopicSpec, ...] = LARGE_RECORD_TOPICS) -> None:
    """Log each topic that takes smaller records than we write to it: made by hand or by an
    older version at Kafka's 1 MB default, it refuses a large webhook at every retry of its
    provider (503s), and nothing is stored. A warning, not a refusal to start: installs that
    run so take every smaller webhook."""
    try:
        limits, unreadable = await max_message_bytes(kafka, specs)
    except Exception as exc:  # noqa: BLE001 - a check, not a condition to start
        log.warning("could not read the topics' max.message.bytes", error=repr(exc))
        return
    for name, error in unreadable.items():
        log.warning("could not check the topic's max.message.bytes: Kafka would not describe "
                    "its settings (on a cluster with ACLs, grant DescribeConfigs on it)",
                    topic=topic_name(kafka, name), error=error)
    for spec in specs:
        limit = limits.get(spec.name)
        if limit is not None and limit < spec.max_message_bytes:
            name = topic_name(kafka, spec.name)
            log.warning(
                "topic takes smaller records than switchboard writes to it: a webhook over "
                "its limit is answered 503 at every retry and never stored",
                topic=name, max_message_bytes=limit, needed=spec.max_message_bytes,
                fix=f"kafka-configs.sh --bootstrap-server <host:port> --alter --entity-type "
                    f"topics --entity-name {name} --add-config "
                    f"max.message.bytes={spec.max_message_bytes}")
