"""What a running worker's fetches skipped (consumers.skips): aiokafka's fetcher moves a
position Kafka deleted the records at to the first record kept, saying so at INFO only; the
records between were lost unnoticed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from consumers import commits
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from consumers.skips import Skips
from tests.unit.fake_consumers import FakeConsumer, fetched

TP = TopicPartition("t", 0)


def _records(*offsets: int) -> list[Any]:
    return [SimpleNamespace(offset=offset) for offset in offsets]


class GroupCommit:
    """aiokafka's consumer as Skips asks it once a partition is given away: the group's commit
    of TP (`group`, None for none)."""

    group: int | None = None

    @property
    def _coordinator(self) -> SimpleNamespace:
        return SimpleNamespace(fetch_committed_offsets=self._group_commit)

    async def _group_commit(self, partitions: list[TopicPartition]
                            ) -> dict[TopicPartition, OffsetAndMetadata]:
        await asyncio.sleep(0)
        return {} if self.group is None else {TP: OffsetAndMetadata(self.group, "")}


class LogStart(GroupCommit):
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


class Deleting(GroupCommit):
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
    assert _said(caplog, "lost") == []  # said once this member's commit passes them
    skips.committed(TP, 4)
    assert _said(caplog, "lost") == []
    skips.committed(TP, 9)
    assert _said(caplog, "lost") == [("WARNING", {0: "4-7"})]
    assert _lost("skips-deleted") == before + 4
    skips.committed(TP, 10)
    assert _lost("skips-deleted") == before + 4


async def test_a_loss_answered_after_the_commit_past_it_is_said_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    skips, consumer = Skips("skips-committed"), LogStart(8)
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(8, 9))
    skips.committed(TP, 8)  # record 8 in flight: the commit is past the gap
    await skips.settle()
    assert _said(caplog, "lost") == [("WARNING", {0: "2-7"})]


async def test_a_loss_this_member_did_not_commit_past_is_left_to_the_next_owner(
        caplog: pytest.LogCaptureFixture) -> None:
    # The commit on revoke refused (or the worker stopped by a failure): the group's commit
    # stays below the deleted records, and the next owner says them where it resumes
    # (consumers.positions). Said here too, they were counted twice.
    skips, consumer = Skips("skips-given"), LogStart(30)
    before = _lost("skips-given")
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(8, 9))
    await skips.settle()  # answered before the partition is given away
    consumer.group = 2
    await skips.forget(consumer, [TP])
    skips.at(TP, 8)  # given again: the group's commit
    skips.committed(TP, 10)
    consumer.group = 10
    skips.fetched(consumer, TP, _records(30))  # given away again before the answer
    await skips.forget(consumer, [TP])
    await skips.settle()
    assert _said(caplog, "lost") == []
    assert _lost("skips-given") == before


async def test_a_loss_answered_after_the_partition_was_given_away_is_judged_by_its_last_commit(
        caplog: pytest.LogCaptureFixture) -> None:
    # What this member committed past is said by it (the next owner resumes past it); the
    # rest is the next owner's.
    skips, consumer = Skips("skips-gone"), Deleting(8)
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(8, 9))
    await asyncio.sleep(0)  # the question is sent
    consumer.first = 30
    skips.fetched(consumer, TP, _records(20))  # asked about next
    skips.committed(TP, 10)
    consumer.group = 10
    await skips.forget(consumer, [TP])
    consumer.answer.set()
    await skips.settle()
    assert _said(caplog, "lost") == [("WARNING", {0: "2-7"})]


async def test_a_gap_above_the_first_record_kept_is_no_loss(
        caplog: pytest.LogCaptureFixture) -> None:
    # A transaction marker, or records compaction removed: nothing was deleted unhandled.
    skips, consumer = Skips("skips-marker"), LogStart(0)
    before = _lost("skips-marker")
    skips.fetched(consumer, TP, _records(0, 1, 2))
    skips.fetched(consumer, TP, _records(4))
    skips.committed(TP, 5)
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
    await skips.forget(consumer, [TP])  # given away, and given again: from the group's commit
    skips.fetched(consumer, TP, _records(9))
    await skips.settle()
    assert consumer.asked == 0


async def test_gaps_seen_before_the_question_is_sent_are_told_by_it(
        caplog: pytest.LogCaptureFixture) -> None:
    skips, consumer = Skips("skips-twice"), LogStart(20)
    skips.at(TP, 0)
    skips.fetched(consumer, TP, _records(5))
    skips.fetched(consumer, TP, _records(20))
    skips.committed(TP, 21)
    await skips.settle()
    assert consumer.asked == 1
    assert _said(caplog, "lost") == [("WARNING", {0: "0-4,6-19"})]


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
    skips.committed(TP, 21)
    consumer.answer.set()
    await skips.settle()
    assert consumer.asked == [5, 20]
    assert _said(caplog, "lost") == [("WARNING", {0: "0-4"}), ("WARNING", {0: "6-19"})]
    assert _lost("skips-after") == before + 19


async def test_a_gap_seen_once_the_partition_is_given_again_is_asked_about_anew(
        caplog: pytest.LogCaptureFixture) -> None:
    # The question of its last holding is still out: it is judged by that holding's commit,
    # the new gap by this one's.
    skips, consumer = Skips("skips-again"), Deleting(8)
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(8, 9))
    await asyncio.sleep(0)  # the question is sent
    consumer.group = 2  # given away, its commit below the gap: the next owner says 2-7
    await skips.forget(consumer, [TP])
    skips.at(TP, 10)  # given again, where the group's commit put it
    consumer.first = 20
    skips.fetched(consumer, TP, _records(20))
    await asyncio.sleep(0)
    assert consumer.asked == [8, 20]
    skips.committed(TP, 21)
    consumer.answer.set()
    await skips.settle()
    assert _said(caplog, "lost") == [("WARNING", {0: "10-19"})]


def _maybe_lost(worker: str) -> float:
    return REGISTRY.get_sample_value("switchboard_worker_records_maybe_lost_total",
                                     {"worker": worker}) or 0.0


async def test_kafka_not_answering_says_the_records_skipped_may_be_lost(
        caplog: pytest.LogCaptureFixture) -> None:
    # Said and counted (a deployment alerting on the lost records' count saw nothing of
    # them), as lost ones are: once this member's commit passes them.
    skips = Skips("skips-away")
    consumer = LogStart(KafkaConnectionError("broker away"))
    before = _maybe_lost("skips-away")
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(8))
    await skips.settle()
    assert _said(caplog, "skipped") == []
    skips.committed(TP, 9)
    assert _said(caplog, "skipped") == [("WARNING", "2-7")]
    assert _maybe_lost("skips-away") == before + 6
    assert _lost("skips-away") == 0


async def test_records_that_may_be_lost_left_to_the_next_owner_are_not_said_here(
        caplog: pytest.LogCaptureFixture) -> None:
    # The group's commit stays below them: the next owner resumes there, and says what Kafka
    # deleted of them.
    skips = Skips("skips-away-given")
    consumer = LogStart(KafkaConnectionError("broker away"))
    consumer.group = 2
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(8))
    await skips.settle()
    await skips.forget(consumer, [TP])
    assert _said(caplog, "skipped") == []
    assert _maybe_lost("skips-away-given") == 0


class DeletedBelow(GroupCommit, FakeConsumer):
    """aiokafka's consumer over TP, whose records Kafka deleted below `first`: fetches answer
    `batches` in turn, then nothing. The group's commit is its last commit taken."""

    def __init__(self, first: int, *batches: range) -> None:
        super().__init__({TP})
        self.first = first
        self.batches = [fetched(offsets) for offsets in batches]
        self.group = 2  # where the worker resumed

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        await super().commit(offsets)
        self.group = offsets[TP].offset

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


async def _past_the_deleted_records(name: str, consumer: DeletedBelow) -> WorkerRuntime:
    """A worker at offset 2 of TP whose next fetch jumps past the records Kafka deleted, once
    the records past them (8 and 9) have started."""
    async def handler(record: Record, ctx: Context) -> None:
        return None

    runtime = WorkerRuntime(name=name, kafka="unused:9092", topics=[TP.topic],
                            handler=handler)
    runtime._consumer = consumer
    runtime._prepared = {TP}
    runtime._skips.at(TP, 2)
    await runtime._dispatch(await runtime._next_batch(consumer))
    await runtime._dispatch(await runtime._next_batch(consumer))
    return runtime


class RefusingCommits(DeletedBelow):
    """As DeletedBelow, and Kafka refuses its commits (the group began rebalancing)."""

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        raise CommitFailedError("rebalanced")


@pytest.mark.parametrize("how", ["commit refused", "stopped by a failure"])
async def test_records_lost_a_member_did_not_commit_past_are_said_by_the_next_owner_only(
        how: str, caplog: pytest.LogCaptureFixture) -> None:
    # The records past the deleted ones started, and the commit on the way out is refused or
    # never made: the group's commit stays below the deleted records, and whoever resumes
    # there says them lost (consumers.positions). This member said them too: counted twice.
    name = f"skips-uncommitted-{how.split()[0]}"
    consumer = (RefusingCommits if how == "commit refused" else DeletedBelow)(
        8, range(2, 3), range(8, 10))
    before = _lost(name)
    runtime = await _past_the_deleted_records(name, consumer)
    if how == "commit refused":
        await runtime.release({TP})
    else:
        runtime.fail(RuntimeError("a dead letter refused"))
        await runtime.drain(consumer)
    await runtime._skips.settle()
    assert consumer.commits == []
    assert _said(caplog, "lost") == []
    assert _lost(name) == before


class SlowCommits(DeletedBelow):
    """As DeletedBelow, and its commits do not answer in time: Kafka takes them at once
    (`taken`), or never; with `silent`, it does not tell the group's commit either."""

    def __init__(self, first: int, *batches: range, taken: bool, silent: bool = False
                 ) -> None:
        super().__init__(first, *batches)
        self.taken, self.silent = taken, silent

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.taken:
            self.group = offsets[TP].offset
        await asyncio.sleep(1)

    async def _group_commit(self, partitions: list[TopicPartition]
                            ) -> dict[TopicPartition, OffsetAndMetadata]:
        if self.silent:
            await asyncio.sleep(1)
        return await super()._group_commit(partitions)


class TakenThenRefused(DeletedBelow):
    """As DeletedBelow, and a commit Kafka took, whose answer was lost, is retried by aiokafka
    and refused (the group began rebalancing meanwhile)."""

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.group = offsets[TP].offset
        raise CommitFailedError("rebalanced")


@pytest.mark.parametrize("how", ["committed", "commit unanswered, taken",
                                 "commit taken, its retry refused",
                                 "commit unanswered, Kafka silent"])
async def test_records_lost_a_member_committed_past_are_said_by_it(
        how: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    # The group's commit passes them, as Kafka tells it once the partition is given away:
    # the next owner says nothing, so this member says them. A commit that did not answer,
    # when Kafka does not tell either, may have been taken: said too.
    monkeypatch.setattr(commits, "COMMIT_TIMEOUT_S", 0.05)
    name = f"skips-committed-{how.replace(' ', '-').replace(',', '')}"
    offsets = (8, range(2, 3), range(8, 10))
    consumer = (DeletedBelow(*offsets) if how == "committed" else
                TakenThenRefused(*offsets) if how == "commit taken, its retry refused" else
                SlowCommits(*offsets, taken=how.endswith("taken"), silent=how.endswith("silent")))
    before = _lost(name)
    runtime = await _past_the_deleted_records(name, consumer)
    await runtime.release({TP})
    await runtime._skips.settle()
    assert _said(caplog, "lost") == [("WARNING", {0: "3-7"})]
    assert _lost(name) == before + 5


async def test_records_lost_past_a_commit_that_did_not_answer_and_was_not_taken_are_left(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    # Kafka tells the group's commit is still below them: the next owner says them lost where
    # it resumes (consumers.positions). Said here too, they were counted twice.
    monkeypatch.setattr(commits, "COMMIT_TIMEOUT_S", 0.05)
    consumer = SlowCommits(8, range(2, 3), range(8, 10), taken=False)
    before = _lost("skips-untaken")
    runtime = await _past_the_deleted_records("skips-untaken", consumer)
    await runtime.release({TP})
    await runtime._skips.settle()
    assert _said(caplog, "lost") == []
    assert _lost("skips-untaken") == before


async def test_a_commit_that_did_not_answer_is_judged_by_the_next_one_taken(
        caplog: pytest.LogCaptureFixture) -> None:
    skips, consumer = Skips("skips-later"), LogStart(8)
    skips.at(TP, 2)
    skips.fetched(consumer, TP, _records(8, 9))
    await skips.settle()
    skips.unanswered(TP, 10)
    assert _said(caplog, "lost") == []
    skips.committed(TP, 10)
    assert _said(caplog, "lost") == [("WARNING", {0: "2-7"})]
