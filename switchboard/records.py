"""What goes on the Kafka topics besides events: keys, CloudEvents headers, raw and dead letters.

Headers follow the CloudEvents Kafka protocol binding, binary mode (`ce_*` headers, the record
value is the data), so generic CloudEvents tooling can route records without parsing them.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from switchboard.addresses import address
from switchboard.commands import OutboundCommand, OutboundResult
from switchboard.events import EventType, MessageEvent
from switchboard.logs import scrub
from switchboard.topics import (
    DEAD_LETTER,
    MESSAGE_INBOUND,
    MESSAGE_STATUS,
    OUTBOUND,
    OUTBOUND_RESULTS,
    RAW,
)

RAW_TYPE = "dev.switchboard.webhook.raw.v1"
COMMAND_TYPE = "dev.switchboard.outbound-command.v1"
RESULT_TYPE = "dev.switchboard.outbound-result.v1"
DEAD_LETTER_TYPE = "dev.switchboard.dead-letter.v1"
# An opt-out change, also put on the outbound topic in the conversation's partition: the
# sender meets it in order with the commands to that contact (see consumers/bots/optouts.py).
OPT_OUT_CHANGE_TYPE = "dev.switchboard.opt-out-change.v1"
# A header may have no value (Kafka allows it; a record put back by replay keeps that).
Headers = list[tuple[str, bytes | None]]
MAX_REASON_CHARS = 500
# Records read one at a time, at most, to find one aiokafka cannot read: more than a fetch of
# one partition holds (max_partition_fetch_bytes, 1 MiB).
FIND_UNREADABLE_MAX = 20_000


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class Unreadable:
    """Where a record aiokafka cannot read is: a header key that is not UTF-8, which only a
    producer of another client library (librdkafka, sarama) can write. aiokafka raises
    UnicodeDecodeError for the whole fetch that holds it, naming neither partition nor offset,
    and again at every fetch after; the records after it in its producer's batch cannot be read
    either (a batch is read from its start)."""

    partition: TopicPartition
    offset: int
    exact: bool  # False: no fetch answered in time, so it is at that offset or after
    # The partition's records before it, read while looking for it.
    before: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)

    def __str__(self) -> str:
        at = self.offset if self.exact else f"{self.offset} or after"
        return f"{self.partition.topic} partition {self.partition.partition} offset {at}"


async def find_unreadable(consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
                          ) -> Unreadable | None:
    """After a fetch raised UnicodeDecodeError: the record it failed on, or None if no
    partition fails again. Each partition is fetched on its own from its position, and put back
    there (nothing of it is lost); the one that fails is then read one record at a time, and
    left at that record."""
    for tp in sorted(partitions):
        start = await consumer.position(tp)
        try:
            await consumer.getmany(tp, timeout_ms=1000)
        except UnicodeDecodeError:
            consumer.seek(tp, start)
            return await _unreadable_in(consumer, tp)
        consumer.seek(tp, start)
    return None


async def _unreadable_in(consumer: AIOKafkaConsumer, tp: TopicPartition) -> Unreadable:
    before: list[ConsumerRecord[bytes, bytes]] = []
    for _ in range(FIND_UNREADABLE_MAX):
        try:
            got = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
        except UnicodeDecodeError:
            return Unreadable(tp, await consumer.position(tp), True, before)
        if not got:
            break  # no answer in time: somewhere from here on
        before.extend(got.get(tp, ()))
    return Unreadable(tp, await consumer.position(tp), False, before)


def conversation_key(provider: str, account: str, contact: str | None) -> bytes:
    """All records of one conversation share a key, hence a partition, hence an order."""
    return f"{provider}|{account}|{contact or ''}".encode()


def cloudevent_headers(*, ce_id: str, source: str, ce_type: str, time: datetime,
                       subject: str | None = None) -> Headers:
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", time.isoformat().replace("+00:00", "Z").encode()),
        ("content-type", b"application/json"),
    ]
    if subject:
        headers.append(("ce_subject", subject.encode()))
    return headers


def ce_type_of(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    """The CloudEvents type a consumed record declares, if any."""
    for name, value in headers:
        if name == "ce_type" and value is not None:
            return value.decode(errors="replace")
    return None


@functools.lru_cache(maxsize=4096)  # built for every record; accounts are few
def source_of(provider: str, account: str) -> str:
    """A URI reference, as CloudEvents requires: an account name may hold spaces or '%'."""
    return f"/switchboard/{provider}/{quote(account, safe='')}"


def named_by_source(headers: Sequence[tuple[str, bytes | None]]) -> tuple[str, str]:
    """The provider and account a consumed record's `ce_source` names, else empty strings:
    a dead letter can then be found per account even when the value is unreadable."""
    for name, value in headers:
        if name == "ce_source" and value is not None:
            parts = value.decode(errors="replace").split("/")
            if len(parts) == 4 and parts[:2] == ["", "switchboard"] and all(parts[2:]):
                return parts[2], unquote(parts[3])
    return "", ""


# Each event type's topic and CloudEvents type: looked up, not worked out again for every
# record ingest writes (an enum's `.value` is a Python-level property).
_EVENT_TOPIC_AND_TYPE: dict[str, tuple[str, str]] = {
    kind: (MESSAGE_INBOUND.name if kind is EventType.INBOUND else MESSAGE_STATUS.name,
           f"dev.switchboard.{kind.value}.v1")
    for kind in EventType
}


def event_record(event: MessageEvent) -> OutRecord:
    topic, ce_type = _EVENT_TOPIC_AND_TYPE[event.type]
    return OutRecord(
        topic=topic,
        key=conversation_key(event.provider, event.account, event.contact),
        value=event.to_json(),
        headers=cloudevent_headers(
            ce_id=str(event.id), source=source_of(event.provider, event.account),
            ce_type=ce_type, time=event.occurred_at or event.received_at,
            subject=event.message_id,
        ),
    )


def raw_envelope(*, raw_id: str, provider: str, account: str, method: str, path: str,
                 query: str, content_type: str, headers: Mapping[str, str], body: bytes,
                 received_at: datetime) -> dict[str, Any]:
    """The replayable record of one webhook request (body kept byte-exact)."""
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return {
        "id": raw_id, "provider": provider, "account": account, "method": method,
        "path": path, "query": query, "content_type": content_type, "headers": dict(headers),
        "body": text, "body_encoding": encoding, "received_at": received_at.isoformat(),
    }


def raw_body(envelope: Mapping[str, Any]) -> bytes:
    """The body byte-exact (binascii.Error if the base64 is not: an envelope we wrote never
    has such; a record read back from Kafka may be anyone's)."""
    body: str = envelope["body"]
    if envelope.get("body_encoding") == "base64":
        return base64.b64decode(body, validate=True)
    return body.encode()


def raw_record(envelope: dict[str, Any], received_at: datetime) -> OutRecord:
    provider, account = envelope["provider"], envelope["account"]
    return OutRecord(
        topic=RAW.name,
        key=f"{provider}|{account}".encode(),
        value=orjson.dumps(envelope),
        headers=cloudevent_headers(ce_id=envelope["id"], source=source_of(provider, account),
                                   ce_type=RAW_TYPE, time=received_at),
    )


def short(reason: str) -> str:
    """Reasons may quote the payload: bounded, so that a dead letter still fits its topic."""
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "…"


def dead_letter_record(*, dl_id: str, stage: str, reason: str, provider: str, account: str,
                       time: datetime, payload: dict[str, Any], key: bytes | None = None
                       ) -> OutRecord:
    """A record we could not process, with why, self-contained so it can be replayed. The
    reason is bounded: an error may quote the whole record (pydantic's do, once per error),
    and a letter over its topic's limit could be neither kept nor skipped. It is masked as a
    log line is: an error may quote a secret (httpx's quote the URL called)."""
    value = {"id": dl_id, "stage": stage, "reason": short(scrub(reason)), "provider": provider,
             "account": account, "time": time.isoformat(), "payload": payload}
    return OutRecord(
        topic=DEAD_LETTER.name,
        key=key or f"{provider}|{account}".encode(),
        value=orjson.dumps(value),
        headers=cloudevent_headers(ce_id=dl_id, source=source_of(provider, account),
                                   ce_type=DEAD_LETTER_TYPE, time=time),
    )


def command_record(command: OutboundCommand, provider: str) -> OutRecord:
    """How producers put a command on the outbound topic: keyed by its conversation. A command
    without a channel is keyed as on a phone channel (the accounts' default, sms); the sender
    re-keys one whose account's channel spells `to` otherwise."""
    contact = address(command.to, command.channel) or command.to
    return OutRecord(
        topic=OUTBOUND.name,
        key=conversation_key(provider, command.account, contact),
        value=command.to_json(),
        headers=cloudevent_headers(ce_id=command.id, source=source_of(provider, command.account),
                                   ce_type=COMMAND_TYPE, time=command.created_at),
    )


def result_record(result: OutboundResult, key: bytes | None = None) -> OutRecord:
    """The sender's answer to a command, keyed like the command (given), or else by the
    conversation as the result names it."""
    return OutRecord(
        topic=OUTBOUND_RESULTS.name,
        key=key or conversation_key(result.provider, result.account, result.to),
        value=result.to_json(),
        headers=cloudevent_headers(ce_id=f"result-{result.command_id}",
                                   source=source_of(result.provider, result.account),
                                   ce_type=RESULT_TYPE, time=result.completed_at,
                                   subject=result.command_id),
    )
