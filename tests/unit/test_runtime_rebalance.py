"""The worker runtime at a rebalance, without a broker: what was fetched for partitions being
taken away must not start once they are released (their new owner handles it)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaConnectionError

from consumers import assignment
from consumers import commits as commits_module
from consumers import runtime as runtime_module
from consumers.assignment import _CommitOnRevoke
from consumers.handling import Context, MustNotSkip, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import (
    FakeConsumer,
    PartitionLog,
    Uncommitted,
    fetched,
    runtime_over,
)
from tests.unit.fakes import unreachable_consumer

TP = TopicPartition("t", 0)


def gated() -> tuple[Any, list[int], asyncio.Event]:
    """A handler that waits for the gate, then notes the offset it handled."""
    handled: list[int] = []
    gate = asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        await gate.wait()
        handled.append(record.offset)

    return handler, handled, gate


async def test_a_released_partitions_fetched_records_do_not_start() -> None:
    handler, handled, gate = gated()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, max_in_flight=1)
    consumer = FakeConsumer({TP})
    runtime._consumer = consumer
    dispatching = asyncio.create_task(runtime._dispatch(fetched(range(5))))
    await asyncio.sleep(0.01)  # record 0 runs; the batch waits for room for record 1
    releasing = asyncio.create_task(runtime.release({TP}))  # the rebalance begins
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.wait_for(asyncio.gather(dispatching, releasing), 5)

    assert handled == [0]  # records 1-4 are left to the partition's next owner
    assert consumer.commits == [{TP: 1}]  # committed up to what was done, on the way out
    assert runtime._fetched == {} and not runtime._tasks


async def test_only_assigned_partitions_are_committed() -> None:
    async def handler(record: Record, ctx: Context) -> None:
        return None

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler)
    gone = TopicPartition("t", 1)
    consumer = FakeConsumer({TP})
    await runtime._dispatch(fetched(range(3)) | {gone: fetched(range(2))[TP]})
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    await runtime._commit_done(consumer)
    assert consumer.commits == [{TP: 3}]


async def test_no_record_starts_before_the_hooks_for_its_new_partition_succeed(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The sender's hook catches its ledger up with what the partition's previous owner sent.
    # aiokafka fetches the new partition while its listener runs: records started before the
    # hook was done. And a hook failing (Kafka away: the catch-up timed out after 30 s)
    # stopped the worker with a traceback, where the rest of the runtime waits Kafka out.
    handled: list[int] = []
    calls: list[list[TopicPartition]] = []
    consumer = PartitionLog(records=3)

    async def handler(record: Record, ctx: Context) -> None:
        handled.append(record.offset)
        if record.offset == 2:
            runtime.stop()

    async def catch_up(assigned: list[TopicPartition]) -> None:
        calls.append(assigned)
        assert handled == []
        if len(calls) < 3:
            raise TimeoutError  # as CompactedTable.catch_up, Kafka away
        await asyncio.sleep(0.05)  # the fetcher has long answered meanwhile
        assert handled == []

    runtime = runtime_over(consumer, monkeypatch, handler)
    runtime.on_assigned.append(catch_up)
    await asyncio.wait_for(runtime.run(), 5)
    assert calls == [[TP]] * 3
    assert handled == [0, 1, 2] and runtime._failure is None
    assert caplog.text.count("getting new partitions ready failed; retrying") == 2


async def test_a_stop_ends_while_new_partitions_cannot_get_ready(
        monkeypatch: pytest.MonkeyPatch) -> None:
    handled: list[int] = []
    tried = asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        handled.append(record.offset)

    async def catch_up(assigned: list[TopicPartition]) -> None:
        tried.set()
        await asyncio.Event().wait()  # Kafka away: the catch-up waits (up to 30 s)

    runtime = runtime_over(PartitionLog(records=3), monkeypatch, handler)
    runtime.on_assigned.append(catch_up)
    running = asyncio.create_task(runtime.run())
    await asyncio.wait_for(tried.wait(), 5)
    await asyncio.sleep(0.1)  # the fetcher has long answered meanwhile
    runtime.stop()  # SIGTERM
    await asyncio.wait_for(running, 1)
    assert handled == []


async def test_a_worker_whose_new_partitions_cannot_get_ready_says_so_when_probed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    failed = asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        return None

    async def catch_up(assigned: list[TopicPartition]) -> None:
        if not failed.is_set():
            failed.set()
            raise TimeoutError

    runtime = runtime_over(PartitionLog(records=0), monkeypatch, handler)
    monkeypatch.setattr(assignment, "READY_RETRY_S", 0.5)
    runtime.on_assigned.append(catch_up)
    running = asyncio.create_task(runtime.run())
    await asyncio.wait_for(failed.wait(), 5)
    await asyncio.sleep(0.1)
    assert runtime.problem() == "new partitions not ready: TimeoutError"  # /readyz: 503
    for _ in range(200):
        if runtime.problem() is None:
            break
        await asyncio.sleep(0.01)
    assert runtime.problem() is None
    runtime.stop()
    await asyncio.wait_for(running, 5)


async def test_a_record_that_must_not_be_skipped_stops_the_worker_instead_of_a_dead_letter(
        ) -> None:
    attempts: list[int] = []

    async def handler(record: Record, ctx: Context) -> None:
        attempts.append(record.offset)
        raise MustNotSkip("opt-out change not stored")

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, retry=RetryPolicy(max_attempts=3, base_delay_s=0))
    await runtime._dispatch(fetched(range(1)))
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    # No dead letter was attempted (the producer is not even connected): the worker stops
    # with the record in flight, so it is not committed and comes back after a restart.
    assert attempts == [0, 0, 0]
    assert runtime.problem() == "stopped by a failure: MustNotSkip"
    assert runtime._in_flight[TP] == {0}


async def test_a_handler_that_never_returns_is_timed_out_then_dead_lettered() -> None:
    async def hangs(record: Record, ctx: Context) -> None:
        await asyncio.Event().wait()

    producer = KeepingProducer()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=hangs, handler_timeout_s=0.05,
                            retry=RetryPolicy(max_attempts=2, base_delay_s=0),
                            producer=producer)  # type: ignore[arg-type]
    await runtime._dispatch(fetched(range(1)))
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    [letter] = producer.published
    assert orjson.loads(letter.value)["reason"] == "TimeoutError: no answer within 0.05s"
    assert runtime._in_flight[TP] == set() and runtime._failure is None  # the worker goes on


async def test_on_stop_records_not_started_are_given_back_uncommitted() -> None:
    handler, handled, gate = gated()
    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, max_concurrency=1)
    consumer = FakeConsumer({TP})
    await runtime._dispatch(fetched(range(5)))  # 0 starts; 1-4 wait for their turn
    await asyncio.sleep(0.01)
    runtime.stop()  # SIGTERM: finish what started, leave the rest to the next run
    gate.set()
    await asyncio.wait_for(runtime.drain(consumer), 5)
    assert handled == [0]
    assert consumer.commits == [{TP: 1}]


async def test_a_batch_fetched_just_before_a_rebalance_does_not_start_after_it() -> None:
    # The fetch answers and, before the loop resumes, aiokafka revokes the partitions. With
    # nothing in flight and nothing to commit, release() is over at once: the batch must not
    # be handled then, while the partition's next owner starts from the committed offset.
    handled: list[int] = []

    async def handler(record: Record, ctx: Context) -> None:
        handled.append(record.offset)

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler)
    consumer = FakeConsumer({TP})
    runtime._consumer = consumer

    async def rebalance() -> None:
        await _CommitOnRevoke(runtime).on_partitions_revoked([TP])
        consumer.assigned = set()  # TP went to another member

    async def getmany(timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        asyncio.get_running_loop().create_task(rebalance())  # the coordinator's turn next
        return fetched(range(3))

    consumer.getmany = getmany  # type: ignore[attr-defined]
    generation = runtime._generation
    batch = await runtime._next_batch(consumer)
    assert runtime._generation != generation  # the rebalance ran in between
    await runtime._dispatch(batch)  # as run() does with what the fetch gave
    await asyncio.wait_for(asyncio.gather(*runtime._tasks), 5)
    assert handled == []


class AcrossARebalance(PartitionLog):
    """Its first fetch is answered across a rebalance that gives the partition back to this
    member: with records 7 and 8, which may lie past records given back uncommitted."""

    def __init__(self, committed: Any) -> None:
        super().__init__(records=9, committed=committed)
        self.at = 7
        self.revoking: WorkerRuntime | None = None

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        batch = await super().getmany(timeout_ms, max_records)
        if batch and self.revoking is not None:
            runtime, self.revoking = self.revoking, None
            await _CommitOnRevoke(runtime).on_partitions_revoked([TP])  # and given back
        return batch


def _across_a_rebalance(committed: Any, monkeypatch: pytest.MonkeyPatch, handled: list[int]
                        ) -> tuple[AcrossARebalance, WorkerRuntime]:
    """A runtime over AcrossARebalance, stopping once it handled record 8."""
    consumer = AcrossARebalance(committed)

    async def handler(record: Record, ctx: Context) -> None:
        handled.append(record.offset)
        if record.offset == 8:
            runtime.stop()

    runtime = runtime_over(consumer, monkeypatch, handler)
    consumer.revoking = runtime
    return consumer, runtime


@pytest.mark.parametrize(("committed", "read_from"), [(None, 7), (5, 5)])
async def test_a_fetch_answered_across_a_rebalance_is_read_again_not_skipped(
        committed: int | None, read_from: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # aiokafka's getmany may wait for the new assignment and answer with its records: they
    # must come back, or the next commit would pass over them. From the committed offset:
    # records before these may have been given back uncommitted at the revoke.
    handled: list[int] = []
    consumer, runtime = _across_a_rebalance(committed, monkeypatch, handled)
    await asyncio.wait_for(runtime.run(), 5)
    assert consumer.seeks == [read_from]
    assert handled == list(range(read_from, 9))


async def test_the_committed_offset_to_read_again_from_is_waited_for_as_long_as_kafka_is_away(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # aiokafka asks for a committed offset until a coordinator answers: the loop waited on it
    # for as long as Kafka was away, and a stop meanwhile did not end.
    monkeypatch.setattr(commits_module, "COMMIT_TIMEOUT_S", 0.05)
    handled: list[int] = []
    consumer, runtime = _across_a_rebalance(asyncio.Event(), monkeypatch, handled)  # no answer
    running = asyncio.create_task(runtime.run())
    for _ in range(500):
        if caplog.text.count("getting new partitions ready failed") >= 2:
            break
        await asyncio.sleep(0.01)
    assert handled == []
    consumer.committed_answer = 5  # Kafka is back
    await asyncio.wait_for(running, 5)
    assert handled == [5, 6, 7, 8]


async def test_a_stop_ends_while_the_committed_offset_to_read_again_from_is_unknown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    handled: list[int] = []
    consumer, runtime = _across_a_rebalance(asyncio.Event(), monkeypatch, handled)  # away
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(0.1)
    assert consumer.asked  # waiting for the answer
    runtime.stop()  # SIGTERM
    await asyncio.wait_for(running, 1)
    assert handled == []


@pytest.mark.parametrize("handler_timeout_s", [None, 60.0])
async def test_the_group_waits_for_a_member_finishing_its_work_before_it_rejoins(
        monkeypatch: pytest.MonkeyPatch, handler_timeout_s: float | None) -> None:
    # release() runs before the member rejoins and waits for what started: a provider call
    # (10 s by default), a bot (up to handler_timeout_s). A member that rejoins later than
    # rebalance_timeout_ms (aiokafka: the 10 s session timeout) is dropped and its
    # partitions go on while it still sends: their new owner reports outcome_unknown.
    options = unreachable_consumer(monkeypatch)

    async def handler(record: Record, ctx: Context) -> None:
        return None

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, handler_timeout_s=handler_timeout_s,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    with pytest.raises(KafkaConnectionError):
        await runtime.run()
    waits_ms = options.get("rebalance_timeout_ms", options["session_timeout_ms"])  # aiokafka's
    assert waits_ms >= 1000 * ((handler_timeout_s or 10) + 30)
    # The others' JoinGroup waits that long at the coordinator: aiokafka times it out like any
    # request (40 s unless set) and would drop and re-send it over and over.
    assert options.get("request_timeout_ms", 40_000) > waits_ms


async def test_a_partition_taken_away_while_the_worker_gets_ready_does_not_stop_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # At start the worker asks each assigned partition's position; a rebalance in between (a
    # second worker of the group starting beside it) takes one away, and aiokafka's position()
    # raises IllegalStateError for it. The worker is ready once the new assignment is.
    class Rebalancing(Uncommitted):
        def __init__(self, **given: Any) -> None:
            self.assigned = {TP}
            self.fetches = 0

        def subscribe(self, *args: Any, **kwargs: Any) -> None:
            return None

        async def start(self) -> None:
            return None

        def assignment(self) -> set[TopicPartition]:
            return self.assigned

        async def position(self, tp: TopicPartition) -> int:
            if self.fetches == 0:
                self.assigned = {TopicPartition(TP.topic, 1)}  # TP went to the other worker
                raise IllegalStateError(f"Partition {tp} is not assigned")
            return 0

        async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
            self.fetches += 1
            if runtime.ready.is_set():
                runtime.stop()
            return {}

        async def commit(self, offsets: Any) -> None:
            return None

    async def stop(consumer: Any) -> None:
        return None

    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", Rebalancing)
    monkeypatch.setattr(runtime_module, "stop_consumer", stop)

    async def handler(record: Record, ctx: Context) -> None:
        return None

    runtime = WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, producer=KeepingProducer())  # type: ignore[arg-type]
    await asyncio.wait_for(runtime.run(), 5)
    assert runtime.ready.is_set() and runtime._failure is None


class PositionUnknown(PartitionLog):
    """Kafka away right after the first assignment: aiokafka's position() asks until it
    answers, here until `answered` is set."""

    def __init__(self, records: int) -> None:
        super().__init__(records=records)
        self.answered = asyncio.Event()
        self.asked_position = asyncio.Event()

    async def position(self, tp: TopicPartition) -> int:
        self.asked_position.set()
        await self.answered.wait()
        return self.at


async def test_a_stop_ends_while_kafka_does_not_say_where_new_partitions_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The loop waited on position() for as long as Kafka was away: a SIGTERM then did not
    # end the worker (a process manager's SIGKILL did, in practice).
    async def handler(record: Record, ctx: Context) -> None:
        return None

    consumer = PositionUnknown(records=0)
    runtime = runtime_over(consumer, monkeypatch, handler)
    running = asyncio.create_task(runtime.run())
    await asyncio.wait_for(consumer.asked_position.wait(), 5)
    runtime.stop()  # SIGTERM
    await asyncio.wait_for(running, 1)
    assert not runtime.ready.is_set()


async def test_the_worker_is_ready_once_kafka_says_where_new_partitions_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Meanwhile the loop goes on: it polls (the group keeps its member) and commits.
    monkeypatch.setattr(commits_module, "COMMIT_TIMEOUT_S", 0.05)
    handled: list[int] = []

    async def handler(record: Record, ctx: Context) -> None:
        handled.append(record.offset)

    consumer = PositionUnknown(records=2)
    runtime = runtime_over(consumer, monkeypatch, handler)
    running = asyncio.create_task(runtime.run())
    try:
        for _ in range(500):
            if handled == [0, 1]:
                break
            await asyncio.sleep(0.01)
        assert handled == [0, 1] and not runtime.ready.is_set()
        consumer.answered.set()  # Kafka is back
        await asyncio.wait_for(runtime.ready.wait(), 5)
    finally:
        runtime.stop()
        await asyncio.wait_for(running, 5)
