"""What a running worker's fetches skipped (consumers.skips): aiokafka's fetcher moves a
position Kafka deleted the records at to the first record kept, saying so at INFO only; the
records between were lost unnoticed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from consumers.skips import Skips
from tests.unit.fake_consumers import FakeConsumer, fetched

TP = TopicPartition("t", 0)


def _records(*offsets: int) -> list[Any]:
    return [SimpleNamespace(offset=offset) for offset in offsets]


class LogStart:
    """aiokafka's consumer as Skips asks it: where the partition's log begins."""

    def __init__(self, first: int | Exception) -> None:
        self.first = first
        self.asked = 0

    async def beginning_offsets(self, partitions: list[TopicPartition]
                                ) -> dict[TopicPartition, int]:
        self.asked += 1
        await asyncio.sleep(0)
        if isinstance(self.first, Exception):
            raise self.first
        return dict.fromkeys(partitions, self.first)


def _lost(worker: str) -> float:
    return REGISTRY.get_sample_value("switchboard_worker_records_lost_total",
                                     {"worker": worker}) or 0.0


def _said(caplog: pytest.LogCaptureFixture, field: str) -> list[tuple[str, Any]]:
    return [(r.levelname, r.msg[field]) for r in caplog.records
            if isinstance(r.msg, dict) and field in r.msg]


async def test_records_deleted_below_the_position_are_said_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    skips, consumer = Skips("skips-deleted"), LogStart(8)
    before = _lost("skips-deleted")
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(2, 3))
    skips.fetched(consumer, TP, _records(8, 9))
    await skips.settle()
    assert _said(caplog, "lost") == [("WARNING", {0: "4-7"})]
    assert _lost("skips-deleted") == before + 4


async def test_a_gap_above_the_first_record_kept_is_no_loss(
        caplog: pytest.LogCaptureFixture) -> None:
    # A transaction marker, or records compaction removed: nothing was deleted unhandled.
    skips, consumer = Skips("skips-marker"), LogStart(0)
    before = _lost("skips-marker")
    skips.fetched(consumer, TP, _records(0, 1, 2))
    skips.fetched(consumer, TP, _records(4))
    await skips.settle()
    assert consumer.asked == 1
    assert _said(caplog, "lost") == []
    assert _lost("skips-marker") == before


async def test_only_a_gap_asks_kafka(caplog: pytest.LogCaptureFixture) -> None:
    # No question per fetch: only where a fetch does not follow on from the last.
    skips, consumer = Skips("skips-none"), LogStart(0)
    skips.fetched(consumer, TP, _records(5, 6))  # nothing known before
    skips.fetched(consumer, TP, _records(7))
    skips.at(TP, 3)  # the runtime sought back
    skips.fetched(consumer, TP, _records(3, 4, 5))
    skips.forget([TP])  # given away, and given again: read from the group's commit
    skips.fetched(consumer, TP, _records(9))
    await skips.settle()
    assert consumer.asked == 0


async def test_gaps_seen_before_the_question_is_sent_are_told_by_it(
        caplog: pytest.LogCaptureFixture) -> None:
    skips, consumer = Skips("skips-twice"), LogStart(20)
    skips.at(TP, 0)
    skips.fetched(consumer, TP, _records(5))
    skips.fetched(consumer, TP, _records(20))
    await skips.settle()
    assert consumer.asked == 1
    assert _said(caplog, "lost") == [("WARNING", {0: "0-4,6-19"})]


class Deleting:
    """aiokafka's consumer as Skips asks it, over a log Kafka deletes the start of meanwhile:
    each answer tells where the log began when the question was sent (`first` then), and
    comes once `answer` is set."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.asked: list[int] = []
        self.answer = asyncio.Event()

    async def beginning_offsets(self, partitions: list[TopicPartition]
                                ) -> dict[TopicPartition, int]:
        self.asked.append(first := self.first)
        await self.answer.wait()
        return dict.fromkeys(partitions, first)


async def test_a_gap_seen_while_a_question_is_out_is_asked_about_again(
        caplog: pytest.LogCaptureFixture) -> None:
    # Kafka deletes records 6-19 after the question about the first gap was sent: its answer
    # (the log began at 5) says nothing of them, and they were taken for a marker's gap.
    skips, consumer = Skips("skips-after"), Deleting(5)
    before = _lost("skips-after")
    skips.at(TP, 0)
    skips.fetched(consumer, TP, _records(5))
    await asyncio.sleep(0)  # the question is sent
    assert consumer.asked == [5]
    consumer.first = 20
    skips.fetched(consumer, TP, _records(20))
    consumer.answer.set()
    await skips.settle()
    assert consumer.asked == [5, 20]
    assert _said(caplog, "lost") == [("WARNING", {0: "0-4"}), ("WARNING", {0: "6-19"})]
    assert _lost("skips-after") == before + 19


async def test_kafka_not_answering_says_the_records_skipped_may_be_lost(
        caplog: pytest.LogCaptureFixture) -> None:
    skips = Skips("skips-away")
    consumer = LogStart(KafkaConnectionError("broker away"))
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(8))
    await skips.settle()
    assert _said(caplog, "skipped") == [("WARNING", "2-7")]


class DeletedBelow(FakeConsumer):
    """aiokafka's consumer over TP, whose records Kafka deleted below `first`: fetches answer
    `batches` in turn, then nothing."""

    def __init__(self, first: int, *batches: range) -> None:
        super().__init__({TP})
        self.first = first
        self.batches = [fetched(offsets) for offsets in batches]

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        await asyncio.sleep(0)
        return self.batches.pop(0) if self.batches else {}

    async def beginning_offsets(self, partitions: list[TopicPartition]
                                ) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, self.first)

    def pause(self, *partitions: TopicPartition) -> None:
        return None

    def resume(self, *partitions: TopicPartition) -> None:
        return None


async def test_records_skipped_by_a_fetch_left_to_the_next_owner_are_said_lost_once(
        caplog: pytest.LogCaptureFixture) -> None:
    # The fetch past the deleted records waits for room (record 2 holds the only slot) and a
    # rebalance takes the partition: none of it starts, the commit stays below the deleted
    # records, and whoever resumes there says them lost (consumers.positions). This member
    # said them too: counted twice.
    gate = asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        await gate.wait()

    runtime = WorkerRuntime(name="skips-left", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, max_in_flight=1)
    consumer = DeletedBelow(8, range(2, 3), range(8, 10))
    runtime._consumer = consumer
    runtime._prepared = {TP}
    runtime._skips.at(TP, 2)  # where the group's commit put it
    before = _lost("skips-left")
    await runtime._dispatch(await runtime._next_batch(consumer))
    dispatching = asyncio.create_task(
        runtime._dispatch(await runtime._next_batch(consumer)))
    await asyncio.sleep(0.01)
    releasing = asyncio.create_task(runtime.release({TP}))  # the rebalance begins
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.wait_for(asyncio.gather(dispatching, releasing), 5)
    await runtime._skips.settle()
    assert consumer.commits == [{TP: 3}]  # the next owner resumes below the deleted records
    assert _said(caplog, "lost") == []
    assert _lost("skips-left") == before
