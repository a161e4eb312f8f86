"""A `pending` mark whose store timed out (PublishError: Kafka paused, slow) and that Kafka stored
all the same once it answered: no provider call followed it, so the command, back (the
handler's retry, a rebalance's redelivery), is sent, once, not reported outcome_unknown. A
`pending` that a call followed, or another sender's, still reads as outcome_unknown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from consumers.handling import Record
from consumers.ledger import LedgerEntry, decode_ledger
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.producer import PublishError
from switchboard.records import OutRecord
from switchboard.topics import OUTBOUND_SENT
from tests.unit.fakes import FakeContext
from tests.unit.senders import ACCOUNTS, command, consumed, results


@dataclass
class _Read:
    """A ledger record as the table's follower reads it."""

    key: bytes
    value: bytes
    offset: int = 0
    timestamp: int = 0
    partition: int = 0


class _KafkaPaused(FakeContext):
    """Kafka that stores a `pending` mark but answers too late (PublishError) while `paused`,
    and refuses at once, storing nothing, the marks of an id it is still holding one of
    (the producer's 'behind a batch Kafka has not answered')."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = True
        self.stored_late: list[OutRecord] = []

    async def publish(self, records: Any) -> None:
        marks = [r for r in records if r.topic == OUTBOUND_SENT.name]
        if self.paused and marks:
            if any(r.key == late.key for r in marks for late in self.stored_late):
                raise PublishError("behind a batch Kafka has not answered")
            self.stored_late.extend(marks)
            raise PublishError("Kafka did not acknowledge within 5.0s")
        await super().publish(records)

    def resume(self, ledger: CompactedTable[LedgerEntry]) -> None:
        """Kafka answers again: what it held is stored, and the follower reads it."""
        self.paused = False
        self.published.extend(self.stored_late)
        for record in self.stored_late:
            assert record.key is not None
            ledger._apply(_Read(record.key, record.value))
        self.stored_late.clear()


def _ledger() -> CompactedTable[LedgerEntry]:
    return CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger)


@pytest.fixture
async def provider_calls() -> AsyncIterator[list[httpx.Request]]:
    yield []


@pytest.fixture
async def new_sender(provider_calls: list[httpx.Request]
                     ) -> AsyncIterator[Callable[[CompactedTable[LedgerEntry]], Sender]]:
    """Senders (processes) sharing one provider, which accepts every send."""
    def provider(request: httpx.Request) -> httpx.Response:
        provider_calls.append(request)
        return httpx.Response(200, json={"messages": [{"messageId": "ib-1"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        yield lambda ledger: Sender(ACCOUNTS, ledger, http, public_url=None)


def _marks(ctx: FakeContext, record: Record) -> list[str]:
    key = orjson.loads(record.value)["id"].encode()
    return [decode_ledger(r.value).state for r in ctx.published
            if r.topic == OUTBOUND_SENT.name and r.key == key]


async def test_a_pending_mark_stored_late_is_released_and_the_command_sent_once(
        new_sender: Callable[[CompactedTable[LedgerEntry]], Sender],
        provider_calls: list[httpx.Request]) -> None:
    ledger, ctx, sent = _ledger(), _KafkaPaused(), consumed(command())
    sender = new_sender(ledger)
    with pytest.raises(PublishError):
        await sender.handle(sent, ctx)
    with pytest.raises(PublishError):  # the handler's retry, Kafka still paused
        await sender.handle(sent, ctx)
    assert provider_calls == []
    ctx.resume(ledger)  # the first mark stored after all, and read back
    assert (entry := ledger.get(orjson.loads(sent.value)["id"].encode())) is not None
    assert entry.state == "pending"
    await sender.handle(sent, ctx)  # the retry, or the rebalance's redelivery
    # Released before it is sent: a sender killed while it waits for the rate limit leaves it
    # to the next one, unsent, not pending.
    assert _marks(ctx, sent) == ["pending", "released", "pending", "sent"]
    [result] = results(ctx)
    assert result["status"] == "accepted", result
    assert len(provider_calls) == 1


async def test_a_pending_mark_a_provider_call_followed_stays_outcome_unknown(
        provider_calls: list[httpx.Request]) -> None:
    # The handler cancelled mid-call (its timeout): the call may have reached the provider.
    async def hangs(request: httpx.Request) -> httpx.Response:
        provider_calls.append(request)
        await asyncio.sleep(60)
        raise AssertionError("cancelled before")

    ledger, ctx, sent = _ledger(), FakeContext(), consumed(command())
    async with httpx.AsyncClient(transport=httpx.MockTransport(hangs)) as http:
        sender = Sender(ACCOUNTS, ledger, http, public_url=None)
        handling = asyncio.create_task(sender.handle(sent, ctx))
        for _ in range(100):  # bounded: 10 s
            if provider_calls:
                break
            await asyncio.sleep(0.1)
        handling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handling
        await sender.handle(sent, ctx)  # the retry
    [result] = results(ctx)
    assert (result["status"], result["error"]["code"]) == ("failed", "outcome_unknown")
    assert len(provider_calls) == 1


async def test_a_pending_mark_of_another_sender_stays_outcome_unknown(
        new_sender: Callable[[CompactedTable[LedgerEntry]], Sender],
        provider_calls: list[httpx.Request]) -> None:
    # This sender's mark timed out; the partition went to another sender, which sent the
    # command (its own mark stored) and lost the partition before storing the outcome. Back
    # here, the pending found is that sender's: the provider may have it.
    ledger, ctx, sent = _ledger(), _KafkaPaused(), consumed(command())
    sender = new_sender(ledger)
    with pytest.raises(PublishError):
        await sender.handle(sent, ctx)
    ctx.resume(ledger)
    other_ledger, other_ctx = _ledger(), FakeContext()

    class _CutOff(Exception):
        pass

    class _StoresNoOutcome(FakeContext):
        async def publish(self, records: Any) -> None:
            if any(decode_ledger(r.value).state == "sent" for r in records
                   if r.topic == OUTBOUND_SENT.name):
                raise _CutOff
            await other_ctx.publish(records)

    with pytest.raises(_CutOff):
        await new_sender(other_ledger).handle(sent, _StoresNoOutcome())
    assert len(provider_calls) == 1
    [its_pending] = [r for r in other_ctx.published if r.topic == OUTBOUND_SENT.name]
    assert its_pending.key is not None
    ledger._apply(_Read(its_pending.key, its_pending.value))
    await sender.handle(sent, ctx)
    [result] = results(ctx)
    assert (result["status"], result["error"]["code"]) == ("failed", "outcome_unknown")
    assert len(provider_calls) == 1


async def test_another_sender_finding_the_late_pending_mark_reports_outcome_unknown(
        new_sender: Callable[[CompactedTable[LedgerEntry]], Sender],
        provider_calls: list[httpx.Request]) -> None:
    # The safe default: it cannot tell that mark from one a killed sender's call followed.
    ledger, ctx, sent = _ledger(), _KafkaPaused(), consumed(command())
    with pytest.raises(PublishError):
        await new_sender(ledger).handle(sent, ctx)
    ctx.resume(ledger)
    other_ledger = _ledger()
    for record in ctx.published:
        assert record.key is not None
        other_ledger._apply(_Read(record.key, record.value))
    await new_sender(other_ledger).handle(sent, ctx)
    [result] = results(ctx)
    assert (result["status"], result["error"]["code"]) == ("failed", "outcome_unknown")
    assert provider_calls == []
