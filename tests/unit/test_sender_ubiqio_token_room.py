"""A Ubiqio host whose token endpoint hangs holds only its origin's room of the sender's slots,
token requests included: the real runtime (no broker: records dispatched by hand, publishes
kept) and sender, through the sender's transport to real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import orjson
import pytest
from aiokafka import TopicPartition

from consumers.ledger import decode_ledger
from consumers.outbound.transport import ShardedTransport
from consumers.runtime import WorkerRuntime
from consumers.sender import SENDER_CONCURRENCY, SENDS_IN_FLIGHT_PER_ORIGIN, Sender
from consumers.table import CompactedTable
from switchboard.accounts import Accounts, parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.records import command_record
from switchboard.topics import OUTBOUND, OUTBOUND_RESULTS, OUTBOUND_SENT
from tests.fakes import KeepingProducer
from tests.polling import until
from tests.provider_servers import Provider

TP = TopicPartition(OUTBOUND.name, 0)
UBIQIO_ACCOUNTS = [f"ubiqio-{n:02d}" for n in range(SENDER_CONCURRENCY)]


def _accounts(ubiqio_url: str, healthy_url: str) -> Accounts:
    auth = {"scheme": "token", "secrets": ["webhook-token-123"]}
    ubiqio = {"provider": "ubiqio", "auth": auth,
              "outbound": {"base_url": ubiqio_url, "client_id": "cid",
                           "client_secret": "client-secret-123", "account_id": "acc-1",
                           "template_id": "tpl-1", "timeout_s": 30}}
    healthy = {"provider": "infobip",
               "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-pass-123"]},
               "outbound": {"base_url": healthy_url, "api_key": "ib-key", "sender": "Acme"}}
    return parse_accounts({"accounts": {**{name: ubiqio for name in UBIQIO_ACCOUNTS},
                                        "healthy": healthy}})


def _record(offset: int, account: str, provider: str) -> SimpleNamespace:
    out = command_record(OutboundCommand(id=str(uuid.uuid4()), account=account,
                                         to=f"+4179000{offset:04d}", text="Sale today",
                                         created_at=datetime.now(UTC)), provider)
    return SimpleNamespace(topic=TP.topic, partition=0, offset=offset, key=out.key,
                           value=out.value, headers=out.headers)


def _answered(producer: KeepingProducer, account: str) -> list[str]:
    return [result["status"] for record in producer.published
            if record.topic == OUTBOUND_RESULTS.name
            and (result := orjson.loads(record.value))["account"] == account]


@pytest.mark.usefixtures("no_proxies")
async def test_hanging_token_requests_leave_slots_to_another_providers_sends() -> None:
    """One send for each of as many Ubiqio accounts as the runtime has slots, at a host whose
    token endpoint never answers, queued ahead of one to a healthy provider: each account's
    token request held a slot outside the origin's room, all of them together every slot, and
    the healthy send waited for their timeout."""
    async with Provider(hang=True).running() as stuck, Provider().running() as healthy, \
            httpx.AsyncClient(transport=ShardedTransport()) as http:
        producer = KeepingProducer()
        sender = Sender(_accounts(stuck.base_url, healthy.base_url),
                        CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger), http,
                        public_url=None)
        runtime = WorkerRuntime(name="sender", kafka="unused:9092", topics=[TP.topic],
                                handler=sender.handle, max_concurrency=SENDER_CONCURRENCY,
                                producer=producer)  # type: ignore[arg-type]
        records = [_record(n, name, "ubiqio") for n, name in enumerate(UBIQIO_ACCOUNTS)]
        await runtime._dispatch({TP: [*records, _record(len(records), "healthy", "infobip")]})
        tasks = list(runtime._tasks)
        try:
            # answered while the token requests still hang (30 s timeout)
            assert await until(lambda: _answered(producer, "healthy"), 10), \
                f"no answer to the healthy send; {stuck.requests} token requests hanging"
            assert _answered(producer, "healthy") == ["accepted"]
            assert stuck.requests == SENDS_IN_FLIGHT_PER_ORIGIN < len(UBIQIO_ACCOUNTS)
            assert all(_answered(producer, name) == [] for name in UBIQIO_ACCOUNTS)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        room = sender.origin_rooms.of(stuck.base_url)
        # the calls cancelled with their handlers (a loop turn or a few later) give it all back
        assert await until(lambda: room._free._value == SENDS_IN_FLIGHT_PER_ORIGIN, 5)
