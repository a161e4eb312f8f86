"""Where a bot's group starts a partition it has no commit for (consumers.positions): at the
first record since the group began, as its commits say, else since the member started."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from consumers.positions import StartPositions, since_of

TOPIC = "inbound"


def _tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


class Partitions:
    """aiokafka's consumer as StartPositions asks it: the group's commits, and per partition
    the offset of its first record at or after a time (None: none), its end, and its first
    record kept (0 unless `firsts` says: none deleted)."""

    def __init__(self, committed: dict[int, OffsetAndMetadata], assigned: set[int],
                 first_at: dict[int, dict[int, int]], ends: dict[int, int],
                 firsts: dict[int, int] | None = None) -> None:
        self.committed = {_tp(p): offset for p, offset in committed.items()}
        self.assigned = {_tp(p) for p in assigned}
        self.first_at, self.ends, self.firsts = first_at, ends, firsts or {}
        self.seeks: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, OffsetAndMetadata]] = []
        self._coordinator = SimpleNamespace(fetch_committed_offsets=self._fetch)

    async def _fetch(self, partitions: list[TopicPartition]
                     ) -> dict[TopicPartition, OffsetAndMetadata]:
        return {tp: self.committed[tp] for tp in partitions if tp in self.committed}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.ends)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[Any, Any]:
        return {tp: (SimpleNamespace(offset=self.first_at[tp.partition][at])
                     if at in self.first_at.get(tp.partition, {}) else None)
                for tp, at in times.items()}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp.partition] for tp in partitions}

    async def beginning_offsets(self, partitions: list[TopicPartition]
                                ) -> dict[TopicPartition, int]:
        return {tp: self.firsts.get(tp.partition, 0) for tp in partitions}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        assert set(offsets) <= self.assigned, "aiokafka refuses unassigned partitions"
        self.commits.append(offsets)
        self.committed |= offsets


async def test_a_brand_new_group_starts_at_what_was_written_since_its_member_started() -> None:
    consumer = Partitions({}, {0, 1}, first_at={1: {5000: 7}}, ends={0: 3, 1: 9})
    starts = StartPositions("bot", started_ms=5000)
    placed = await starts.place(consumer, {_tp(0), _tp(1)}, timeout_s=1)
    assert placed == consumer.seeks == {_tp(0): 3, _tp(1): 7}
    # Committed at once, with the time its next owners start such partitions from.
    assert consumer.commits == [{_tp(0): OffsetAndMetadata(3, "since=5000"),
                                 _tp(1): OffsetAndMetadata(7, "since=5000")}]


async def test_an_added_partition_starts_at_the_first_record_since_the_group_began() -> None:
    # The group began at 1000 (partition 0's commit says); this member started later.
    consumer = Partitions({0: OffsetAndMetadata(40, "since=1000")}, {0, 2},
                          first_at={2: {1000: 0}}, ends={0: 40, 1: 5, 2: 4})
    starts = StartPositions("bot", started_ms=9000)
    placed = await starts.place(consumer, {_tp(0), _tp(2)}, timeout_s=1)
    # All four records written to it; partition 0 resumes at its commit, 40.
    assert placed == {_tp(0): 40, _tp(2): 0}
    assert consumer.seeks == {_tp(2): 0}
    assert consumer.commits == [{_tp(2): OffsetAndMetadata(0, "since=1000")}]
    assert starts.metadata(TOPIC) == "since=1000"  # what its later commits carry


async def test_a_group_committed_by_an_earlier_version_replays_nothing() -> None:
    # Commits without a start (an earlier version's): a partition it never committed holds
    # records from before (the history a new bot does not answer): started where this
    # member started, as before, not at its beginning.
    consumer = Partitions({0: OffsetAndMetadata(40, "")}, {1},
                          first_at={1: {9000: 12}}, ends={0: 40, 1: 12})
    starts = StartPositions("bot", started_ms=9000)
    assert await starts.place(consumer, {_tp(1)}, timeout_s=1) == {_tp(1): 12}
    assert consumer.commits == [{_tp(1): OffsetAndMetadata(12, "since=9000")}]


async def test_a_commit_kafka_deleted_the_records_of_resumes_at_the_first_kept(
        caplog: pytest.LogCaptureFixture) -> None:
    # The group committed 2 and 7; retention then deleted partition 0 below 5: what it kept
    # is handled (STOPs among it), not skipped to its end (aiokafka's "latest" reset).
    consumer = Partitions({0: OffsetAndMetadata(2, "since=1000"),
                           1: OffsetAndMetadata(7, "since=1000")}, {0, 1},
                          first_at={}, ends={0: 9, 1: 9}, firsts={0: 5, 1: 3})
    lost = REGISTRY.get_sample_value("switchboard_worker_records_lost_total",
                                     {"worker": "bot-lost"}) or 0.0
    starts = StartPositions("bot-lost", started_ms=9000)
    placed = await starts.place(consumer, {_tp(0), _tp(1)}, timeout_s=1)
    assert placed == {_tp(0): 5, _tp(1): 7}  # partition 1 resumes at its commit
    assert consumer.seeks == {_tp(0): 5}
    # Committed at once: the next start does not count the same loss again.
    assert consumer.commits == [{_tp(0): OffsetAndMetadata(5, "since=1000")}]
    assert [(r.levelname, r.msg["lost"], r.msg["records"]) for r in caplog.records
            if isinstance(r.msg, dict) and "lost" in r.msg] == [("WARNING", {0: "2-4"}, 3)]
    assert REGISTRY.get_sample_value("switchboard_worker_records_lost_total",
                                     {"worker": "bot-lost"}) == lost + 3


async def test_a_worker_reading_everything_says_what_kafka_deleted_below_its_commit(
        caplog: pytest.LogCaptureFixture) -> None:
    # The sender (start_from="earliest"): aiokafka resumed at the first record kept, saying
    # so at INFO only; the commands deleted were never sent, and nobody was told. A
    # partition without a commit is left to aiokafka's reset (its first record): all wanted.
    consumer = Partitions({0: OffsetAndMetadata(2, "")}, {0, 1}, first_at={},
                          ends={0: 9, 1: 9}, firsts={0: 5, 1: 3})
    lost = REGISTRY.get_sample_value("switchboard_worker_records_lost_total",
                                     {"worker": "sender-lost"}) or 0.0
    starts = StartPositions("sender-lost", started_ms=9000, latest=False)
    assert await starts.place(consumer, {_tp(0), _tp(1)}, timeout_s=1) == {_tp(0): 5}
    assert consumer.seeks == {_tp(0): 5}
    assert consumer.commits == [{_tp(0): OffsetAndMetadata(5, "")}]  # no start of its own
    assert starts.metadata(TOPIC) == ""
    assert [(r.levelname, r.msg["lost"], r.msg["records"]) for r in caplog.records
            if isinstance(r.msg, dict) and "lost" in r.msg] == [("WARNING", {0: "2-4"}, 3)]
    assert REGISTRY.get_sample_value("switchboard_worker_records_lost_total",
                                     {"worker": "sender-lost"}) == lost + 3


def test_since_is_read_from_what_the_group_wrote_only() -> None:
    assert since_of("since=1700000000000") == 1700000000000
    assert since_of("") is None
    assert since_of("since=soon") is None
    assert since_of("something else") is None


class Silent(Partitions):
    """Kafka that never answers one question: aiokafka would wait its request timeout."""

    def __init__(self, silent: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.silent = silent

    async def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[Any, Any]:
        if self.silent == "offsets_for_times":
            await asyncio.Event().wait()
        return await super().offsets_for_times(times)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.silent == "end_offsets":
            await asyncio.Event().wait()
        return await super().end_offsets(partitions)


@pytest.mark.parametrize("silent", ["offsets_for_times", "end_offsets"])
async def test_every_question_has_the_time_limit_given(silent: str) -> None:
    # Each of place()'s questions gives up within timeout_s, so the caller tries again.
    consumer = Silent(silent, committed={}, assigned={0}, first_at={}, ends={0: 3})
    with pytest.raises(TimeoutError):
        await StartPositions("bot", started_ms=5000).place(consumer, {_tp(0)}, timeout_s=0.05)
    assert consumer.seeks == {}
