"""Omnichat reports are correlated through the results the sender published; a batch's
lookups wait together, not one after another (each miss may wait for the index)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from ingest import correlation
from ingest.correlation import CorrelationIndex, correlate
from switchboard.events import MessageEvent

BATCH = 5


class BarrierIndex(CorrelationIndex):
    """Answers a lookup only once every lookup of the batch has started: one at a time,
    the first would wait out its deadline alone and miss."""

    def __init__(self) -> None:
        super().__init__("unused:9092", frozenset({"infobip-omnichat"}))
        self.started = 0
        self.all_started = asyncio.Event()

    async def command_for(self, provider: str, account: str, message_id: str) -> str | None:
        self.started += 1
        if self.started == BATCH:
            self.all_started.set()
        try:
            await asyncio.wait_for(self.all_started.wait(), 10)
        except TimeoutError:
            return None
        return f"cmd-for-{message_id}"


def status(message_id: str, **fields: Any) -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.status", "provider": "infobip-omnichat",
        "account": "omni", "channel": "messenger", "direction": "outbound",
        "message_id": message_id, "status": "delivered", "received_at": datetime.now(UTC),
        "raw_id": "r", **fields})


async def test_a_batchs_reports_are_looked_up_together() -> None:
    index = BarrierIndex()
    events = [status(f"m{n}") for n in range(BATCH)]
    events.append(status("m-known", correlation_id="cmd-given"))  # not looked up
    correlated = await correlate(index, events)
    assert [e.correlation_id for e in correlated] == [
        *(f"cmd-for-m{n}" for n in range(BATCH)), "cmd-given"]
    assert index.started == BATCH


async def test_a_results_reader_that_cannot_start_is_closed_before_the_next_try(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The index retries (with backoff) through an outage; each failed start left a client open.
    stopped = asyncio.Event()

    class Unreachable:
        def __init__(self, **options: Any) -> None:
            return None

        async def start(self) -> None:
            raise KafkaConnectionError("no broker in unit tests")

        async def stop(self) -> None:
            stopped.set()

    async def one_partition(kafka: Any, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, 0)]

    monkeypatch.setattr(correlation, "AIOKafkaConsumer", Unreachable)
    monkeypatch.setattr(correlation, "topic_partitions", one_partition)
    index = CorrelationIndex("unused:9092", frozenset({"infobip-omnichat"}))
    index.start()
    try:
        await asyncio.wait_for(stopped.wait(), 5)
    finally:
        await index.stop()
    assert not index.caught_up.is_set()
