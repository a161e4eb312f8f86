"""A commit the runtime gave up on (no answer within COMMIT_TIMEOUT_S: a broker paused) leaves
its request out; when Kafka answers, with the member gone from the group meanwhile, the commit
fails. That failure is retrieved and said as a commit failure, not left to asyncio's 'Task
exception was never retrieved' (ERROR, a traceback); and no second commit starts while the
request is out. Over aiokafka's own GroupCoordinator.commit_offsets, its request to the
coordinator answered by the test; and over one whose request coroutine is named otherwise, as
an aiokafka upgrade may name it: the runtime relies on no name of aiokafka's."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaConnectionError, UnknownMemberIdError
from aiokafka.structs import OffsetAndMetadata

from consumers import commits as commits_module
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import TP, FakeConsumer, fetched


class _RenamedCoordinator(GroupCoordinator):  # type: ignore[misc]  # aiokafka: untyped
    """aiokafka's coordinator, its shielded commit request a coroutine of another name."""

    async def _do_commit_offsets(self, assignment: Any, offsets: Any) -> None:
        await GroupCoordinator._do_commit_offsets(self, assignment, offsets)


class _SilentCoordinator(FakeConsumer):
    """A consumer whose commits go through aiokafka's coordinator, to a broker that answers
    each request only once `answer` is set, and then that the member is unknown; once
    `closed` (the consumer's stop closed its connections), every request fails at once."""

    def __init__(self, coordinator_class: type[GroupCoordinator]) -> None:
        super().__init__({TP})
        self.answer = asyncio.Event()
        self.closed = False
        self.requests = 0
        coordinator: Any = object.__new__(coordinator_class)  # its state as commit needs it
        coordinator.coordinator_id, coordinator.group_id = 1, "g"
        coordinator.generation, coordinator.member_id = 1, "m"
        coordinator._commit_lock, coordinator._retry_backoff_ms = asyncio.Lock(), 100
        coordinator._send_req = self._send_req
        self._coordinator = coordinator

    async def _send_req(self, request: Any) -> Any:
        self.requests += 1
        if self.closed:
            raise KafkaConnectionError("connection closed")  # retried by aiokafka
        await self.answer.wait()
        if self.closed:
            raise KafkaConnectionError("connection closed")
        raise UnknownMemberIdError("the group rebalanced while the broker was paused")

    async def commit(self, offsets: dict[Any, OffsetAndMetadata]) -> None:
        await self._coordinator.commit_offsets(self.assigned, offsets)


def _runtime() -> WorkerRuntime:
    async def handler(record: Record, ctx: Context) -> None:
        return None

    return WorkerRuntime(name="commit-requests", kafka="unused:9092", topics=[TP.topic],
                         handler=handler, commit_interval_s=0.05,
                         producer=KeepingProducer())  # type: ignore[arg-type]


async def _given_up(runtime: WorkerRuntime, consumer: _SilentCoordinator) -> None:
    """Records done, committed in the background while the broker is paused: given up on."""
    await runtime._dispatch(fetched(range(3)))
    for _ in range(30):  # bounded: 3 s; the broker paused, commits given up on after 0.2 s
        runtime._maybe_commit(consumer)
        await asyncio.sleep(0.1)
    assert runtime._committing is not None
    await asyncio.wait_for(runtime._committing, 5)


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[str, Any]]:
    gc.collect()  # asyncio says an exception never retrieved as its task is collected
    return [(r.name, r.msg.get("event") if isinstance(r.msg, dict) else r.getMessage())
            for r in caplog.records
            if r.levelno >= logging.INFO and (r.name == "asyncio" or isinstance(r.msg, dict))]


@pytest.mark.parametrize("coordinator_class", [GroupCoordinator, _RenamedCoordinator])
async def test_a_commit_given_up_on_fails_quietly_once_answered_and_is_not_doubled(
        coordinator_class: type[GroupCoordinator], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(commits_module, "COMMIT_TIMEOUT_S", 0.2)
    caplog.set_level(logging.INFO)
    runtime, consumer = _runtime(), _SilentCoordinator(coordinator_class)
    await _given_up(runtime, consumer)
    assert consumer.requests == 1  # not one more per interval, each waiting for the broker
    consumer.answer.set()  # the broker resumes: the member is unknown by now
    for _ in range(50):  # bounded: 5 s
        if runtime._commit_request is not None and runtime._commit_request.done():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0)
    events = _said(caplog)
    assert not [e for e in events if e[0] == "asyncio"], events
    said = [event for _, event in events]
    assert said.count("commit failed") == 1, said  # no answer within the time limit
    assert said.count("commit failed once kafka answered") == 1, said
    assert consumer.requests == 1  # aiokafka does not retry a commit the group refused
    runtime._maybe_commit(consumer)
    assert runtime._committing is not None
    await asyncio.wait_for(runtime._committing, 5)
    assert consumer.requests == 2  # committed again once the one out has ended


async def test_a_stop_waits_for_no_commit_out_and_ends_it_once_the_consumer_stopped(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The stop's own commit waits for the one out, within the same time limit, and is not
    # sent beside it (aiokafka would retry the older after the newer was taken). The consumer's
    # stop fails the request out (its connections closed), which aiokafka retries for ever
    # (no coordinator any more): ended once the consumer has stopped, and nothing said of it.
    monkeypatch.setattr(commits_module, "COMMIT_TIMEOUT_S", 0.2)
    caplog.set_level(logging.INFO)
    runtime, consumer = _runtime(), _SilentCoordinator(_RenamedCoordinator)
    await _given_up(runtime, consumer)
    await runtime._dispatch(fetched(range(3, 5)))  # done since: the stop commits them
    await asyncio.sleep(0.1)
    await asyncio.wait_for(runtime.drain(consumer), 5)  # the stop: bounded by the time limit
    assert consumer.requests == 1
    consumer.closed = True  # the consumer's stop closes its connections
    consumer.answer.set()
    await asyncio.sleep(0.3)  # aiokafka retries at 0.1 s
    assert consumer.requests > 2
    out = runtime._commit_request
    assert out is not None and not out.done()
    runtime._end_commits()
    await asyncio.wait({out}, timeout=5)
    assert out.done()
    requests = consumer.requests
    await asyncio.sleep(0.3)
    assert consumer.requests == requests  # no more retries
    assert runtime._committed == {}  # the next owner handles them again: not lost
    runtime._outage_log.flush()  # as the stop does
    events = _said(caplog)
    assert not [e for e in events if e[0] == "asyncio"], events
    said = [event for _, event in events]
    # The one given up on, then the stop's (throttled: counted).
    assert said == ["commit failed", "commit failed: 1 more in the last 60 s"], said
