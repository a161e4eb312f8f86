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
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer

from ingest.correlation import CorrelationIndex, correlate
from ingest.webhooks import normalized, storable
from normalizers import WebhookRequest
from normalizers.registry import echoes_correlation
from switchboard.clients import KafkaTarget, kafka_options, stop_consumer, topic_name
from switchboard.events import EventType
from switchboard.producer import DurableProducer, PublishError
from switchboard.providers import PROVIDERS
from switchboard.records import OutRecord, find_unreadable, raw_body
from switchboard.topics import (
    DEAD_LETTER,
    LEDGER_RETENTION_DAYS,
    RAW,
    partitions_of,
    topic_partitions,
)
from switchboard.window import WindowError, read_window

Source = Literal["dead-letter", "raw"]
SOURCE_TOPICS: dict[Source, str] = {"dead-letter": DEAD_LETTER.name, "raw": RAW.name}
# Letters are published together, so a window of thousands is not one round trip each.
CHUNK_LETTERS = 200
CHUNK_BYTES = 8 * 1024 * 1024
# Results are read from this long before the window: a report follows its send by up to days.
CORRELATION_LOOKBACK_S = 86_400.0
# Reading the results may take long on a busy topic; only this long without progress fails.
CATCH_UP_STALL_S = 60.0
# Past this age, the sender no longer remembers the ids it sent (its ledger keeps them 8 days),
# so events published again could make bots answer a second time. A day of margin.
REMEMBERED_S = (LEDGER_RETENTION_DAYS - 1) * 86_400


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
    at_ms: int = 0  # when it was kept (the record's timestamp)


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


@dataclass(frozen=True)
class Outcome:
    """What became of one kept record; `line` is how the command reports it."""

    kept: Kept
    outcome: Literal["replayed", "replayable", "failing", "skipped"]
    records: list[OutRecord] = field(default_factory=list)
    reason: str = ""
    uncorrelated: int = 0  # status reports whose command was not found in the results

    def line(self) -> bytes:
        topics = sorted({record.topic for record in self.records})
        return orjson.dumps({
            "id": self.kept.id, "stage": self.kept.stage, "provider": self.kept.provider,
            "account": self.kept.account, "outcome": self.outcome,
            "records": len(self.records), "topics": topics, "reason": self.reason,
            "uncorrelated": self.uncorrelated})


def read_kept(source: Source, value: bytes | None, at_ms: int = 0) -> Kept:
    """A dead letter's or raw record's value as a Kept, or Unreplayable."""
    try:
        decoded = orjson.loads(value or b"")
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
    return Kept(kept_id, stage, provider, account, payload, at_ms)


def _text(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise Unreplayable(f"its {name!r} is not text")
    return value


def _bytes(encoded: Any, what: str) -> bytes:
    try:
        if not isinstance(encoded, str):
            raise TypeError
        return base64.b64decode(encoded, validate=True)
    except (TypeError, binascii.Error):
        raise Unreplayable(f"its {what} is not base64") from None


def webhook_of(envelope: Mapping[str, Any]) -> WebhookRequest:
    """The request a raw envelope (see switchboard.records.raw_envelope) records. Ingest kept
    only some of its headers; no normalizer reads headers (they carry authentication)."""
    _text(envelope, "body")  # raw_body takes it as text
    headers = envelope.get("headers")
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise Unreplayable("its 'headers' are not text")
    try:
        received_at = datetime.fromisoformat(_text(envelope, "received_at"))
    except ValueError:
        raise Unreplayable("its 'received_at' is not a time") from None
    try:
        body = raw_body(envelope)
    except binascii.Error:
        raise Unreplayable("its body is not base64") from None
    return WebhookRequest(
        provider=_text(envelope, "provider"), account=_text(envelope, "account"), body=body,
        received_at=received_at, raw_id=_text(envelope, "id"),
        content_type=_text(envelope, "content_type"), query=_text(envelope, "query"),
        method=_text(envelope, "method"), headers=headers)


def record_of(payload: Mapping[str, Any]) -> OutRecord:
    """The record a worker's dead letter holds, as it was on its topic, headers included
    (consumers tell record kinds apart by `ce_type`)."""
    if "headers_b64" not in payload:
        raise Unreplayable("kept without its headers (by a version before replay), so it "
                           "cannot be put back as it was")
    pairs = payload["headers_b64"]
    if not isinstance(pairs, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
            for pair in pairs):
        raise Unreplayable("its headers are not [name, value] pairs")
    headers = [(name, None if value is None else _bytes(value, f"header {name!r}"))
               for name, value in pairs]
    encoded_key = payload.get("key_b64")
    key = None if encoded_key is None else _bytes(encoded_key, "key")
    return OutRecord(_text(payload, "topic"), _bytes(payload.get("value_b64"), "value"), key,
                     headers)


class Replayer:
    """Turns kept records into what to publish again; reads outbound results only if a
    provider whose reports need correlating comes up."""

    def __init__(self, kafka: KafkaTarget, *, correlation_lookback_s: float,
                 include_old: bool = False, correlations: CorrelationIndex | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.kafka = kafka
        self.correlation_lookback_s = correlation_lookback_s
        self.include_old = include_old
        self._correlations = correlations
        self._now = now
        self._topics: dict[str, bool] = {}

    async def close(self) -> None:
        if self._correlations is not None:
            await self._correlations.stop()

    async def outcome(self, kept: Kept) -> Outcome:
        try:
            if kept.stage.startswith("worker:") or kept.stage == "raw":
                # Published before: every consumer group sees it once more.
                refusal = self._too_old(kept)
                if refusal:
                    return Outcome(kept, "skipped", reason=refusal)
            if kept.stage.startswith("worker:"):
                record = record_of(kept.payload)
                if not await self._exists(record.topic):
                    missing = topic_name(self.kafka, record.topic)
                    return Outcome(kept, "failing", reason=f"topic {missing} does not exist")
                return Outcome(kept, "replayed", [record])
            if kept.stage not in ("normalize", "raw"):
                return Outcome(kept, "skipped", reason=f"no replay for stage {kept.stage!r}")
            return await self._renormalized(kept, webhook_of(kept.payload))
        except Unreplayable as exc:
            return Outcome(kept, "skipped", reason=str(exc))

    def _too_old(self, kept: Kept) -> str | None:
        if self.include_old or self._now() * 1000 - kept.at_ms <= REMEMBERED_S * 1000:
            return None
        return (f"over {REMEMBERED_S // 86_400} days old: the sender no longer remembers what "
                "it sent then, so bots could answer it twice (--include-old replays it anyway)")

    async def _renormalized(self, kept: Kept, webhook: WebhookRequest) -> Outcome:
        """What ingest would publish for the request now: its own steps, in the same order."""
        events, failure = normalized(webhook)
        if failure is not None:
            return Outcome(kept, "failing", reason=failure[2])
        uncorrelated = 0
        if events and not echoes_correlation(webhook.provider):
            events = await correlate(await self._index(), events)
            uncorrelated = sum(1 for e in events if e.type is EventType.STATUS
                               and e.correlation_id is None and e.message_id)
        records, failure = storable(events, len(webhook.body))
        if failure is not None:
            return Outcome(kept, "failing", reason=failure[2])
        return Outcome(kept, "replayed", records, uncorrelated=uncorrelated)

    async def _exists(self, topic: str) -> bool:
        if topic not in self._topics:
            self._topics[topic] = bool(await partitions_of(self.kafka, topic))
        return self._topics[topic]

    async def _index(self) -> CorrelationIndex:
        index = self._correlations
        if index is None:
            unreferenced = frozenset(p for p in PROVIDERS if not echoes_correlation(p))
            # Caught up before the first lookup, so a miss is a true miss: no waiting on it.
            index = self._correlations = CorrelationIndex(
                self.kafka, unreferenced, lookback_s=self.correlation_lookback_s, wait_s=0)
            index.start()
        seen = -1
        while not index.caught_up.is_set():
            if index.results_read == seen:
                raise ReplayError(f"reading the outbound results (to correlate reports) made "
                                  f"no progress for {CATCH_UP_STALL_S:.0f}s")
            seen = index.results_read
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(index.caught_up.wait(), CATCH_UP_STALL_S)
        return index


@dataclass
class Summary:
    """The counts the command ends with: outcomes, records published, letters it could not
    read (not matched against the filters), the asked-for ids it never met, and whether a stop
    ended it before the end of the window."""

    counts: dict[str, int] = field(default_factory=dict)
    records: int = 0
    unreadable: int = 0
    ids_not_found: list[str] = field(default_factory=list)
    stopped: bool = False
    # Letters of the window the filters left out, by stage: a `--stage` that names no stage
    # there (a custom bot's is `worker:bot-<module>-<function>`) is then said, not a bare 0 of 0.
    unselected: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.outcome] = self.counts.get(outcome.outcome, 0) + 1
        self.records += len(outcome.records)


async def _unreadable(kafka: KafkaTarget, topic: str, since_ms: int | None,
                      read_to: dict[int, int], exc: UnicodeDecodeError) -> str:
    """What to say when the window meets a record aiokafka cannot read (a header key that is
    not UTF-8): which it is, found by reading each partition again from where the window had
    got to (aiokafka's error names neither partition nor offset), and the way past it."""
    partitions = await topic_partitions(kafka, topic)
    consumer = AIOKafkaConsumer(**kafka_options(kafka, "replay"), enable_auto_commit=False,
                                auto_offset_reset="earliest")
    found = None
    try:
        await consumer.start()
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        if since_ms is None:
            starts = await consumer.beginning_offsets(partitions)
        else:
            at = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
            starts = {tp: ends[tp] if at[tp] is None else at[tp].offset for tp in partitions}
        for tp in partitions:
            consumer.seek(tp, max(starts[tp], read_to.get(tp.partition, 0)))
        for tp in partitions:
            while found is None and (position := await consumer.position(tp)) < ends[tp]:
                try:
                    if not await consumer.getmany(tp, timeout_ms=1000):
                        break  # no answer in time: not found here
                except UnicodeDecodeError:
                    consumer.seek(tp, position)
                    found = await find_unreadable(consumer, [tp])
    finally:
        await stop_consumer(consumer)
    where = f"a record of {topic_name(kafka, topic)}"
    see = ""
    if found is not None:
        where = f"the record at {found}"
        see = (f"; kcat shows it: kcat -C -t {found.partition.topic} -p "
               f"{found.partition.partition} -o {found.offset} -c 1 -J")
    return (f"aiokafka cannot read {where} (a header key that is not UTF-8, there or before it "
            f"in its producer's batch: {exc}), so replay stopped there; letters of the window "
            "after it were not replayed (a window starting after it, --since a later time, "
            f"does not read it){see}")


async def replay(kafka: KafkaTarget, *, source: Source, since_ms: int | None,
                 until_ms: int | None, selection: Selection, dry_run: bool,
                 include_old: bool = False, emit: Callable[[bytes], None],
                 stop: asyncio.Event | None = None) -> Summary:
    """Replay the selected records of the window, each reported to `emit` as a JSON line
    once its records are acknowledged (acks=all), or at once with `dry_run`.

    Once `stop` is set, nothing more is read or published: the letters already handed to
    Kafka are waited for and reported, so every letter published has its line."""
    stop = stop or asyncio.Event()
    # Results from a day before the window (a report follows its send); with no start, all.
    now = time.time()
    lookback_s = now - since_ms / 1000 + CORRELATION_LOOKBACK_S if since_ms is not None else now
    replayer = Replayer(kafka, correlation_lookback_s=lookback_s, include_old=include_old)
    producer = None if dry_run else DurableProducer(kafka, role="replay", timeout_s=30)
    summary = Summary()
    chunk: list[Outcome] = []
    chunk_bytes = 0
    seen_ids: set[str] = set()
    publishing: asyncio.Future[None] | None = None

    async def publish(outcomes: list[Outcome]) -> None:
        if producer is not None:
            try:
                await producer.publish([record for o in outcomes for record in o.records])
            except PublishError as exc:
                raise ReplayError(f"Kafka did not acknowledge the records of the "
                                  f"{len(outcomes)} letters after those reported above (some "
                                  f"may be stored): {exc}; the {sum(summary.counts.values())} "
                                  "reported above are stored") from exc
        for outcome in outcomes:
            summary.add(outcome)
            emit(outcome.line())

    async def flush() -> None:
        nonlocal chunk_bytes, publishing
        outcomes = list(chunk)
        chunk.clear()
        chunk_bytes = 0
        # Shielded: a stop cancels the reading, not a publish Kafka may already have taken.
        publishing = asyncio.ensure_future(publish(outcomes))
        await asyncio.shield(publishing)

    def stopped() -> bool:
        """Asked before each letter and each publish: a fetch in hand (up to 500 records) is
        handled without a wait, so the cancel a stop sends would come after the next chunk
        had been handed to Kafka."""
        if stop.is_set():
            summary.stopped = True
        return summary.stopped

    async def read() -> None:
        nonlocal chunk_bytes
        window = read_window(kafka, SOURCE_TOPICS[source], role="replay", since_ms=since_ms,
                             until_ms=until_ms)
        read_to: dict[int, int] = {}  # partition: the offset after the last record read
        async with contextlib.aclosing(window) as records:
            while True:
                try:
                    record = await anext(records)
                except StopAsyncIteration:
                    break
                except UnicodeDecodeError as exc:  # aiokafka parsing a header key
                    raise ReplayError(await _unreadable(kafka, SOURCE_TOPICS[source], since_ms,
                                                        read_to, exc)) from None
                if stopped():
                    return
                read_to[record.partition] = record.offset + 1
                try:
                    kept = read_kept(source, record.value, record.timestamp)
                except Unreplayable:
                    summary.unreadable += 1
                    continue
                if not selection.matches(kept):
                    summary.unselected[kept.stage] = summary.unselected.get(kept.stage, 0) + 1
                    continue
                seen_ids.add(kept.id)
                outcome = await replayer.outcome(kept)
                if outcome.outcome == "replayed" and dry_run:
                    outcome = dataclasses.replace(outcome, outcome="replayable")
                chunk.append(outcome)
                chunk_bytes += sum(len(r.value) for r in outcome.records)
                if len(chunk) >= CHUNK_LETTERS or chunk_bytes >= CHUNK_BYTES:
                    if stopped():
                        return
                    await flush()
        if chunk and stopped():
            return
        await flush()

    reading: asyncio.Task[None] | None = None
    try:
        if producer is not None:
            await producer.start()
        reading = asyncio.create_task(read())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not reading.done():
            # Outcomes worked out but not yet handed to Kafka are dropped: no line, not stored.
            reading.cancel()
            await asyncio.wait([reading])
            summary.stopped = True
            if publishing is not None:
                await publishing
        if not reading.cancelled():
            reading.result()
    except WindowError as exc:
        raise ReplayError(str(exc)) from exc
    finally:
        if reading is not None:
            reading.cancel()
        await replayer.close()
        if producer is not None:
            await producer.stop()
    summary.ids_not_found = sorted(selection.ids - seen_ids)
    return summary
