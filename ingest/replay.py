"""Put kept webhooks and records through again, once what failed them is fixed.

Ingest keeps each authenticated request it could not turn into events as a dead letter (stage
`normalize`, the request inside); a worker keeps each record its handler gave up on (stage
`worker:<name>`, the record inside). After the fix (a normalizer that now reads the payload, a
bot that no longer crashes), replay reads the dead letters of a time window and publishes again
what each stands for: the events its request gives now, or the record as it was on its topic.
The raw topic replays the same way, to publish a window's events again after a normalizer gave
wrong ones.

Nothing is authenticated again (each request was when it arrived, and its secret may have been
rotated since) and nothing is dead-lettered again: a letter that still fails is reported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from ingest.correlation import CorrelationIndex, correlate
from ingest.stored import Unstorable, event_records
from ingest.webhooks import unsupported_media_type
from normalizers import NormalizeError, WebhookRequest, normalize
from normalizers.registry import echoes_correlation
from switchboard.clients import KafkaTarget, kafka_options
from switchboard.producer import DurableProducer, PublishError
from switchboard.providers import PROVIDERS
from switchboard.records import OutRecord, raw_body
from switchboard.topics import DEAD_LETTER, RAW, partitions_of

Source = Literal["dead-letter", "raw"]
SOURCE_TOPICS: dict[Source, str] = {"dead-letter": DEAD_LETTER.name, "raw": RAW.name}
# Letters are published together, so a window of thousands is not one round trip each.
CHUNK_LETTERS = 200
CHUNK_BYTES = 8 * 1024 * 1024
# Results are read from this long before the window: a report follows its send by up to days.
CORRELATION_LOOKBACK_S = 86_400.0
CATCH_UP_TIMEOUT_S = 120.0
STALL_TIMEOUT_S = 30.0


class ReplayError(Exception):
    """Replay cannot go on (a topic missing, Kafka not answering); the message says why."""


class Unreplayable(Exception):
    """A kept record that replay cannot read back; the message says why."""


@dataclass(frozen=True)
class Kept:
    """One dead letter, or one raw request, as read back from its topic."""

    id: str
    stage: str  # `normalize`, `worker:<name>`; `raw` for the raw topic
    provider: str
    account: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Selection:
    """Which kept records to replay: each filter that is given must match."""

    providers: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()

    def matches(self, kept: Kept) -> bool:
        return ((not self.providers or kept.provider in self.providers)
                and (not self.accounts or kept.account in self.accounts)
                and (not self.stages or kept.stage in self.stages)
                and (not self.ids or kept.id in self.ids))


@dataclass
class Outcome:
    """What became of one kept record; `line` is how the command reports it."""

    kept: Kept
    outcome: Literal["replayed", "replayable", "failing", "skipped"]
    records: list[OutRecord] = field(default_factory=list)
    reason: str = ""

    def line(self) -> bytes:
        topics = sorted({record.topic for record in self.records})
        return orjson.dumps({
            "id": self.kept.id, "stage": self.kept.stage, "provider": self.kept.provider,
            "account": self.kept.account, "outcome": self.outcome,
            "records": len(self.records), "topics": topics, "reason": self.reason})


def read_kept(source: Source, value: bytes) -> Kept:
    """A dead letter's or raw record's value as a Kept, or Unreplayable."""
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Unreplayable(f"not JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise Unreplayable("not a JSON object")
    if source == "raw":
        decoded = {"id": decoded.get("id"), "stage": "raw", "provider": decoded.get("provider"),
                   "account": decoded.get("account"), "payload": decoded}
    kept_id, stage, provider, account, payload = (
        decoded.get(name) for name in ("id", "stage", "provider", "account", "payload"))
    if not (isinstance(kept_id, str) and isinstance(stage, str) and isinstance(provider, str)
            and isinstance(account, str)):
        raise Unreplayable("id, stage, provider or account is missing")
    if not isinstance(payload, dict):
        raise Unreplayable("it holds no payload")
    return Kept(kept_id, stage, provider, account, payload)


def webhook_of(envelope: Mapping[str, Any]) -> WebhookRequest:
    """The request a raw envelope (see switchboard.records.raw_envelope) records."""
    try:
        return WebhookRequest(
            provider=envelope["provider"], account=envelope["account"], body=raw_body(envelope),
            received_at=datetime.fromisoformat(envelope["received_at"]), raw_id=envelope["id"],
            content_type=envelope["content_type"], query=envelope["query"],
            method=envelope["method"], headers=dict(envelope["headers"]))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise Unreplayable(f"not a whole webhook request ({type(exc).__name__}: {exc})") from exc


def record_of(payload: Mapping[str, Any]) -> OutRecord:
    """The record a worker's dead letter holds, as it was on its topic, headers included
    (consumers tell record kinds apart by `ce_type`)."""
    if "headers_b64" not in payload:
        raise Unreplayable("kept without its headers (by a version before replay), so it "
                           "cannot be put back as it was")
    try:
        topic, key = payload["topic"], payload["key"]
        value = base64.b64decode(payload["value_b64"], validate=True)
        headers = [(name, base64.b64decode(encoded, validate=True))
                   for name, encoded in payload["headers_b64"]]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise Unreplayable(f"not a whole record ({type(exc).__name__}: {exc})") from exc
    if not isinstance(topic, str):
        raise Unreplayable("it names no topic")
    return OutRecord(topic, value, key.encode() if isinstance(key, str) else None, headers)


class Replayer:
    """Turns kept records into what to publish again; reads outbound results only if a
    provider whose reports need correlating comes up."""

    def __init__(self, kafka: KafkaTarget, correlation_lookback_s: float) -> None:
        self.kafka = kafka
        self.correlation_lookback_s = correlation_lookback_s
        self._correlations: CorrelationIndex | None = None
        self._topics: dict[str, bool] = {}

    async def close(self) -> None:
        if self._correlations is not None:
            await self._correlations.stop()

    async def outcome(self, kept: Kept) -> Outcome:
        try:
            if kept.stage.startswith("worker:"):
                record = record_of(kept.payload)
                if not await self._exists(record.topic):
                    return Outcome(kept, "failing", reason=f"topic {record.topic} does not exist")
                return Outcome(kept, "replayed", [record])
            if kept.stage not in ("normalize", "raw"):
                return Outcome(kept, "skipped", reason=f"no replay for stage {kept.stage!r}")
            return await self._renormalized(kept, webhook_of(kept.payload))
        except Unreplayable as exc:
            return Outcome(kept, "skipped", reason=str(exc))

    async def _renormalized(self, kept: Kept, webhook: WebhookRequest) -> Outcome:
        if webhook.provider not in PROVIDERS:
            return Outcome(kept, "failing", reason=f"no provider named {webhook.provider!r}")
        refused = unsupported_media_type(webhook)
        if refused is not None:
            return Outcome(kept, "failing", reason=refused[2])
        try:
            events = normalize(webhook)
        except NormalizeError as exc:
            return Outcome(kept, "failing", reason=exc.reason)
        if events and not echoes_correlation(webhook.provider):
            events = await correlate(await self._index(), events)
        try:
            return Outcome(kept, "replayed", event_records(events, len(webhook.body)))
        except Unstorable as exc:
            return Outcome(kept, "failing", reason=exc.reason)

    async def _exists(self, topic: str) -> bool:
        if topic not in self._topics:
            self._topics[topic] = bool(await partitions_of(self.kafka, topic))
        return self._topics[topic]

    async def _index(self) -> CorrelationIndex:
        if self._correlations is None:
            unreferenced = frozenset(p for p in PROVIDERS if not echoes_correlation(p))
            # Caught up before the first lookup, so a miss is a true miss: no waiting on it.
            self._correlations = CorrelationIndex(
                self.kafka, unreferenced, lookback_s=self.correlation_lookback_s, wait_s=0)
            self._correlations.start()
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
                await self._correlations.caught_up.wait()
        except TimeoutError:
            raise ReplayError(f"the outbound results were not read within "
                              f"{CATCH_UP_TIMEOUT_S:.0f}s (needed to correlate reports)") from None
        return self._correlations


async def read_window(kafka: KafkaTarget, topic: str, since_ms: int | None,
                      until_ms: int | None) -> AsyncIterator[Any]:
    """The topic's records from `since_ms` (or the oldest kept) up to what it held when this
    started: bounded, so replay ends even while new records arrive."""
    partitions = [TopicPartition(topic, p) for p in await partitions_of(kafka, topic)]
    if not partitions:
        raise ReplayError(f"topic {topic} does not exist on this cluster")
    consumer = AIOKafkaConsumer(**kafka_options(kafka, "replay"), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        if since_ms is None:
            starts = await consumer.beginning_offsets(partitions)
        else:
            found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
            starts = {tp: ends[tp] if at is None else at.offset for tp, at in found.items()}
        remaining = {tp: ends[tp] for tp in partitions if starts[tp] < ends[tp]}
        for tp in remaining:
            consumer.seek(tp, starts[tp])
        progress = time.monotonic()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < remaining.get(tp, 0) and (
                            until_ms is None or record.timestamp <= until_ms):
                        yield record
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
            if batch:
                progress = time.monotonic()
            elif time.monotonic() - progress > STALL_TIMEOUT_S:
                raise ReplayError(f"{topic} gave no records for {STALL_TIMEOUT_S:.0f}s before "
                                  f"its end ({', '.join(str(tp.partition) for tp in remaining)})")
    finally:
        await consumer.stop()


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)
    records: int = 0

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.outcome] = self.counts.get(outcome.outcome, 0) + 1
        self.records += len(outcome.records)


async def replay(kafka: KafkaTarget, *, source: Source, since_ms: int | None,
                 until_ms: int | None, selection: Selection, dry_run: bool,
                 emit: Callable[[bytes], None]) -> Summary:
    """Replay the selected records of the window, each reported to `emit` as a JSON line
    once its records are acknowledged (acks=all), or at once with `dry_run`."""
    since_s = since_ms / 1000 if since_ms is not None else time.time() - 31 * 86_400
    replayer = Replayer(kafka, time.time() - since_s + CORRELATION_LOOKBACK_S)
    producer = None if dry_run else DurableProducer(kafka, role="replay", timeout_s=30)
    summary = Summary()
    chunk: list[Outcome] = []
    chunk_bytes = 0

    async def flush() -> None:
        nonlocal chunk_bytes
        if producer is not None:
            try:
                await producer.publish([record for o in chunk for record in o.records])
            except PublishError as exc:
                raise ReplayError(f"Kafka did not take the records of the last {len(chunk)} "
                                  f"(of {len(chunk) + sum(summary.counts.values())}): {exc}; "
                                  "those reported above are stored") from exc
        for outcome in chunk:
            summary.add(outcome)
            emit(outcome.line())
        chunk.clear()
        chunk_bytes = 0

    try:
        if producer is not None:
            await producer.start()
        async for record in read_window(kafka, SOURCE_TOPICS[source], since_ms, until_ms):
            try:
                kept = read_kept(source, record.value)
            except Unreplayable as exc:
                kept, reason = Kept(f"offset:{record.partition}:{record.offset}", "?", "", "",
                                    {}), str(exc)
                if selection == Selection():
                    chunk.append(Outcome(kept, "skipped", reason=reason))
                continue
            if not selection.matches(kept):
                continue
            outcome = await replayer.outcome(kept)
            if outcome.outcome == "replayed" and dry_run:
                outcome.outcome = "replayable"
            chunk.append(outcome)
            chunk_bytes += sum(len(r.value) for r in outcome.records)
            if len(chunk) >= CHUNK_LETTERS or chunk_bytes >= CHUNK_BYTES:
                await flush()
        await flush()
    finally:
        await replayer.close()
        if producer is not None:
            await producer.stop()
    return summary
