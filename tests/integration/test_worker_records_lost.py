"""Records Kafka deleted (retention, kafka-delete-records) before a worker handled them, against
the real broker: said (a warning naming the offsets) and counted
(switchboard_worker_records_lost_total). aiokafka resumes such a partition at its first record
kept and says so at INFO only: the sender (start_from="earliest") lost commands to retention
unnoticed, at a start and while running, and so did a running bot."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from tests.integration.runtimes import run_until
from tests.kafka_helpers import (
    committed_offset,
    delete_records_below,
    new_topic,
    produce_to_partition,
)


def _lost(worker: str) -> float:
    return REGISTRY.get_sample_value("switchboard_worker_records_lost_total",
                                     {"worker": worker}) or 0.0


def _said_lost(caplog: pytest.LogCaptureFixture) -> list[tuple[str, Any, Any]]:
    return [(r.levelname, r.msg["lost"], r.msg["records"]) for r in caplog.records
            if isinstance(r.msg, dict) and "lost" in r.msg]


class _Handled:
    """A worker's handler: the offsets it handled, and an event set once `last` is."""

    def __init__(self, last: int) -> None:
        self.offsets: list[int] = []
        self.last = last
        self.done = asyncio.Event()

    async def handle(self, record: Record, ctx: Context) -> None:
        self.offsets.append(record.offset)
        if record.offset == self.last:
            self.done.set()


async def test_a_sender_whose_commit_kafka_deleted_the_records_of_says_what_it_lost(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    topic = await new_topic(kafka_bootstrap, "records-lost", 1)
    tp = TopicPartition(topic, 0)
    name = f"lost-start-{uuid.uuid4().hex[:8]}"
    await produce_to_partition(kafka_bootstrap, topic, 0, (b"a", b"0"), (b"b", b"1"))
    first = _Handled(last=1)
    runtime = WorkerRuntime(name=name, kafka=kafka_bootstrap, topics=[topic],
                            handler=first.handle, start_from="earliest")
    await run_until(runtime, first.done, timeout_s=40)
    assert await committed_offset(kafka_bootstrap, runtime.group_id, tp) == 2
    # While the sender is down: eight more, and Kafka deletes those below 5 (its commit, 2,
    # is below the first record kept).
    await produce_to_partition(kafka_bootstrap, topic, 0,
                               *((b"k", str(offset).encode()) for offset in range(2, 10)))
    await delete_records_below(kafka_bootstrap, tp, 5)
    before = _lost(name)
    again = _Handled(last=9)
    await run_until(WorkerRuntime(name=name, kafka=kafka_bootstrap, topics=[topic],
                                  handler=again.handle, start_from="earliest"),
                    again.done, timeout_s=40)
    assert again.offsets == list(range(5, 10))
    assert _said_lost(caplog) == [("WARNING", {0: "2-4"}, 3)]
    assert _lost(name) == before + 3


async def test_a_running_worker_whose_position_kafka_deleted_says_what_it_lost(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    # The worker is behind: record 1 holds its key (every record has the same one), record
    # 2 waits behind it, and the next one fetched waits for room (max_in_flight=2), so
    # fetching pauses. aiokafka then drops what it had fetched past the records it returned
    # (they are fetched again from its position once resumed): Kafka deleting records below
    # 8 meanwhile puts that position below the first record kept, and aiokafka moves it
    # there. The records it had returned before the deletion are handled all the same (they
    # are the worker's, in memory); those between them and 8 are lost.
    topic = await new_topic(kafka_bootstrap, "records-lost", 1)
    tp = TopicPartition(topic, 0)
    name = f"lost-running-{uuid.uuid4().hex[:8]}"
    release = asyncio.Event()
    holding = asyncio.Event()
    handled = _Handled(last=9)

    async def held(record: Record, ctx: Context) -> None:
        if record.offset == 1:
            holding.set()
            await release.wait()
        await handled.handle(record, ctx)

    runtime = WorkerRuntime(name=name, kafka=kafka_bootstrap, topics=[topic], handler=held,
                            start_from="earliest", max_batch=1, max_in_flight=2)
    before = _lost(name)

    async def deleted_while_held() -> None:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        await produce_to_partition(kafka_bootstrap, topic, 0,
                                   *((b"k", str(offset).encode()) for offset in range(10)))
        await asyncio.wait_for(holding.wait(), 30)
        for _ in range(600):
            if runtime._consumer is not None and runtime._consumer.paused():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the worker never paused fetching")
        await delete_records_below(kafka_bootstrap, tp, 8)
        release.set()

    deleting = asyncio.create_task(deleted_while_held())
    try:
        await run_until(runtime, handled.done, timeout_s=60)
    finally:
        await deleting
    # Those returned before the deletion (0 to 2 or 3: the one waiting for room), then 8, 9.
    returned = len(handled.offsets) - 2
    assert returned in (3, 4)
    assert handled.offsets == [*range(returned), 8, 9]
    assert _said_lost(caplog) == [("WARNING", {0: f"{returned}-7"}, 8 - returned)]
    assert _lost(name) == before + 8 - returned


def _past_the_end(caplog: pytest.LogCaptureFixture) -> list[tuple[str, Any, Any]]:
    return [(r.levelname, r.msg["position"], r.msg["resumed_at"]) for r in caplog.records
            if isinstance(r.msg, dict) and "resumed_at" in r.msg]


async def test_a_worker_whose_position_is_past_the_partitions_end_says_it_reads_it_again(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    # The group's commit above the partition's end: Kafka lost records the group had handled
    # (an unclean leader election), or the cluster was restored from before them. aiokafka
    # reads the partition again from its first record (auto_offset_reset) and says so at INFO
    # only: the records there, handled already, were handled again unexplained.
    topic = await new_topic(kafka_bootstrap, "records-lost", 1)
    tp = TopicPartition(topic, 0)
    name = f"past-end-{uuid.uuid4().hex[:8]}"
    await produce_to_partition(kafka_bootstrap, topic, 0,
                               *((b"k", str(offset).encode()) for offset in range(3)))
    group = WorkerRuntime(name=name, kafka=kafka_bootstrap, topics=[topic],
                          handler=_Handled(last=-1).handle).group_id
    committing = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group,
                                  enable_auto_commit=False)
    await committing.start()
    try:
        committing.assign([tp])
        await committing.commit({tp: 100})
    finally:
        await committing.stop()
    handled = _Handled(last=2)
    await run_until(WorkerRuntime(name=name, kafka=kafka_bootstrap, topics=[topic],
                                  handler=handled.handle, start_from="earliest"),
                    handled.done, timeout_s=40)
    assert handled.offsets == [0, 1, 2]
    assert _past_the_end(caplog) == [("WARNING", 100, 0)]
