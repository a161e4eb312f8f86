"""The consumer runtime every worker uses: a Kafka consumer group around a plain async handler.

Guarantees, in order of importance:
- offsets are committed only after the handler finished every record before them, in one
  commit per batch (at-least-once; handlers make their effects idempotent);
- records with the same key are handled one after another, in offset order; different keys
  run concurrently, up to `max_concurrency`;
- a failing handler is retried with backoff; after `max_attempts` the record goes to the
  dead-letter topic with the error and the partition moves on (no stuck partition);
- a rebalance or SIGTERM waits for the batch in flight, commits it, then lets go.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Histogram

from switchboard.logs import get_logger
from switchboard.producer import DurableProducer, PublishError
from switchboard.records import OutRecord, dead_letter_record

log = get_logger(__name__)

HANDLED = Counter("switchboard_worker_records_total", "Records handled by workers",
                  ["worker", "outcome"])
HANDLER_SECONDS = Histogram("switchboard_worker_handler_seconds", "Handler time per record",
                            ["worker"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record, decoupled from aiokafka's types so handlers are easy to test."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0


class PoisonRecord(Exception):
    """The record can never be handled (undecodable): dead-letter it at once, no retries."""


class RetryLater(Exception):
    """A transient failure: retry, after `delay_s` when the cause said how long."""

    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


@dataclass
class Context:
    """What a handler may do besides computing: publish records durably (acks=all)."""

    producer: DurableProducer
    worker: str

    async def publish(self, records: Sequence[OutRecord]) -> None:
        if records:
            await self.producer.publish(records)


Handler = Callable[[Record, Context], Awaitable[None]]


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0

    def delay(self, attempt: int, hint: float | None = None) -> float:
        if hint is not None:
            return min(hint, self.max_delay_s * 6)
        delay: float = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        return delay


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # aiokafka awaits this before giving partitions away: finish and commit first.
        async with self.runtime.batch_lock:
            pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for hook in self.runtime.on_assigned:
            await hook(assigned)


class WorkerRuntime:
    def __init__(
        self,
        *,
        name: str,
        bootstrap_servers: str,
        topics: Sequence[str],
        handler: Handler,
        group_id: str | None = None,
        max_concurrency: int = 32,
        max_batch: int = 500,
        retry: RetryPolicy | None = None,
        producer: DurableProducer | None = None,
        start_from: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        self.name = name
        self.bootstrap_servers = bootstrap_servers
        self.topics = list(topics)
        self.handler = handler
        self.group_id = group_id or f"switchboard-{name}"
        self.max_concurrency = max_concurrency
        self.max_batch = max_batch
        self.retry = retry or RetryPolicy()
        self.producer = producer or DurableProducer(bootstrap_servers,
                                                    client_id=f"switchboard-{name}")
        self.context = Context(self.producer, name)
        # Where a brand-new group starts: the sender must not skip commands ("earliest"); a new
        # bot must not answer last week's messages ("latest"). Restarts resume from commits.
        self.start_from = start_from
        self.ready = asyncio.Event()  # set once partitions are assigned and positioned
        self.batch_lock = asyncio.Lock()
        self.on_assigned: list[Callable[[list[TopicPartition]], Awaitable[None]]] = []
        self.before_batch: list[Callable[[], Awaitable[None]]] = []
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self.handled = 0

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight, commit, and return."""
        self._stopping.set()

    async def run(self) -> None:
        if not self.producer.started:
            await self.producer.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"switchboard-{self.name}",
            enable_auto_commit=False,
            auto_offset_reset=self.start_from,
            max_poll_records=self.max_batch,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
        )
        consumer.subscribe(self.topics, listener=_CommitOnRevoke(self))
        await consumer.start()
        self._consumer = consumer
        log.info("worker started", worker=self.name, topics=self.topics, group=self.group_id)
        try:
            while not self._stopping.is_set():
                if not self.ready.is_set() and consumer.assignment():
                    for tp in consumer.assignment():
                        await consumer.position(tp)  # resolves "latest" now, not lazily
                    self.ready.set()
                batch = await self._next_batch(consumer)
                if batch:
                    async with self.batch_lock:
                        for hook in self.before_batch:
                            await hook()
                        await self._handle_batch(consumer, batch)
        finally:
            await consumer.stop()  # leaves the group: partitions move on at once
            await self.producer.stop()
            log.info("worker stopped", worker=self.name, handled=self.handled)

    async def _next_batch(self, consumer: AIOKafkaConsumer
                          ) -> dict[TopicPartition, list[Any]]:
        fetch = asyncio.ensure_future(consumer.getmany(timeout_ms=500,
                                                       max_records=self.max_batch))
        stop = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
        if fetch not in done:
            fetch.cancel()
            return {}
        stop.cancel()
        result: dict[TopicPartition, list[Any]] = fetch.result()
        return result

    async def _handle_batch(self, consumer: AIOKafkaConsumer,
                            batch: dict[TopicPartition, list[Any]]) -> None:
        by_key: dict[tuple[str, int, bytes | None], list[Record]] = defaultdict(list)
        for tp, records in batch.items():
            for r in records:
                by_key[(tp.topic, tp.partition, r.key)].append(Record(
                    r.topic, r.partition, r.offset, r.key, r.value or b"",
                    tuple(r.headers or ()), r.timestamp or 0))
        limit = asyncio.Semaphore(self.max_concurrency)

        async def run_key(records: list[Record]) -> None:
            async with limit:
                for record in records:  # same key: strictly in order
                    await self._handle_one(record)

        await asyncio.gather(*(run_key(records) for records in by_key.values()))
        offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "")
                   for tp, records in batch.items() if records}
        await consumer.commit(offsets)

    async def _handle_one(self, record: Record) -> None:
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                await self.handler(record, self.context)
                HANDLER_SECONDS.labels(self.name).observe(time.perf_counter() - started)
                HANDLED.labels(self.name, "ok").inc()
                self.handled += 1
                return
            except PoisonRecord as exc:
                await self._dead_letter(record, f"undecodable record: {exc}", attempt)
                return
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then kept
                hint = exc.delay_s if isinstance(exc, RetryLater) else None
                if attempt >= self.retry.max_attempts:
                    await self._dead_letter(record, f"{type(exc).__name__}: {exc}", attempt)
                    return
                HANDLED.labels(self.name, "retry").inc()
                log.warning("handler failed, retrying", worker=self.name, attempt=attempt,
                            error=repr(exc), topic=record.topic, offset=record.offset)
                await asyncio.sleep(self.retry.delay(attempt, hint))

    async def _dead_letter(self, record: Record, reason: str, attempts: int) -> None:
        HANDLED.labels(self.name, "dead_letter").inc()
        log.error("record dead-lettered", worker=self.name, reason=reason, topic=record.topic,
                  partition=record.partition, offset=record.offset, attempts=attempts)
        payload = {
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "key": record.key.decode("utf-8", "replace") if record.key else None,
            "value_b64": base64.b64encode(record.value).decode(), "attempts": attempts,
            "worker": self.name,
        }
        letter = dead_letter_record(
            dl_id=str(uuid.uuid4()), stage=f"worker:{self.name}", reason=reason,
            provider="", account="", time=datetime.now(UTC), payload=payload, key=record.key)
        for attempt in range(1, 11):
            try:
                await self.producer.publish([letter])
                break
            except PublishError:
                if attempt == 10:
                    raise  # Kafka is gone: stop without committing; the record comes back
                await asyncio.sleep(self.retry.delay(attempt))
        self.handled += 1
