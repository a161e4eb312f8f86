"""The worker runtime stopping, without a broker: the wait between attempts gives way to a
stop, and a start that fails closes what it opened."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError

from consumers.handling import Context, GiveBack, MustNotSkip, PoisonRecord, Record, RetryLater
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.producer import PublishError
from switchboard.records import OutRecord
from switchboard.topics import DEAD_LETTER
from tests.fakes import KeepingProducer
from tests.unit.fakes import unreachable_consumer


async def test_a_stop_does_not_wait_out_a_retry_hint() -> None:
    """A handler asking to be retried in a minute (RetryLater) held a SIGTERM or a rebalance
    for that minute; the record is given back instead, uncommitted, for its next owner."""
    failed = asyncio.Event()

    async def busy(record: Record, ctx: Context) -> None:
        failed.set()
        raise RetryLater("the provider is busy", delay_s=60)

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=busy,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    record = SimpleNamespace(topic="t", partition=0, offset=1, key=b"k", value=b"{}",
                             headers=())
    handling = asyncio.create_task(runtime._handle_one(record))  # type: ignore[arg-type]
    await asyncio.wait_for(failed.wait(), 5)
    runtime.stop()
    with pytest.raises(GiveBack):
        await asyncio.wait_for(handling, 5)


async def test_a_consumer_that_cannot_start_leaves_no_producer_connected(
        monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable_consumer(monkeypatch)
    producer = KeepingProducer()

    async def unused(record: Record, ctx: Context) -> None:
        raise AssertionError("nothing was consumed")

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=unused,
                            producer=producer)  # type: ignore[arg-type]
    with pytest.raises(KafkaConnectionError):
        await runtime.run()
    assert not producer.started


async def test_a_dead_letter_kafka_does_not_take_is_given_back_on_a_stop() -> None:
    """With Kafka away, the dead letter of a record was retried ten times, about 45 s of
    backoff besides each publish's own timeout, before the stop could end: the record is
    given back instead, uncommitted, and its next owner dead-letters it."""
    attempts = asyncio.Event()

    class Unavailable(KeepingProducer):
        async def publish(self, records: list[OutRecord]) -> None:
            attempts.set()
            raise PublishError("Kafka did not acknowledge within 5.0s")

    async def poison(record: Record, ctx: Context) -> None:
        raise PoisonRecord("not json")

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], handler=poison,
                            producer=Unavailable())  # type: ignore[arg-type]
    record = SimpleNamespace(topic="t", partition=0, offset=1, key=b"k", value=b"{",
                             headers=())
    handling = asyncio.create_task(runtime._handle_one(record))  # type: ignore[arg-type]
    await asyncio.wait_for(attempts.wait(), 5)
    runtime.stop()
    with pytest.raises(GiveBack):
        await asyncio.wait_for(handling, 2)


class _Outage(KeepingProducer):
    """Kafka takes nothing for the first `failing` publishes, failing as `error` says."""

    def __init__(self, failing: int, error: PublishError) -> None:
        super().__init__()
        self.failing = failing
        self.error = error
        self.calls = 0

    async def publish(self, records: list[OutRecord]) -> None:
        self.calls += 1
        if self.calls <= self.failing:
            raise PublishError(str(self.error), lasting=self.error.lasting)
        await super().publish(records)


def _replying(*, must_not_skip: bool = False) -> Callable[[Record, Context], Awaitable[None]]:
    async def handler(record: Record, ctx: Context) -> None:
        try:
            await ctx.publish([OutRecord("replies", b"hi", key=record.key)])
        except PublishError as exc:
            if must_not_skip:  # as the bots wrap an opt-out change Kafka did not take
                raise MustNotSkip(f"opt-out change not stored: {exc}") from exc
            raise
    return handler


FAST = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.005)
RECORD = SimpleNamespace(topic="t", partition=0, offset=1, key=b"k", value=b"{}", headers=())


@pytest.mark.parametrize("must_not_skip", [False, True], ids=["reply", "opt-out"])
async def test_kafka_away_spends_no_attempt(must_not_skip: bool) -> None:
    """A broker restart (publishes failing for longer than max_attempts retries) dead-lettered
    every record it caught, a reply or a send never to happen; an opt-out change stopped its
    bot. The record now waits for Kafka and is handled once it is back."""
    producer = _Outage(failing=12, error=PublishError("Kafka did not acknowledge within 5s"))
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], retry=FAST,
                            handler=_replying(must_not_skip=must_not_skip),
                            producer=producer)  # type: ignore[arg-type]
    await asyncio.wait_for(runtime._handle_one(RECORD), 10)  # type: ignore[arg-type]
    assert [r.topic for r in producer.published] == ["replies"]  # no dead letter
    assert runtime.handled == 1


async def test_records_kafka_refuses_for_good_still_spend_their_attempts() -> None:
    producer = _Outage(failing=FAST.max_attempts, error=PublishError(
        "Kafka refused the records: MessageSizeTooLargeError()", lasting=True))
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], retry=FAST,
                            handler=_replying(), producer=producer)  # type: ignore[arg-type]
    await asyncio.wait_for(runtime._handle_one(RECORD), 10)  # type: ignore[arg-type]
    assert [r.topic for r in producer.published] == [DEAD_LETTER.name]
    assert orjson.loads(producer.published[0].value)["payload"]["attempts"] == FAST.max_attempts


async def test_a_stop_gives_back_a_record_waiting_for_kafka() -> None:
    producer = _Outage(failing=10**6, error=PublishError("Kafka producer is not connected"))
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], retry=FAST,
                            handler=_replying(), producer=producer)  # type: ignore[arg-type]
    handling = asyncio.create_task(runtime._handle_one(RECORD))  # type: ignore[arg-type]
    for _ in range(500):  # bounded: past the attempts a failure from elsewhere would spend
        if producer.calls > FAST.max_attempts:
            break
        await asyncio.sleep(0.01)
    runtime.stop()
    with pytest.raises(GiveBack):
        await asyncio.wait_for(handling, 5)
    assert not producer.published


async def _poison(record: Record, ctx: Context) -> None:
    raise PoisonRecord("not json")


async def test_a_dead_letter_waits_for_kafka_as_long_as_it_is_away() -> None:
    """A dead letter Kafka did not take ten times (about a minute of backoff and publish
    timeouts) stopped the worker, where every other publish waits Kafka out: a broker restart
    stopped every worker holding a record to dead-letter."""
    producer = _Outage(failing=25, error=PublishError("Kafka producer is not connected"))
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], retry=FAST,
                            handler=_poison, producer=producer)  # type: ignore[arg-type]
    await asyncio.wait_for(runtime._handle_one(RECORD), 10)  # type: ignore[arg-type]
    assert [r.topic for r in producer.published] == [DEAD_LETTER.name]
    assert producer.calls == 26


async def test_a_dead_letter_kafka_refuses_for_good_stops_the_worker_short_of_its_record(
        ) -> None:
    producer = _Outage(failing=10**6, error=PublishError(
        "Kafka refused the records: MessageSizeTooLargeError()", lasting=True))
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=["t"], retry=FAST,
                            handler=_poison, producer=producer)  # type: ignore[arg-type]
    with pytest.raises(PublishError):
        await asyncio.wait_for(runtime._handle_one(RECORD), 10)  # type: ignore[arg-type]
    assert producer.calls == 10


def test_the_backoff_stays_at_its_cap_however_long_kafka_is_away() -> None:
    """A record waiting for Kafka counts a failure every backoff (at most 10 s): after about
    three hours, 2 ** failures no longer fit a float, and the OverflowError stopped the worker
    with a traceback."""
    policy = RetryPolicy()
    assert policy.delay(5_000) == policy.max_delay_s


@pytest.mark.parametrize("hint", [math.nan, -30.0, math.inf])
def test_a_retry_later_delay_that_is_no_wait_is_not_taken_as_one(hint: float) -> None:
    """A custom bot's RetryLater(delay_s=...) from a parsed header can be NaN or negative:
    min(nan, cap) is NaN and a negative sleep none, so each retry came at once and the record
    ran through its attempts in a moment. Such a hint is the usual backoff; infinity the cap."""
    policy = RetryPolicy()
    delay = policy.delay(3, hint)
    assert delay == (policy.max_delay_s * 6 if hint == math.inf else policy.delay(3))
