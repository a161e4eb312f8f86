"""When the sender marks a command `pending`: as its send request leaves, after the account's
rate limit, so that a sender killed while commands wait for it leaves them to the next one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from consumers.handling import GiveBack
from consumers.ledger import decode_ledger
from consumers.send_attempts import SendPolicy
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.accounts import Accounts, parse_accounts
from switchboard.records import OutRecord
from switchboard.topics import OUTBOUND_SENT
from tests.unit.fakes import FakeContext
from tests.unit.senders import command, consumed


def _accounts(rate_per_s: float, burst: int) -> Accounts:
    return parse_accounts({"accounts": {"acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "api_key": "ib-key",
                     "sender": "Acme", "rate_per_s": rate_per_s, "burst": burst},
    }}})


def _marks(ctx: FakeContext, record: OutRecord) -> list[str]:
    key = orjson.loads(record.value)["id"].encode()
    return [decode_ledger(r.value).state for r in ctx.published
            if r.topic == OUTBOUND_SENT.name and r.key == key]


class _SlowToStorePending(FakeContext):
    """Kafka slow to acknowledge a `pending` mark it has written all the same."""

    async def publish(self, records: Any) -> None:
        self.published.extend(records)
        if any(r.topic == OUTBOUND_SENT.name and decode_ledger(r.value).state == "pending"
               for r in records):
            await asyncio.sleep(30)


async def test_a_pending_mark_cut_short_by_the_stop_is_released() -> None:
    # The mark is stored from within the provider call, which the stop cuts short after its
    # grace: a mark written but not yet acknowledged then was left pending, and the next
    # sender reported outcome_unknown for a message no provider had.
    calls: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"messages": [{"messageId": "ib-1"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = Sender(_accounts(20, 20),
                        CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger),
                        http, public_url=None, policy=SendPolicy(stop_grace_s=0.2))
        ctx = _SlowToStorePending()
        record = command()
        handling = asyncio.create_task(sender.handle(consumed(record), ctx))
        await asyncio.sleep(0.1)  # storing its pending mark
        ctx.winding_down.set()  # SIGTERM
        with pytest.raises(GiveBack):
            await asyncio.wait_for(handling, 10)
    assert calls == []
    assert _marks(ctx, record) == ["pending", "released"]
