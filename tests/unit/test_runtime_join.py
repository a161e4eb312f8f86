"""A worker joining its group, without a broker: aiokafka's start waits for the group's first
assignment, for ever while the group's coordinator does not answer. A stop meanwhile ends it,
and a join that takes long is said."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from consumers import assignment
from consumers import runtime as runtime_module
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer

TP = TopicPartition("t", 0)


class Joining:
    """aiokafka's consumer while its group's coordinator does not answer: start() waits for
    an assignment that comes when `joined` is set."""

    def __init__(self) -> None:
        self.joined = asyncio.Event()
        self.stopped = False
        self.start_cancelled = False

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def start(self) -> None:
        try:
            await self.joined.wait()
        except asyncio.CancelledError:
            self.start_cancelled = True
            raise

    async def stop(self) -> None:
        self.stopped = True

    def assignment(self) -> set[TopicPartition]:
        return set()

    def paused(self) -> set[TopicPartition]:
        return set()

    def highwater(self, tp: TopicPartition) -> None:
        return None

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        await asyncio.sleep(timeout_ms / 1000)
        return {}


async def _unused(record: Record, ctx: Context) -> None:
    raise AssertionError("nothing was consumed")


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Joining:
    joining = Joining()
    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: joining)
    return joining


async def test_a_stop_ends_a_worker_whose_group_does_not_answer_its_join(
        consumer: Joining, caplog: pytest.LogCaptureFixture) -> None:
    # SIGTERM went unheard (the runtime waited in aiokafka's start) until a SIGKILL.
    producer = KeepingProducer()
    runtime = WorkerRuntime(name="test-join", kafka="unused:9092", topics=[TP.topic],
                            handler=_unused, producer=producer)  # type: ignore[arg-type]
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(0.1)
    assert not running.done()
    assert runtime.problem() == "starting"  # /readyz: not ready meanwhile
    runtime.stop()
    await asyncio.wait_for(running, 5)  # returns: a clean stop
    assert consumer.start_cancelled and consumer.stopped
    assert not producer.started
    assert "worker stopped before it joined its group" in caplog.text


async def test_a_join_that_takes_long_is_said_once(
        consumer: Joining, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(assignment, "JOIN_SAID_AFTER_S", 0.05)
    runtime = WorkerRuntime(name="test-join-slow", kafka="unused:9092", topics=[TP.topic],
                            handler=_unused,
                            producer=KeepingProducer())  # type: ignore[arg-type]
    running = asyncio.create_task(runtime.run())
    try:
        for _ in range(100):
            if "joining the consumer group is taking long" in caplog.text:
                break
            await asyncio.sleep(0.05)
        consumer.joined.set()  # the coordinator answers at last
        for _ in range(100):
            if runtime._consumer is not None:
                break
            await asyncio.sleep(0.05)
        assert runtime._consumer is consumer  # consuming
        assert caplog.text.count("joining the consumer group is taking long") == 1
        assert "switchboard-test-join-slow" in caplog.text  # the group named
    finally:
        runtime.stop()
        await asyncio.wait_for(running, 5)
