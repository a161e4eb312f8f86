"""The worker runtime stopping, without a broker: the wait between attempts gives way to a
stop, and a start that fails closes what it opened."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaConnectionError

from consumers.handling import Context, GiveBack, PoisonRecord, Record, RetryLater
from consumers.runtime import WorkerRuntime
from switchboard.producer import PublishError
from switchboard.records import OutRecord
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
