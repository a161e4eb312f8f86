"""The worker runtime stopping, without a broker: the wait between attempts gives way to a
stop, and a start that fails closes what it opened."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaConnectionError

from consumers.handling import Context, GiveBack, Record, RetryLater
from consumers.runtime import WorkerRuntime
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
