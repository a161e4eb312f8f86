"""switchboard_sender_sends_total's retryable and permanent are provider calls: an attempt its
client failed before calling (content the provider cannot carry, another send's failed Ubiqio
token request) is counted as not_called, so an error rate against the provider is one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
from prometheus_client import REGISTRY

from consumers import sender_metrics
from consumers.ledger import decode_ledger
from consumers.outbound import SendError, SendReceipt
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.records import OutRecord, command_record
from switchboard.topics import OUTBOUND_SENT
from tests.unit.fakes import FakeContext
from tests.unit.senders import ACCOUNTS, command, consumed, results, sends_counted
from tests.unit.test_sender_attempts import InstantContext, ScriptedClient

OUTCOMES = ("accepted", "retryable", "permanent", "not_called")


def _counts(provider: str, account: str) -> dict[str, float]:
    return {outcome: sends_counted(provider, account, outcome) for outcome in OUTCOMES}


def _added(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {outcome: after[outcome] - before[outcome] for outcome in OUTCOMES
            if after[outcome] != before[outcome]}


def _not_called(*, retryable: bool) -> SendError:
    return SendError("HTTP 503: token endpoint down", retryable=retryable, code="503",
                     called=False)


async def test_attempts_that_called_nothing_are_not_counted_as_failed_calls() -> None:
    async with httpx.AsyncClient() as http:
        sender = Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger), http, public_url=None)
        sender._clients["acme"] = ScriptedClient([
            _not_called(retryable=True),
            SendError("HTTP 503: unavailable", retryable=True, code="503"),
            SendReceipt("ib-1"),
            _not_called(retryable=False)])
        ctx = InstantContext()
        before = _counts("infobip", "acme")
        await sender.handle(consumed(command()), ctx)
        await sender.handle(consumed(command()), ctx)
    assert [result["status"] for result in results(ctx)] == ["accepted", "failed"]
    # One provider call failed, one was accepted; the two attempts without a call are apart.
    assert _added(before, _counts("infobip", "acme")) == {
        "retryable": 1, "accepted": 1, "not_called": 2}


UBIQIO_ACCOUNTS = parse_accounts({"accounts": {"metrics-ubiqio": {
    "provider": "ubiqio",
    "auth": {"scheme": "token", "secrets": ["webhook-token-123"]},
    "outbound": {"base_url": "http://provider.test", "client_id": "cid",
                 "client_secret": "client-secret-123", "account_id": "acc-1",
                 "template_id": "tpl-1"},
}}})


def _ubiqio_command(channel: str | None = None) -> OutRecord:
    return command_record(OutboundCommand(id=str(uuid.uuid4()), account="metrics-ubiqio",
                                          to="+41790001111", text="Hi", channel=channel,
                                          created_at=datetime.now(UTC)), "ubiqio")


async def test_sends_sharing_a_failed_token_request_count_one_failed_call() -> None:
    # Two sends, one token request refused (401: a rotated secret): Ubiqio was called once,
    # and each send counted a permanent failure, the operator reading two refused calls.
    token_requested, answer = asyncio.Event(), asyncio.Event()
    requests: list[str] = []

    async def provider(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        token_requested.set()
        await answer.wait()
        return httpx.Response(401, json={"error": "Check your account key and secret"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = Sender(UBIQIO_ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                        decode_ledger), http, public_url=None)
        ctx = FakeContext()
        before = _counts("ubiqio", "metrics-ubiqio")
        first = asyncio.create_task(sender.handle(consumed(_ubiqio_command()), ctx))
        await asyncio.wait_for(token_requested.wait(), 5)
        second = asyncio.create_task(sender.handle(consumed(_ubiqio_command()), ctx))
        await asyncio.sleep(0.2)  # it queues behind the token request in flight
        answer.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert requests == ["/mvapi/auth/token"]  # the second shared the first's request
    assert [result["error"]["code"] for result in results(ctx)] == ["401", "401"]
    assert _added(before, _counts("ubiqio", "metrics-ubiqio")) == {
        "permanent": 1, "not_called": 1}


async def test_a_command_refused_before_any_call_is_not_a_permanent_provider_failure() -> None:
    requests: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"token": "opaque-ubiqio-token"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = Sender(UBIQIO_ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                        decode_ledger), http, public_url=None)
        ctx = FakeContext()
        before = _counts("ubiqio", "metrics-ubiqio")
        await sender.handle(consumed(_ubiqio_command(channel="whatsapp")), ctx)
    [result] = results(ctx)
    assert (result["error"]["code"], result["attempts"], requests) == (
        "unsupported_content", 0, [])
    assert _added(before, _counts("ubiqio", "metrics-ubiqio")) == {"not_called": 1}


def test_not_called_is_at_zero_for_each_sending_account() -> None:
    # It was counted under permanent and retryable, at 0 from the start: an alert on it keeps
    # a series before its first count.
    name = f"zero-{uuid.uuid4().hex[:8]}"
    sender_metrics.initialize(parse_accounts({"accounts": {name: {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": "http://provider.test", "api_key": "ib-key"},
    }}}))
    assert REGISTRY.get_sample_value("switchboard_sender_sends_total", {
        "provider": "infobip", "account": name, "outcome": "not_called"}) == 0
