"""Omnichat reports are correlated through the results the sender published; a batch's
lookups wait together, not one after another (each miss may wait for the index)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

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
