"""A record in flight when its worker stops or gives its partition away, without a broker:
finished, then committed; with the commit unanswered or refused, left to the next owner, which
handles it again (at-least-once), and switchboard_worker_records_total counts both handlings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from consumers import commits as commits_module
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import TP, FakeConsumer, fetched


class UnansweredCommits(FakeConsumer):
    """Kafka away as the worker stops: its commit is never answered."""

    async def commit(self, offsets: dict[Any, OffsetAndMetadata]) -> None:
        await asyncio.Event().wait()


class RefusedCommits(FakeConsumer):
    """The group moved on (the member was taken for gone): its commit is refused."""

    async def commit(self, offsets: dict[Any, OffsetAndMetadata]) -> None:
        raise CommitFailedError("the group has already rebalanced")


def _ok(worker: str) -> float:
    return REGISTRY.get_sample_value("switchboard_worker_records_total",
                                     {"worker": worker, "outcome": "ok"}) or 0.0


def _runtime(worker: str, handled: list[tuple[str, int]], gate: asyncio.Event,
             member: str) -> WorkerRuntime:
    async def handler(record: Record, ctx: Context) -> None:
        await gate.wait()  # a long provider call, say
        handled.append((member, record.offset))

    return WorkerRuntime(name=worker, kafka="unused:9092", topics=[TP.topic], handler=handler,
                         producer=KeepingProducer())  # type: ignore[arg-type]


async def test_a_stop_finishes_the_handler_in_flight_then_commits_past_it() -> None:
    handled: list[tuple[str, int]] = []
    gate = asyncio.Event()
    runtime = _runtime("stop-in-flight", handled, gate, "a")
    consumer = FakeConsumer({TP})
    await runtime._dispatch(fetched(range(1)))
    await asyncio.sleep(0.01)
    runtime.stop()  # SIGTERM while the call is under way: it is not cut, nor given back
    draining = asyncio.create_task(runtime.drain(consumer))
    await asyncio.sleep(0.05)
    assert not draining.done()  # the stop waits for it
    gate.set()
    await asyncio.wait_for(draining, 5)
    assert handled == [("a", 0)]
    assert consumer.commits == [{TP: 1}]  # not handled again by the next run


async def test_a_stop_whose_commit_kafka_does_not_answer_ends_and_leaves_the_record_uncommitted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commits_module, "COMMIT_TIMEOUT_S", 0.1)
    handled: list[tuple[str, int]] = []
    gate = asyncio.Event()
    gate.set()
    runtime = _runtime("stop-unanswered", handled, gate, "a")
    await runtime._dispatch(fetched(range(1)))
    await asyncio.sleep(0.01)
    runtime.stop()
    await asyncio.wait_for(runtime.drain(UnansweredCommits({TP})), 5)  # the stop still ends
    assert handled == [("a", 0)]
    assert runtime._committed == {}  # so the next run handles it again: not lost


async def test_a_record_whose_commit_was_refused_at_a_handover_is_handled_and_counted_again(
        ) -> None:
    """The metric counts handlings, not distinct records: the second is real work (a bot's
    reply published again, the sender finding the command in its ledger), and only a commit
    that failed on the way out (or a member that crashed) leads to it."""
    worker = "handover"
    before = _ok(worker)
    handled: list[tuple[str, int]] = []
    gate = asyncio.Event()
    gate.set()
    old = _runtime(worker, handled, gate, "old")
    old._consumer = RefusedCommits({TP})
    await old._dispatch(fetched(range(1)))
    await asyncio.wait_for(old.release({TP}), 5)  # the rebalance: finished, commit refused
    new = _runtime(worker, handled, gate, "new")  # starts from the group's commit: none
    await new._dispatch(fetched(range(1)))
    await asyncio.wait_for(new.drain(FakeConsumer({TP})), 5)
    assert handled == [("old", 0), ("new", 0)]
    assert _ok(worker) - before == 2
