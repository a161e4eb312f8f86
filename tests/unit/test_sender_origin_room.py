"""A provider that hangs holds only its origin's room, not the sender's every slot: the real
runtime (no broker: records dispatched by hand, publishes kept) and sender, sending through the
sender's transport to real HTTP servers on 127.0.0.1, one that never answers and one that does."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
from aiokafka import TopicPartition

from consumers.ledger import decode_ledger
from consumers.outbound.limits import OriginRooms
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


def _accounts(stuck_url: str, healthy_url: str) -> Accounts:
    def account(base_url: str) -> dict[str, object]:
        # No rate limit in the way; a hang of 30 s before a send times out.
        return {"provider": "infobip",
                "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-pass-123"]},
                "outbound": {"base_url": base_url, "api_key": "ib-key", "sender": "Acme",
                             "rate_per_s": 1000, "burst": 1000, "timeout_s": 30}}
    return parse_accounts({"accounts": {"stuck": account(stuck_url),
                                        "healthy": account(healthy_url)}})


def _record(offset: int, account: str, to: str) -> SimpleNamespace:
    out = command_record(OutboundCommand(id=str(uuid.uuid4()), account=account, to=to,
                                         text="Sale today", created_at=datetime.now(UTC)),
                         "infobip")
    return SimpleNamespace(topic=TP.topic, partition=0, offset=offset, key=out.key,
                           value=out.value, headers=out.headers)


def _results(producer: KeepingProducer, account: str) -> list[dict[str, Any]]:
    return [result for record in producer.published if record.topic == OUTBOUND_RESULTS.name
            and (result := orjson.loads(record.value))["account"] == account]


def _answered(producer: KeepingProducer, account: str) -> list[str]:
    return [result["status"] for result in _results(producer, account)]


@contextlib.asynccontextmanager
async def _sending(stuck: Provider, healthy: Provider
                   ) -> AsyncIterator[tuple[Sender, WorkerRuntime, KeepingProducer]]:
    """The sender (accounts `stuck` and `healthy`, one per provider) on the real runtime, its
    publishes kept; its tasks cancelled at the end."""
    async with httpx.AsyncClient(transport=ShardedTransport()) as http:
        producer = KeepingProducer()
        sender = Sender(_accounts(stuck.base_url, healthy.base_url),
                        CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger), http,
                        public_url=None)
        runtime = WorkerRuntime(name="sender", kafka="unused:9092", topics=[TP.topic],
                                handler=sender.handle, max_concurrency=SENDER_CONCURRENCY,
                                producer=producer)  # type: ignore[arg-type]
        try:
            yield sender, runtime, producer
        finally:
            tasks = list(runtime._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_hanging_provider_leaves_slots_to_another_providers_sends() -> None:
    """As many sends as the runtime has slots to a provider that never answers, queued ahead of
    one to a healthy provider: every slot was held by a hanging request, and the healthy send
    waited for them to time out (5.0 s measured with a 5 s timeout)."""
    async with Provider(hang=True).running() as stuck, Provider().running() as healthy, \
            _sending(stuck, healthy) as (_, runtime, producer):
        assert runtime.max_concurrency == SENDER_CONCURRENCY
        records = [_record(n, "stuck", f"+41790000{n:03d}") for n in range(SENDER_CONCURRENCY)]
        healthy_record = _record(SENDER_CONCURRENCY, "healthy", "+41790001000")
        await runtime._dispatch({TP: [*records, healthy_record]})
        tasks = list(runtime._tasks)
        # answered while the hanging provider still holds its requests (30 s timeout)
        assert await until(lambda: _answered(producer, "healthy"), 10), \
            f"no answer to the healthy send; {stuck.requests} requests hanging"
        assert _answered(producer, "healthy") == ["accepted"]
        assert _answered(producer, "stuck") == []
        assert sum(task.done() for task in tasks) == 1  # the hanging ones still wait
        # the hanging provider has at most its origin's room of requests, not every slot
        assert stuck.requests == SENDS_IN_FLIGHT_PER_ORIGIN < runtime.max_concurrency


async def test_sends_waiting_for_their_origins_room_are_given_back_at_the_stop() -> None:
    """Waiting for room is no attempt: at the stop, a send still waiting is handed back
    unsent (no result, no ledger mark: the next sender sends it), and the room and slots of
    the calls cut short are given back."""
    async with Provider(hang=True).running() as stuck, Provider().running() as healthy, \
            _sending(stuck, healthy) as (sender, runtime, producer):
        sender.policy.stop_grace_s = 0.5
        await runtime._dispatch({TP: [_record(n, "stuck", f"+41790000{n:03d}")
                                      for n in range(SENDS_IN_FLIGHT_PER_ORIGIN + 6)]})
        tasks = list(runtime._tasks)
        assert await until(lambda: stuck.requests == SENDS_IN_FLIGHT_PER_ORIGIN, 10)
        runtime.context.winding_down.set()  # the stop
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        cut_short = _results(producer, "stuck")
        in_flight = SENDS_IN_FLIGHT_PER_ORIGIN
        assert [r["error"]["code"] for r in cut_short] == ["outcome_unknown"] * in_flight
        assert {r["attempts"] for r in cut_short} == {1}
        assert stuck.requests == in_flight  # the 6 that waited for room were not sent
        marks = [record for record in producer.published if record.topic == OUTBOUND_SENT.name]
        assert len(marks) == in_flight * 2  # pending, then failed: none for the 6 handed back
        assert runtime._concurrency._value == SENDER_CONCURRENCY  # every slot given back
        room = sender.origin_rooms.of(stuck.base_url)
        assert room._free._value == SENDS_IN_FLIGHT_PER_ORIGIN  # and all the room


async def test_sends_that_waited_for_room_count_one_attempt_and_keep_a_contacts_order() -> None:
    async with Provider().running() as provider, \
            _sending(provider, provider) as (sender, runtime, producer):
        sender.origin_rooms = OriginRooms(1)  # one request in flight at a time
        contacts = ["+41790000001", "+41790000002"] * 6
        records = [_record(n, "stuck", to) for n, to in enumerate(contacts)]
        await runtime._dispatch({TP: records})
        await asyncio.wait_for(asyncio.gather(*runtime._tasks), 10)
        results = _results(producer, "stuck")
        assert [(r["status"], r["attempts"]) for r in results] == [("accepted", 1)] * 12
        ids = [orjson.loads(r.value)["id"] for r in records]
        sent = [next(i for i in ids if i.encode() in body) for body in provider.bodies]
        assert sorted(sent) == sorted(ids)
        for contact in set(contacts):  # each contact's commands sent in their order
            theirs = [i for i, to in zip(ids, contacts, strict=True) if to == contact]
            assert [i for i in sent if i in theirs] == theirs
