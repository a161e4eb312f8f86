"""The sender meets opt-out changes on the outbound topic in order with the commands.

No broker: the records are handed to the handler as the runtime would, in partition order,
and the provider is an in-process httpx transport (a unit test of the sender's logic).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from consumers.bots.optouts import (
    OptOutList,
    OptOutState,
    decode_opt_out,
    opt_out_key,
    opt_out_records,
)
from consumers.runtime import PoisonRecord, Record
from consumers.sender import Sender, decode_ledger
from consumers.table import CompactedTable
from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.records import OPT_OUT_CHANGE_TYPE, OutRecord, command_record
from switchboard.topics import OPT_OUTS, OUTBOUND_RESULTS, OUTBOUND_SENT
from tests.unit.fakes import FakeContext

CONTACT = "+4179000111"
ACCOUNTS = parse_accounts({"accounts": {"acme": {
    "provider": "infobip",
    "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
    "outbound": {"base_url": "http://provider.test", "api_key": "ib-key", "sender": "Acme"},
}}})


def results(ctx: FakeContext) -> list[dict[str, Any]]:
    """The results published since the last call."""
    found = [orjson.loads(r.value) for r in ctx.published if r.topic == OUTBOUND_RESULTS.name]
    ctx.published.clear()
    return found


@pytest.fixture
def provider_calls() -> list[httpx.Request]:
    return []


@pytest.fixture
async def sender(provider_calls: list[httpx.Request]) -> AsyncIterator[Sender]:
    def provider(request: httpx.Request) -> httpx.Response:
        provider_calls.append(request)
        return httpx.Response(200, json={"messages": [{"messageId": "ib-1"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        yield Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger),
                     http, public_url=None,
                     opt_outs=OptOutList(CompactedTable("unused:9092", OPT_OUTS.name,
                                                        decode_opt_out)))


def consumed(record: OutRecord) -> Record:
    return Record(record.topic, 0, 0, record.key, record.value, tuple(record.headers))


def command() -> OutRecord:
    return command_record(OutboundCommand(id=str(uuid.uuid4()), account="acme", to=CONTACT,
                                          text="Sale today", created_at=datetime.now(UTC)),
                          "infobip")


async def test_a_command_after_an_opt_out_change_is_refused_until_opt_in(
        sender: Sender, provider_calls: list[httpx.Request]) -> None:
    ctx = FakeContext()
    _, stop = opt_out_records("infobip", "acme", CONTACT, True, "keyword:STOP")
    await sender.handle(consumed(stop), ctx)
    assert ctx.published == []  # a change is applied, not answered

    await sender.handle(consumed(command()), ctx)
    [refused] = results(ctx)
    assert (refused["status"], refused["error"]["code"]) == ("failed", "opted_out")
    assert provider_calls == []

    _, start = opt_out_records("infobip", "acme", CONTACT, False, "keyword:START")
    await sender.handle(consumed(start), ctx)
    await sender.handle(consumed(command()), ctx)
    [accepted] = results(ctx)
    assert accepted["status"] == "accepted" and len(provider_calls) == 1


async def test_an_unreadable_opt_out_change_is_a_poison_record(sender: Sender) -> None:
    _, change = opt_out_records("infobip", "acme", CONTACT, True, "keyword:STOP")
    broken = OutRecord(change.topic, b"{not json", change.key, change.headers)
    assert dict(broken.headers)["ce_type"] == OPT_OUT_CHANGE_TYPE.encode()
    with pytest.raises(PoisonRecord):
        await sender.handle(consumed(broken), FakeContext())


def change(opted_out: bool, at: datetime) -> OutRecord:
    state = OptOutState(account="acme", contact=CONTACT, opted_out=opted_out, source="test",
                        at=at)
    return OutRecord(OPT_OUTS.name, state.model_dump_json().encode(), opt_out_key("acme", CONTACT))


def test_a_change_met_early_is_not_undone_by_an_older_record_the_table_reads_later() -> None:
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    opt_outs = OptOutList(table)
    start = change(False, datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    stop = change(True, datetime(2026, 11, 1, 12, 1, tzinfo=UTC))
    opt_outs.remember(stop.value)  # met on the outbound topic first
    table._apply(consumed(start))  # the follower, behind, reads the older START only now
    assert opt_outs.is_opted_out("acme", CONTACT)
    table._apply(consumed(stop))  # and catches up
    assert opt_outs.is_opted_out("acme", CONTACT)
    assert opt_outs._ahead == {}  # nothing kept beside the table once it has read the change

    opt_outs.remember(start.value)  # an old change redelivered: the newer STOP stands
    assert opt_outs.is_opted_out("acme", CONTACT)


def test_changes_the_table_has_read_do_not_pile_up_beside_it() -> None:
    """Contacts never looked up again must not stay in the side list for the process's life."""
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    opt_outs = OptOutList(table)
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for n in range(5 * OptOutList.SWEEP_FROM):
        state = OptOutState(account="acme", contact=f"+41790{n:06d}", opted_out=True,
                            source="test", at=at)
        value = state.model_dump_json().encode()
        opt_outs.remember(value)  # met on the outbound topic first
        table._apply(Record(OPT_OUTS.name, 0, n, opt_out_key("acme", state.contact), value, ()))
    assert len(opt_outs._ahead) < OptOutList.SWEEP_FROM
    assert opt_outs.is_opted_out("acme", "+41790000000")  # the table still knows every one

    behind = OptOutState(account="acme", contact="+41799999999", opted_out=True, source="test",
                         at=at)
    opt_outs.remember(behind.model_dump_json().encode())  # the table has not read this one
    opt_outs._sweep()
    assert opt_outs.is_opted_out("acme", "+41799999999")
