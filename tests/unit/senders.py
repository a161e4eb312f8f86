"""Commands, records and results around a Sender handled without a broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from prometheus_client import REGISTRY

from consumers.bots.optouts import OptOutList, decode_opt_out
from consumers.handling import Record
from consumers.ledger import decode_ledger
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.accounts import Accounts, parse_accounts
from switchboard.commands import CommandKind, OutboundCommand
from switchboard.records import OutRecord, command_record
from switchboard.topics import OPT_OUTS, OUTBOUND_RESULTS, OUTBOUND_SENT
from tests.unit.fakes import FakeContext

CONTACT = "+4179000111"  # the contact `command` sends to unless told
# acme sends SMS, tg Telegram messages, both through Infobip.
ACCOUNTS = parse_accounts({"accounts": {
    "acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "api_key": "ib-key", "sender": "Acme"},
    },
    "tg": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "api_key": "ib-key", "sender": "Bot",
                     "channel": "telegram"},
    },
}})


def results(ctx: FakeContext) -> list[dict[str, Any]]:
    """The results published since the last call."""
    found = [orjson.loads(r.value) for r in ctx.published if r.topic == OUTBOUND_RESULTS.name]
    ctx.published.clear()
    return found


def consumed(record: OutRecord) -> Record:
    """`record` as the runtime hands it to the sender, read back from partition 0."""
    return Record(record.topic, 0, 0, record.key, record.value, tuple(record.headers))


def command(to: str = CONTACT, kind: CommandKind = CommandKind.MESSAGE) -> OutRecord:
    """A fresh command from `acme` to `to`, as its record on the outbound topic."""
    return command_record(OutboundCommand(id=str(uuid.uuid4()), account="acme", to=to,
                                          text="Sale today", kind=kind,
                                          created_at=datetime.now(UTC)), "infobip")


def sends_counted(provider: str, account: str, outcome: str) -> float:
    """switchboard_sender_sends_total for these labels (0 before the first)."""
    return REGISTRY.get_sample_value("switchboard_sender_sends_total", {
        "provider": provider, "account": account, "outcome": outcome}) or 0.0


@asynccontextmanager
async def accepting_sender(accounts: Accounts, provider_calls: list[httpx.Request]
                           ) -> AsyncIterator[Sender]:
    """A sender with an opt-out list, whose provider (Infobip's answer) accepts every send
    and keeps the request in `provider_calls`."""
    def provider(request: httpx.Request) -> httpx.Response:
        provider_calls.append(request)
        return httpx.Response(200, json={"messages": [{"messageId": "ib-1"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        yield Sender(accounts, CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger),
                     http, public_url=None,
                     opt_outs=OptOutList(CompactedTable("unused:9092", OPT_OUTS.name,
                                                        decode_opt_out)))
