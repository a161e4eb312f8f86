"""How long the sender waits: for a provider that asked it to (Retry-After), and for a provider
call still in flight when the worker stops.

Waits of minutes run on a fake clock (the sender's `time` and the context's wait), so the
tests take no time; the provider is an in-process httpx transport.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from consumers import send_attempts
from consumers.handling import GiveBack
from consumers.ledger import decode_ledger
from consumers.send_attempts import SendPolicy
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.records import OutRecord, command_record
from switchboard.topics import OUTBOUND_SENT
from tests.unit.fakes import FakeContext, ModuleWith
from tests.unit.senders import ACCOUNTS, command, consumed, results, sends_counted


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeClockContext(FakeContext):
    """A context whose waits pass on the fake clock at once."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    async def wait_to_retry(self, delay_s: float) -> None:
        self.clock.now += delay_s


def _sender(http: httpx.AsyncClient, policy: SendPolicy | None = None) -> Sender:
    """A sender of the test accounts whose ledger is never read (FakeContext keeps its marks)."""
    return Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger),
                  http, public_url=None, policy=policy)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(send_attempts, "time", ModuleWith(time, monotonic=clock))
    return clock


def banned_until(clock: Clock, until: float, calls: list[float]
                 ) -> Callable[[httpx.Request], httpx.Response]:
    """A provider that refuses every send with 429 and the time left, until `until`."""
    def provider(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now)
        if clock.now < until:
            return httpx.Response(429, json={"errorCode": "E429",
                                             "description": "Too many requests sent."},
                                  headers={"Retry-After": f"{until - clock.now:.0f}"})
        return httpx.Response(200, json={"messages": [{"messageId": f"ib-{len(calls)}"}]})
    return provider


async def test_a_provider_asking_for_minutes_is_asked_again_only_once_they_are_over(
        clock: Clock) -> None:
    # Capped at 30 s, the wait had the provider asked again at 30, 60 and 90 s (each refused,
    # with every other command of the account held behind it) before the fifth try.
    calls: list[float] = []
    start = clock.now
    provider = banned_until(clock, start + 120, calls)
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = _sender(http)
        ctx = FakeClockContext(clock)
        await sender.handle(consumed(command()), ctx)
    assert calls == [start, start + 120]
    [result] = results(ctx)
    assert (result["status"], result["attempts"]) == ("accepted", 2)


async def test_a_wait_longer_than_a_command_is_kept_fails_it_and_spares_the_provider(
        clock: Clock) -> None:
    # A daily quota spent: "come back in an hour". Read as no wait at all (over an hour), or
    # capped at 30 s, the command was tried five times within minutes, and so was every other.
    calls: list[float] = []
    start = clock.now
    provider = banned_until(clock, start + 3600, calls)
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = _sender(http)
        ctx = FakeClockContext(clock)
        await sender.handle(consumed(command()), ctx)
        [refused] = results(ctx)
        assert calls == [start]
        assert (refused["status"], refused["attempts"]) == ("failed", 1)
        assert refused["error"]["code"] == "E429" and not refused["error"]["permanent"]
        assert "wait 3600 s" in refused["error"]["description"]

        clock.now += 60  # the account's next command, within the hour: not sent either
        counted = sends_counted("infobip", "acme", "held")
        await sender.handle(consumed(command()), ctx)
        [held] = results(ctx)
        assert calls == [start]
        assert sends_counted("infobip", "acme", "held") == counted + 1  # no call, all the same
        assert (held["status"], held["attempts"], held["error"]["code"]) == ("failed", 0, "E429")
        assert "wait 3540 s" in held["error"]["description"]

        clock.now = start + 3600  # the hour is over
        await sender.handle(consumed(command()), ctx)
        [sent] = results(ctx)
        assert sent["status"] == "accepted" and calls == [start, start + 3600]


async def test_an_account_is_held_no_longer_than_an_hour_whatever_the_provider_asked(
        clock: Clock) -> None:
    # A Retry-After of a year (a proxy gone wrong) held the account's sends until the sender
    # restarted: every command failed `held`, the provider never asked again.
    calls: list[float] = []
    start = clock.now
    provider = banned_until(clock, start + 365 * 86_400, calls)
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = _sender(http)
        ctx = FakeClockContext(clock)
        await sender.handle(consumed(command()), ctx)
        [refused] = results(ctx)
        assert calls == [start] and refused["attempts"] == 1
        assert "wait 31536000 s" in refused["error"]["description"]  # as the provider said

        clock.now = start + 60  # within the hour: held, not sent
        await sender.handle(consumed(command()), ctx)
        [held] = results(ctx)
        assert calls == [start] and (held["attempts"], held["error"]["code"]) == (0, "E429")

        clock.now = start + 3600  # asked again, once, and held again by its answer
        await sender.handle(consumed(command()), ctx)
        await sender.handle(consumed(command()), ctx)
        assert [r["attempts"] for r in results(ctx)] == [1, 0]
        assert calls == [start, start + 3600]


class BlockedContext(FakeClockContext):
    """A context whose waits last until `resume` is set (the clock does not move for them)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.resume = asyncio.Event()

    async def wait_to_retry(self, delay_s: float) -> None:
        await self.resume.wait()


SLOW_ACCOUNTS = parse_accounts({"accounts": {"acme": {
    "provider": "infobip",
    "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
    "outbound": {"base_url": "http://provider.test", "api_key": "ib-key", "sender": "Acme",
                 "rate_per_s": 5, "burst": 1},
}}})


async def test_a_send_waiting_for_the_rate_limit_when_its_account_is_held_waits_for_the_hold(
        clock: Clock) -> None:
    # Past the hold's check before the 429 came, a send waiting for its account's rate limit
    # went on to the provider while it asked the account to wait: as did every send queued
    # behind the rate limit (one per token, for as long as the Retry-After), each refused.
    calls: list[float] = []
    start = clock.now
    provider = banned_until(clock, start + 60, calls)
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = Sender(SLOW_ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                      decode_ledger), http, public_url=None)
        first_ctx, second_ctx = BlockedContext(clock), FakeClockContext(clock)
        first = asyncio.create_task(sender.handle(consumed(command()), first_ctx))
        second = asyncio.create_task(sender.handle(consumed(command()), second_ctx))
        await asyncio.wait_for(second, 5)  # held, then sent once the wait was over
        first_ctx.resume.set()
        await asyncio.wait_for(first, 5)
    assert calls == [start, start + 60, start + 60]  # one refusal: the first send's
    [second_result] = results(second_ctx)
    assert (second_result["status"], second_result["attempts"]) == ("accepted", 1)
    [first_result] = results(first_ctx)
    assert (first_result["status"], first_result["attempts"]) == ("accepted", 2)


def answering_after(answered: asyncio.Event, called: asyncio.Event
                    ) -> Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]:
    """A provider that takes the message at once but answers only once `answered` is set."""
    async def provider(request: httpx.Request) -> httpx.Response:
        called.set()
        await answered.wait()
        return httpx.Response(200, json={"messages": [{"messageId": "ib-late"}]})
    return provider


async def test_a_call_unanswered_when_the_stop_grace_ends_is_reported_outcome_unknown() -> None:
    # An account with a long timeout_s: a stop waited for it in full, past the orchestrator's
    # SIGKILL, which left the command pending (reported outcome_unknown only by the next
    # sender) and everything done since the last commit uncommitted.
    called, never = asyncio.Event(), asyncio.Event()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answering_after(never, called))
                                 ) as http:
        sender = _sender(http, SendPolicy(stop_grace_s=0.2))
        ctx = FakeContext()
        handling = asyncio.create_task(sender.handle(consumed(command()), ctx))
        await asyncio.wait_for(called.wait(), 5)
        ctx.winding_down.set()  # SIGTERM, the call in flight
        await asyncio.wait_for(handling, 5)
    marks = [decode_ledger(r.value).state for r in ctx.published if r.topic == OUTBOUND_SENT.name]
    assert marks == ["pending", "failed"]  # the next sender republishes it, never resends
    [result] = results(ctx)
    assert (result["status"], result["error"]["code"]) == ("failed", "outcome_unknown")
    assert result["attempts"] == 1 and not result["error"]["permanent"]


async def test_a_call_answered_within_the_stop_grace_keeps_its_outcome() -> None:
    called, answered = asyncio.Event(), asyncio.Event()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answering_after(answered, called))
                                 ) as http:
        sender = _sender(http, SendPolicy(stop_grace_s=5))
        ctx = FakeContext()
        handling = asyncio.create_task(sender.handle(consumed(command()), ctx))
        await asyncio.wait_for(called.wait(), 5)
        ctx.winding_down.set()
        await asyncio.sleep(0.1)
        answered.set()
        await asyncio.wait_for(handling, 5)
    [result] = results(ctx)
    assert (result["status"], result["provider_message_id"]) == ("accepted", "ib-late")


UBIQIO_ACCOUNTS = parse_accounts({"accounts": {"acme-ubiqio": {
    "provider": "ubiqio",
    "auth": {"scheme": "token", "secrets": ["webhook-token-123"]},
    "outbound": {"base_url": "http://provider.test", "client_id": "cid",
                 "client_secret": "client-secret-123", "account_id": "acc-1",
                 "template_id": "tpl-1"},
}}})


def ubiqio_command() -> OutRecord:
    return command_record(OutboundCommand(id=str(uuid.uuid4()), account="acme-ubiqio",
                                          to="+41790001111", text="Hi",
                                          created_at=datetime.now(UTC)), "ubiqio")


def token_unanswered(requests: list[str], called: asyncio.Event, *, tokens_answered: int
                     ) -> Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]:
    """A Ubiqio that answers `tokens_answered` token requests, and never the next one; its
    sends are refused with 401 (the token revoked)."""
    async def provider(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if not request.url.path.endswith("/auth/token"):
            return httpx.Response(401, json={"error": "token revoked"})
        if requests.count(request.url.path) > tokens_answered:
            called.set()
            await asyncio.Event().wait()
        return httpx.Response(200, json={"token": "opaque-ubiqio-token"})
    return provider


@pytest.mark.parametrize("tokens_answered", [0, 1], ids=["first-token", "after-a-401"])
async def test_a_call_cut_short_while_fetching_a_token_is_handed_back_unsent(
        tokens_answered: int) -> None:
    # Reported outcome_unknown ("not resent to avoid a duplicate"), although a token request
    # sends no message and a send before it had been refused: the message was simply dropped.
    requests: list[str] = []
    called = asyncio.Event()
    provider = token_unanswered(requests, called, tokens_answered=tokens_answered)
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = Sender(UBIQIO_ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                        decode_ledger),
                        http, public_url=None, policy=SendPolicy(stop_grace_s=0.2))
        ctx = FakeContext()
        handling = asyncio.create_task(sender.handle(consumed(ubiqio_command()), ctx))
        await asyncio.wait_for(called.wait(), 5)
        ctx.winding_down.set()  # SIGTERM, the token request in flight
        with pytest.raises(GiveBack):
            await asyncio.wait_for(handling, 5)
    assert requests.count("/mvapi/message/send") == tokens_answered
    marks = [decode_ledger(r.value).state for r in ctx.published if r.topic == OUTBOUND_SENT.name]
    # The next sender sends it. Marked pending only by a send request: never by the token's.
    assert marks == (["pending", "released"] if tokens_answered else [])
    assert results(ctx) == []
