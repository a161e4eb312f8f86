"""A worker's readiness while Kafka is away, without a broker: a member that Kafka has not
answered for long says so, also one with no partition (more members than partitions); one
whose partitions are paused (every slot busy) or one in a rebalance does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import TopicPartition

from consumers import kafka_watch
from consumers import runtime as runtime_module
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import Group

TP = TopicPartition("t", 0)
SILENT_S = 0.5


async def _ignore(record: Record, ctx: Context) -> None:
    return None


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch) -> Group:
    consumer = Group()

    async def stop(consumer: Any) -> None:
        return None

    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: consumer)
    monkeypatch.setattr(runtime_module, "stop_consumer", stop)
    monkeypatch.setattr(kafka_watch, "KAFKA_SILENT_AFTER_S", SILENT_S)
    monkeypatch.setattr(kafka_watch, "KAFKA_CHECK_S", 0.02)
    return consumer


async def _problems_for(runtime: WorkerRuntime, seconds: float, group: Group | None = None
                        ) -> set[str | None]:
    """Every answer /readyz gave over `seconds`; Kafka answering fetches meanwhile if `group`
    is given."""
    seen: set[str | None] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if group is not None:
            group.answer()
        seen.add(runtime.problem())
        await asyncio.sleep(0.02)
    return seen


async def _ready_again(runtime: WorkerRuntime, group: Group | None = None) -> None:
    """Until /readyz says ready (it is looked at every KAFKA_CHECK_S), Kafka answering."""
    for _ in range(100):
        if group is not None:
            group.answer()
        if runtime.problem() is None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still not ready: {runtime.problem()}")


async def _running(group: Group, **given: Any) -> tuple[WorkerRuntime, asyncio.Task[None]]:
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=_ignore, commit_interval_s=0.01,
                            producer=KeepingProducer(), **given)  # type: ignore[arg-type]
    running = asyncio.create_task(runtime.run())
    for _ in range(100):
        if runtime._consumer is not None:
            break
        await asyncio.sleep(0.01)
    return runtime, running


@asynccontextmanager
async def _worker(group: Group, **given: Any) -> AsyncIterator[WorkerRuntime]:
    """A worker running over `group`, stopped and waited for on leaving."""
    runtime, running = await _running(group, **given)
    try:
        yield runtime
    finally:
        runtime.stop()
        await asyncio.wait_for(running, 5)


async def test_a_worker_kafka_does_not_answer_for_long_is_not_ready(group: Group) -> None:
    # /readyz said ready for as long as Kafka was away: the consumer fetched nothing and
    # committed nothing, and nothing but its log said so.
    async with _worker(group) as runtime:
        await group.assign({TP})
        assert await _problems_for(runtime, 3 * SILENT_S, group) == {None}
        await asyncio.sleep(SILENT_S + 0.1)  # Kafka away: no fetch is answered
        problem = runtime.problem()
        assert problem is not None and problem.startswith("Kafka unreachable: no fetch "
                                                          "answered for ")
        await _ready_again(runtime, group)  # Kafka back


async def test_a_worker_with_no_partition_stays_ready_while_kafka_answers(group: Group
                                                                         ) -> None:
    # More members than partitions: this one is idle, fetches nothing, and is fine.
    async with _worker(group) as runtime:
        await group.assign(set())
        assert await _problems_for(runtime, 3 * SILENT_S) == {None}
        assert group.asked >= 3  # a small question every third of SILENT_S


async def test_a_worker_with_no_partition_kafka_does_not_answer_for_long_is_not_ready(
        group: Group) -> None:
    """An idle member, fetching and committing nothing, had nothing that could fail: its
    /readyz said ready for as long as Kafka was away."""
    async with _worker(group) as runtime:
        await group.assign(set())
        group.kafka_away = True
        await asyncio.sleep(SILENT_S + 0.2)
        problem = runtime.problem()
        assert problem is not None and problem.startswith("Kafka unreachable: no answer for ")
        assert problem.endswith("s (this member has no partition)")
        group.kafka_away = False
        await _ready_again(runtime)


async def test_a_worker_with_no_partition_stays_ready_while_one_broker_is_down(
        group: Group) -> None:
    """It asked for the end of one partition only: on a cluster of several brokers, that
    partition's leader down (a broker restarting, its partitions' leaders not moved yet) made
    it unready, though Kafka answered. Any of a few partitions answering will do."""
    async with _worker(group) as runtime:
        await group.assign(set())
        group.leaders_away = {TP}
        assert await _problems_for(runtime, 3 * SILENT_S) == {None}
        group.kafka_away = True  # all of them
        await asyncio.sleep(SILENT_S + 0.2)
        problem = runtime.problem()
        assert problem is not None and problem.startswith("Kafka unreachable: no answer for ")


async def test_partitions_newly_assigned_or_resumed_are_given_time_to_be_fetched(
        group: Group) -> None:
    async with _worker(group) as runtime:
        await group.assign({TP})
        await asyncio.sleep(SILENT_S / 2)
        other = TopicPartition("t", 1)
        await group.assign({other})  # nothing fetched of it yet
        assert await _problems_for(runtime, SILENT_S / 2) == {None}
        # Every slot busy: the runtime pauses its partitions, which are then not fetched.
        group.pause(other)
        assert await _problems_for(runtime, 2 * SILENT_S) == {None}
        group.resume(other)  # last fetched long ago: a fetch gets its time again
        assert await _problems_for(runtime, SILENT_S / 2) == {None}


async def test_a_rebalance_is_not_taken_for_kafka_away_until_it_lasts_too_long(
        group: Group) -> None:
    # aiokafka fetches nothing new while the group rebalances, which lasts until every member
    # has finished the records it started: up to the rebalance timeout, minutes for a bot.
    async with _worker(group) as runtime:
        await group.assign({TP})
        assert group.listener is not None
        await group.listener.on_partitions_revoked([TP])  # the rebalance began
        assert await _problems_for(runtime, 3 * SILENT_S) == {None}
        runtime._rebalance_timeout_s = 0.1  # as if it had lasted past the group's timeout
        await asyncio.sleep(SILENT_S)
        problem = runtime.problem()
        assert problem is not None and problem.startswith(
            "Kafka unreachable: the group's rebalance has not ended for ")
        group.assigned = {TP}
        await group.listener.on_partitions_assigned([TP])  # it ended
        await _ready_again(runtime, group)
        assert await _problems_for(runtime, 2 * SILENT_S, group) == {None}


async def test_commits_failing_for_long_make_a_worker_not_ready(group: Group) -> None:
    # Its partitions all paused (every slot busy), no fetch tells whether Kafka is there:
    # the commits of what is done do.
    async with _worker(group) as runtime:
        await group.assign({TP})
        group.answer()
        group.pause(TP)
        group.commit_error = TimeoutError()
        runtime._fetched[TP] = 5  # records done, to be committed
        await asyncio.sleep(SILENT_S + 0.2)
        problem = runtime.problem()
        assert problem is not None and problem.startswith(
            "Kafka unreachable: commits failing for ")
        group.commit_error = None
        await _ready_again(runtime)
