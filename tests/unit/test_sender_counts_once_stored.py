"""A command the sender fails without a provider call (unknown account, opted out, held, found
pending) is counted in switchboard_sender_sends_total once Kafka has stored its result. Counted
before publishing, a Kafka outage and a stop meanwhile had it counted twice: by the sender whose
result Kafka never stored, then by the next one the command was redelivered to (or the same one
restarted), which failed it again and stored that."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from consumers.bots.optouts import opt_out_records
from consumers.ledger import LedgerEntry, decode_ledger
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.commands import OutboundCommand
from switchboard.producer import PublishError
from switchboard.records import OutRecord, command_record
from switchboard.topics import OUTBOUND_SENT
from tests.unit.fakes import FakeContext
from tests.unit.senders import (
    ACCOUNTS,
    CONTACT,
    accepting_sender,
    command,
    consumed,
    results,
    sends_counted,
)


class _KafkaAway(FakeContext):
    """Kafka that stores nothing: every publish times out."""

    async def publish(self, records: Any) -> None:
        raise PublishError("Kafka did not acknowledge within 5.0s")


def _throttling(request: httpx.Request) -> httpx.Response:
    """Infobip refusing every send: come back in an hour (longer than a command is kept)."""
    return httpx.Response(429, json={"errorCode": "E429", "description": "Too many requests."},
                          headers={"Retry-After": "3600"})


# A sender process, as it is when `record` comes to it: each outcome's own.
NewSender = Callable[[AsyncExitStack, OutRecord], Awaitable[Sender]]


async def _accepting(stack: AsyncExitStack, record: OutRecord) -> Sender:
    return await stack.enter_async_context(accepting_sender(ACCOUNTS, []))


async def _contact_opted_out(stack: AsyncExitStack, record: OutRecord) -> Sender:
    sender = await _accepting(stack, record)
    _, stop = opt_out_records("infobip", "acme", CONTACT, True, "keyword:STOP")
    await sender.handle(consumed(stop), FakeContext())  # met on the outbound topic first
    return sender


async def _found_pending(stack: AsyncExitStack, record: OutRecord) -> Sender:
    """The command's ledger says `pending`: another sender was killed mid-call."""
    sender = await _accepting(stack, record)
    command_id = OutboundCommand.from_json(record.value).id
    sender.ledger.put_local(command_id.encode(),
                            LedgerEntry(state="pending", pending_id="another-sender"))
    return sender


async def _account_held(stack: AsyncExitStack, record: OutRecord) -> Sender:
    """The provider told an earlier command of the account to wait an hour."""
    http = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.MockTransport(_throttling)))
    sender = Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger),
                    http, public_url=None)
    await sender.handle(consumed(command()), FakeContext())
    return sender


def _to_nobody() -> OutRecord:
    return command_record(OutboundCommand(id=str(uuid.uuid4()), account="nobody", to=CONTACT,
                                          text="Sale today", created_at=datetime.now(UTC)),
                          "infobip")


# outcome: how a sender comes to it, the command, the SENDS labels counted, the result's code.
CASES: dict[str, tuple[NewSender, Callable[[], OutRecord], tuple[str, str], str]] = {
    "unknown_account": (_accepting, _to_nobody, ("", ""), "unknown_account"),
    "opted_out": (_contact_opted_out, command, ("infobip", "acme"), "opted_out"),
    "outcome_unknown": (_found_pending, command, ("infobip", "acme"), "outcome_unknown"),
    "held": (_account_held, command, ("infobip", "acme"), "E429"),
}


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.mark.parametrize("outcome", list(CASES))
async def test_a_command_handed_over_with_its_result_unstored_is_counted_once(
        outcome: str, stack: AsyncExitStack) -> None:
    new_sender, make_command, (provider, account), code = CASES[outcome]
    record = make_command()
    counted = sends_counted(provider, account, outcome)

    first = await new_sender(stack, record)
    with pytest.raises(PublishError):
        await first.handle(consumed(record), _KafkaAway())
    assert sends_counted(provider, account, outcome) == counted  # Kafka has no result of it

    # A stop while Kafka is away: the command, uncommitted, goes to the next sender.
    second = await new_sender(stack, record)
    ctx = FakeContext()
    await second.handle(consumed(record), ctx)
    [result] = results(ctx)
    assert (result["status"], result["error"]["code"]) == ("failed", code)
    assert sends_counted(provider, account, outcome) == counted + 1


@pytest.mark.parametrize("outcome", list(CASES))
async def test_a_result_stored_at_the_handlers_retry_is_counted_then(
        outcome: str, stack: AsyncExitStack) -> None:
    new_sender, make_command, (provider, account), code = CASES[outcome]
    record = make_command()
    counted = sends_counted(provider, account, outcome)

    sender = await new_sender(stack, record)
    with pytest.raises(PublishError):
        await sender.handle(consumed(record), _KafkaAway())
    ctx = FakeContext()  # Kafka back: the runtime retries the record
    await sender.handle(consumed(record), ctx)
    [result] = results(ctx)
    assert (result["status"], result["error"]["code"]) == ("failed", code)
    assert sends_counted(provider, account, outcome) == counted + 1

    await sender.handle(consumed(record), FakeContext())  # redelivered: its result again
    assert sends_counted(provider, account, outcome) == counted + 1
