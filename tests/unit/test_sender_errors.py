"""A provider call that raises something other than SendError (a bug in a client, an httpx error
type no client expects, a KeyError reading an answer): its request may have reached the
provider, so the command is reported maybe sent (`outcome_unknown`) and never sent again, with
the error's type, not its text, which may quote the request.

No broker: records are handed to the handler as the runtime would; the provider is an
in-process httpx transport.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from consumers.ledger import decode_ledger
from consumers.outbound.transport import ShardedTransport
from consumers.send_attempts import SendPolicy
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.accounts import parse_accounts
from switchboard.logs import configure_logging
from switchboard.topics import OUTBOUND_SENT
from tests.unit.fakes import FakeContext
from tests.unit.senders import ACCOUNTS, CONTACT, command, consumed, results, sends_counted

SECRET_DETAIL = f"to {CONTACT}: Sale today"  # what the error's text quotes


class ClientBug(Exception):
    """Raised inside the provider call, as a bug in a client would be."""


async def test_an_unexpected_error_in_the_provider_call_is_reported_maybe_sent_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    # It escaped the sender: the command stayed `pending`, the runtime's retry reported it
    # `outcome_unknown` "the sender stopped while sending", and nothing said what had failed.
    configure_logging("INFO", "json")
    calls: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise ClientBug(SECRET_DETAIL)

    record = consumed(command())
    counted = sends_counted("infobip", "acme", "error")
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        sender = Sender(ACCOUNTS, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger),
                        http, public_url=None, policy=SendPolicy(base_delay_s=0, max_delay_s=0))
        ctx = FakeContext()
        await sender.handle(record, ctx)
        [result] = results(ctx)
        # Handled again (a rebalance before the commit): the same outcome, no second call.
        await sender.handle(record, ctx)
        assert results(ctx) == [result]
    assert len(calls) == 1
    assert result["status"] == "failed"
    assert result["attempts"] == 1
    error = result["error"]
    assert (error["code"], error["permanent"]) == ("outcome_unknown", False)
    assert "ClientBug" in error["description"]
    assert "stopped" not in error["description"]
    assert SECRET_DETAIL not in error["description"]
    assert sends_counted("infobip", "acme", "error") == counted + 1
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    [logged] = [line for line in lines if line.get("error_type") == "ClientBug"]
    assert logged["level"] == "error"
    assert logged["command"] == result["command_id"] and logged["account"] == "acme"
    assert "Traceback" in logged["exception"] and "raise ClientBug(" in logged["exception"]
    assert SECRET_DETAIL not in str(lines)


async def test_an_answer_labelled_with_a_charset_it_is_not_in_is_the_providers_answer() -> None:
    # A 500 labelled UTF-16, without its byte order mark (a Windows server's error page):
    # reading its text raised UnicodeError out of the client, so the provider's answer was
    # taken for the client's bug. A real server on 127.0.0.1, through the sender's transport.
    answer = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-16"
              b"\r\nContent-Length: 5\r\nConnection: close\r\n\r\nError")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
        "outbound": {"base_url": f"http://127.0.0.1:{port}", "api_key": "ib-key",
                     "sender": "Acme"}}}})
    async with server, httpx.AsyncClient(transport=ShardedTransport(shards=1)) as http:
        sender = Sender(accounts, CompactedTable("unused:9092", OUTBOUND_SENT.name,
                                                 decode_ledger), http, public_url=None)
        ctx = FakeContext()
        await sender.handle(consumed(command()), ctx)
    [result] = results(ctx)
    assert result["error"]["code"] == "500"
    assert result["error"]["description"].startswith("HTTP 500: ")
