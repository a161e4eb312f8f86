"""A commit the runtime gave up on (no answer within COMMIT_TIMEOUT_S: a broker paused) leaves
aiokafka's request out; when Kafka answers, with the member gone from the group meanwhile, the
request fails. That failure is retrieved and said as a commit failure, not left to asyncio's
'Task exception was never retrieved' (ERROR, a traceback); and no second commit starts while
the request is out. Over aiokafka's own GroupCoordinator.commit_offsets, its request to the
coordinator answered by the test."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from typing import Any

import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import UnknownMemberIdError
from aiokafka.structs import OffsetAndMetadata

from consumers import commits as commits_module
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import TP, FakeConsumer, fetched


class _SilentCoordinator(FakeConsumer):
    """A consumer whose commits go through aiokafka's coordinator, to a broker that answers
    each request only once `answer` is set, and then that the member is unknown."""

    def __init__(self) -> None:
        super().__init__({TP})
        self.answer = asyncio.Event()
        self.requests = 0
        coordinator: Any = object.__new__(GroupCoordinator)  # its state as commit needs it
        coordinator.coordinator_id, coordinator.group_id = 1, "g"
        coordinator.generation, coordinator.member_id = 1, "m"
        coordinator._commit_lock, coordinator._retry_backoff_ms = asyncio.Lock(), 100
        coordinator._send_req = self._send_req
        self._coordinator = coordinator

    async def _send_req(self, request: Any) -> Any:
        self.requests += 1
        await self.answer.wait()
        raise UnknownMemberIdError("the group rebalanced while the broker was paused")

    async def commit(self, offsets: dict[Any, OffsetAndMetadata]) -> None:
        await self._coordinator.commit_offsets(self.assigned, offsets)


def test_aiokafka_commits_as_the_runtime_follows_them() -> None:
    # What consumers.commits looks for: an aiokafka upgrade that renames it fails here.
    source = inspect.getsource(GroupCoordinator.commit_offsets)
    assert "asyncio.shield(self._do_commit_offsets(" in source
    assert GroupCoordinator._do_commit_offsets.__qualname__ == commits_module._COMMIT_REQUEST


async def test_a_commit_given_up_on_fails_quietly_once_answered_and_is_not_doubled(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(commits_module, "COMMIT_TIMEOUT_S", 0.2)
    caplog.set_level(logging.INFO)

    async def handler(record: Record, ctx: Context) -> None:
        return None

    runtime = WorkerRuntime(name="commit-requests", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, commit_interval_s=0.05,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    consumer = _SilentCoordinator()
    await runtime._dispatch(fetched(range(3)))
    for _ in range(30):  # bounded: 3 s; the broker paused, commits given up on after 0.2 s
        runtime._maybe_commit(consumer)
        await asyncio.sleep(0.1)
    assert runtime._committing is not None
    await asyncio.wait_for(runtime._committing, 5)
    assert consumer.requests == 1  # not one more per interval, each waiting for the broker
    consumer.answer.set()  # the broker resumes: the member is unknown by now
    for _ in range(50):  # bounded: 5 s
        if consumer.requests == 1 and runtime._commit_request is not None \
                and runtime._commit_request.done():
            break
        await asyncio.sleep(0.1)
    gc.collect()  # asyncio says an exception never retrieved as its task is collected
    await asyncio.sleep(0)
    events = [(r.name, r.msg.get("event") if isinstance(r.msg, dict) else r.getMessage())
              for r in caplog.records
              if r.levelno >= logging.INFO and (r.name == "asyncio" or isinstance(r.msg, dict))]
    assert not [e for e in events if e[0] == "asyncio"], events
    said = [event for _, event in events]
    assert said.count("commit failed once kafka answered") == 1, said
    runtime._maybe_commit(consumer)
    assert runtime._committing is not None
    await asyncio.wait_for(runtime._committing, 5)
    assert consumer.requests == 2  # committed again once the one out has ended
