"""The worker runtime's metrics beyond records by outcome: records in flight, the time of
failed handler attempts, and partitions assigned and taken away."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from consumers import kafka_watch
from consumers.assignment import _CommitOnRevoke
from consumers.handling import Context, PoisonRecord, Record, RetryLater
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.producer import PublishError
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import FakeConsumer, PartitionLog, fetched, runtime_over

TP = TopicPartition("t", 0)
FAST = RetryPolicy(max_attempts=2, base_delay_s=0, max_delay_s=0)


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _runtime(handler: Any, **given: Any) -> WorkerRuntime:
    name = f"m-{uuid.uuid4().hex[:8]}"  # metrics of its own
    return WorkerRuntime(name=name, kafka="unused:9092", topics=[TP.topic], handler=handler,
                         retry=FAST, producer=KeepingProducer(),  # type: ignore[arg-type]
                         **given)


async def test_records_in_flight_are_counted_until_their_handler_is_done() -> None:
    # Nothing said how many records a worker held: a backlog behind a provider's rate limit
    # (up to max_in_flight records waiting) looked like an idle worker.
    gate = asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        await gate.wait()

    runtime = _runtime(handler, max_concurrency=1)
    await runtime._dispatch(fetched(range(3)))
    await asyncio.sleep(0.01)
    try:
        assert _value("switchboard_worker_records_in_flight", worker=runtime.name) == 3
    finally:
        gate.set()
        await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    assert _value("switchboard_worker_records_in_flight", worker=runtime.name) == 0


@pytest.mark.parametrize(("failure", "cause"), [
    (RuntimeError("the CRM is down"), "error"),
    (RetryLater("busy", delay_s=0), "error"),
    (PublishError("Kafka did not acknowledge within 5s"), "kafka_away"),
    (PoisonRecord("not json"), "poison"),
])
async def test_failed_attempts_are_timed_by_their_cause(failure: Exception, cause: str) -> None:
    # switchboard_worker_handler_seconds observes successful attempts only: a provider that
    # timed out every call after 10 s left no trace of those 10 s anywhere.
    calls = 0

    async def handler(record: Record, ctx: Context) -> None:
        nonlocal calls
        calls += 1
        if calls == 1 or isinstance(failure, PoisonRecord):
            await asyncio.sleep(0.02)
            raise failure

    runtime = _runtime(handler)
    record = SimpleNamespace(topic="t", partition=0, offset=1, key=b"k", value=b"{}",
                             headers=())
    await asyncio.wait_for(runtime._handle_one(record), 5)  # type: ignore[arg-type]
    labels = {"worker": runtime.name, "cause": cause}
    assert _value("switchboard_worker_handler_failure_seconds_count", **labels) == 1
    assert _value("switchboard_worker_handler_failure_seconds_sum", **labels) >= 0.02
    succeeded = 0 if isinstance(failure, PoisonRecord) else 1
    assert _value("switchboard_worker_handler_seconds_count", worker=runtime.name) == succeeded


async def test_a_handler_timed_out_is_observed_as_a_timeout() -> None:
    async def hangs(record: Record, ctx: Context) -> None:
        await asyncio.Event().wait()

    runtime = _runtime(hangs, handler_timeout_s=0.02)
    await runtime._dispatch(fetched(range(1)))
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    assert _value("switchboard_worker_handler_failure_seconds_count", worker=runtime.name,
                  cause="timeout") == FAST.max_attempts
    assert _value("switchboard_worker_handler_failure_seconds_count", worker=runtime.name,
                  cause="error") == 0


async def test_partitions_assigned_and_taken_away_are_counted() -> None:
    async def handler(record: Record, ctx: Context) -> None:
        return None

    runtime = _runtime(handler)
    runtime._consumer = FakeConsumer({TP})
    listener = _CommitOnRevoke(runtime)
    other = TopicPartition("t", 1)
    await listener.on_partitions_revoked([])  # aiokafka's call before the first join
    await listener.on_partitions_assigned([TP, other])
    assert _value("switchboard_worker_partitions_assigned", worker=runtime.name) == 2
    await listener.on_partitions_revoked([TP, other])
    assert _value("switchboard_worker_partitions_assigned", worker=runtime.name) == 0
    await listener.on_partitions_assigned([])  # more members than partitions: none for it
    await listener.on_partitions_revoked([])
    await listener.on_partitions_assigned([TP])
    assert _value("switchboard_worker_partitions_assigned", worker=runtime.name) == 1
    assert _value("switchboard_worker_rebalances_total", worker=runtime.name,
                  change="assigned") == 3
    assert _value("switchboard_worker_rebalances_total", worker=runtime.name,
                  change="revoked") == 1


async def test_the_lag_of_each_partition_counts_from_its_oldest_record_not_finished(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_watch, "KAFKA_CHECK_S", 0.01)
    gate = asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        if record.offset >= 2:
            await gate.wait()

    consumer = PartitionLog(records=5)  # its end: offset 5
    runtime = runtime_over(consumer, monkeypatch, handler)
    labels = {"worker": runtime.name, "topic": TP.topic, "partition": "0"}

    async def lag_is(expected: float) -> None:
        for _ in range(300):
            if REGISTRY.get_sample_value("switchboard_worker_lag_records", labels) == expected:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(REGISTRY.get_sample_value("switchboard_worker_lag_records", labels))

    running = asyncio.create_task(runtime.run())
    try:
        await lag_is(3)  # 0 and 1 done; 2, 3 and 4 in flight
        gate.set()
        await lag_is(0)
    finally:
        gate.set()
        runtime.stop()
        await asyncio.wait_for(running, 5)
    # No longer this member's to say.
    assert REGISTRY.get_sample_value("switchboard_worker_lag_records", labels) is None
