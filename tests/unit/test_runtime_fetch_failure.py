"""The worker runtime when its fetch loop fails (Kafka refuses the fetch: an authorization
error aiokafka raises from getmany), without a broker: the handlers in flight finish before
the producer stops, nothing is committed, and run() raises what the fetch did."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from consumers import runtime as runtime_module
from consumers.handling import Context, Handler, Record
from consumers.runtime import WorkerRuntime
from switchboard.producer import PublishError
from switchboard.records import OutRecord
from tests.unit.fake_consumers import OneRecordConsumer

TP = TopicPartition("switchboard.outbound.v1", 0)


class RefusedAfterOneFetch(OneRecordConsumer):
    """Fetches its one record, then Kafka refuses the next fetch (the group's topic
    authorization revoked): aiokafka raises it from getmany."""

    def __init__(self) -> None:
        super().__init__(TP, 0)
        self.fetches = 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        self.fetches += 1
        if self.fetches == 2:
            raise TopicAuthorizationFailedError("not authorized to read the topic")
        return await super().getmany(timeout_ms, max_records)


class StoppingProducer:
    """DurableProducer as a handler sees it: connected until stopped, then every publish
    fails. Keeps what happened to it, in order."""

    started = True

    def __init__(self) -> None:
        self.events: list[str] = []

    async def publish(self, records: Sequence[OutRecord]) -> None:
        if not self.started:
            self.events.append("publish refused")
            raise PublishError("Kafka producer is not connected")
        self.events.append("published")

    async def stop(self) -> None:
        self.started = False
        self.events.append("stopped")


async def _no_consumer(consumer: Any) -> None:
    return None


@contextlib.asynccontextmanager
async def _failing_worker(monkeypatch: pytest.MonkeyPatch, handler: Handler
                          ) -> AsyncIterator[tuple[WorkerRuntime, RefusedAfterOneFetch,
                                                   StoppingProducer, asyncio.Task[None]]]:
    """A sender-like worker running `handler` on a consumer whose second fetch Kafka refuses;
    on leaving, whatever is still running (a handler left retrying a refused publish, run()
    itself) is cancelled."""
    consumer = RefusedAfterOneFetch()
    producer = StoppingProducer()
    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: consumer)
    monkeypatch.setattr(runtime_module, "stop_consumer", _no_consumer)
    runtime = WorkerRuntime(name="sender", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, producer=producer)  # type: ignore[arg-type]
    running = asyncio.create_task(runtime.run())
    try:
        yield runtime, consumer, producer, running
    finally:
        leftover = [*runtime._tasks, running]
        for task in leftover:
            task.cancel()
        await asyncio.wait(leftover, timeout=5)


async def test_a_failed_fetch_lets_the_send_in_flight_publish_its_result_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The fetch's error went straight to run()'s clean-up: the producer stopped under a send
    # whose provider call was still out, and its result could never be published (the user
    # saw outcome_unknown after the restart). Its record stays uncommitted: redelivered.
    calling, answered = asyncio.Event(), asyncio.Event()

    async def send(record: Record, ctx: Context) -> None:
        calling.set()
        await answered.wait()  # the provider's answer
        await ctx.publish([OutRecord("switchboard.outbound.results.v1", b"sent", record.key)])

    async with _failing_worker(monkeypatch, send) as (runtime, consumer, producer, running):
        await asyncio.wait_for(calling.wait(), 5)
        # The provider answers once the fetch has failed: run() is over, or it says (as
        # /readyz does) that it stops for a failure while it waits.
        for _ in range(500):
            problem = runtime.problem() or ""
            if running.done() or problem.startswith("stopped by a failure"):
                break
            await asyncio.sleep(0.01)
        assert consumer.fetches >= 2
        answered.set()
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(running, 10)
        assert producer.events == ["published", "stopped"]
        # At most where it began (before the record at 0): the record itself comes back.
        assert all(offsets[TP] == 0 for offsets in consumer.commits), consumer.commits


async def test_a_failed_fetch_winds_the_handlers_down_as_a_stop_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The sender gives a provider call in flight stop_grace_s once the worker winds down,
    # then reports it outcome_unknown: a failed loop that did not wind down would leave it
    # the account's whole timeout_s (minutes), past the bound below.
    async def send(record: Record, ctx: Context) -> None:
        await ctx.winding_down.wait()  # the call cut short at the end of its grace
        await ctx.publish([OutRecord("switchboard.outbound.results.v1", b"unknown")])

    async with _failing_worker(monkeypatch, send) as (_runtime, _consumer, producer, running):
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(running, 10)
        assert producer.events == ["published", "stopped"]


async def test_a_handler_that_never_ends_does_not_keep_a_failed_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Past the rebalance timeout (what a rebalance gives the records in flight too) it is
    # cancelled, before the producer stops, and the worker exits with the fetch's error.
    async def stuck(record: Record, ctx: Context) -> None:
        try:
            await asyncio.Event().wait()  # never set: deaf to the stop as well
        except asyncio.CancelledError:
            producer.events.append("handler cancelled")
            raise

    async with _failing_worker(monkeypatch, stuck) as (runtime, _consumer, producer, running):
        runtime._rebalance_timeout_s = 0.2  # read once the fetch fails, after the start
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(running, 10)
        assert producer.events == ["handler cancelled", "stopped"]
        assert not runtime._tasks
