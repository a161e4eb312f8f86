"""What a kept record stands for now: the events its webhook gives (correlated as ingest
does), or the record a worker gave up on, put back as it was; or why it cannot be replayed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import orjson

from ingest.correlation import CorrelationIndex, correlate
from ingest.kept import Kept, Unreplayable, record_of, webhook_of
from ingest.normalizing import normalized, storable
from normalizers import WebhookRequest
from normalizers.registry import echoes_correlation
from switchboard.clients import KafkaTarget, topic_name
from switchboard.events import EventType
from switchboard.logs import scrub
from switchboard.providers import PROVIDERS
from switchboard.records import OutRecord, short
from switchboard.topics import LEDGER_RETENTION_DAYS, partitions_of

# Reading the results may take long on a busy topic; only this long without progress fails.
CATCH_UP_STALL_S = 60.0
# Past this age (counted from when a record was first published: the bots answered it then),
# the sender no longer remembers the ids it sent for it (its ledger keeps them 8 days from the
# send), so events published again could make bots answer a second time. A day of margin.
REMEMBERED_S = (LEDGER_RETENTION_DAYS - 1) * 86_400


def _as_kept(reason: str) -> str:
    """A failure's reason as its dead letter says it (switchboard.records): masked, as a
    reason may quote the payload, and a payload a credential (a URL's password, a JWT)."""
    return short(scrub(reason))


def first_published_ms(kept: Kept, record: OutRecord | None) -> int:
    """When what a letter holds was published at the latest, which the bots answered then: a
    raw request's when it was kept; a worker's record's (`record`, decoded from the letter)
    CloudEvents time (`ce_time`: when the event happened or was received, when the command was
    made), if earlier than its letter's. A worker keeps its letter after its retries, days after
    the record was published if it lagged (stopped for a weekend) while the other bots answered
    it at once. The letter holds no time of the record on its topic; `ce_time` comes before it."""
    if record is None:
        return kept.at_ms
    headers = record.headers or []
    said = next((value for name, value in headers if name == "ce_time" and value), None)
    try:
        at = datetime.fromisoformat(said.decode()) if said is not None else None
    except (UnicodeDecodeError, ValueError):
        at = None  # a foreign producer's record: its letter's time
    if at is None:
        return kept.at_ms
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return min(kept.at_ms, int(at.timestamp() * 1000))


class ReplayError(Exception):
    """Replay cannot go on (a topic missing, Kafka not answering); the message says why."""


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
            "uncorrelated": self.uncorrelated,
            # What `--reason` matches: `reason` is why it fails now, empty once it replays.
            "letter_reason": self.kept.reason,
            # Where the letter was read: a replay that ended with no continuing line (a crash)
            # continues from each partition's highest offset printed (`--after`).
            "partition": self.kept.partition, "offset": self.kept.offset})


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
            record = record_of(kept.payload) if kept.stage.startswith("worker:") else None
            if record is not None or kept.stage == "raw":
                # Published before: every consumer group sees it once more.
                refusal = self._too_old(kept, record)
                if refusal:
                    return Outcome(kept, "skipped", reason=refusal)
            if record is not None:
                if not await self._exists(record.topic):
                    missing = topic_name(self.kafka, record.topic)
                    return Outcome(kept, "failing", reason=f"topic {missing} does not exist")
                return Outcome(kept, "replayed", [record])
            if kept.stage not in ("normalize", "raw"):
                return Outcome(kept, "skipped", reason=f"no replay for stage {kept.stage!r}")
            return await self._renormalized(kept, webhook_of(kept.payload))
        except Unreplayable as exc:
            return Outcome(kept, "skipped", reason=str(exc))

    def _too_old(self, kept: Kept, record: OutRecord | None) -> str | None:
        if self.include_old or self._now() * 1000 - first_published_ms(kept, record) <= \
                REMEMBERED_S * 1000:
            return None
        return (f"published over {REMEMBERED_S // 86_400} days ago: the sender no longer "
                "remembers what it sent then, so bots could answer it twice (--include-old "
                "replays it anyway)")

    async def _renormalized(self, kept: Kept, webhook: WebhookRequest) -> Outcome:
        """What ingest would publish for the request now: its own steps, in the same order."""
        events, failure = normalized(webhook)
        if failure is not None:
            return Outcome(kept, "failing", reason=_as_kept(failure[2]))
        uncorrelated = 0
        if events and not echoes_correlation(webhook.provider):
            events = await correlate(await self._index(), events)
            uncorrelated = sum(1 for e in events if e.type is EventType.STATUS
                               and e.correlation_id is None and e.message_id)
        records, failure = storable(events, len(webhook.body))
        if failure is not None:
            return Outcome(kept, "failing", reason=_as_kept(failure[2]))
        return Outcome(kept, "replayed", list(records), uncorrelated=uncorrelated)

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

