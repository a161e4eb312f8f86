"""The sender with HTTP_PROXY set and NO_PROXY not, as in a shell behind an egress proxy: a
provider on this machine (`run`'s simulator, a base_url on 127.0.0.1) is reached directly, not
through the proxy, which would reach its own machine. A real sender worker and Kafka; the proxy
stand-in and the provider are real HTTP servers on 127.0.0.1, answering as Infobip does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
import pytest

from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.settings import Settings
from tests.integration.stack import isolated_prefix, sent_alone


def _infobip_answer(message_id: str) -> bytes:
    body = orjson.dumps({"messages": [{"messageId": message_id, "status": {
        "groupId": 1, "groupName": "PENDING", "id": 26, "name": "MESSAGE_ACCEPTED"}}]})
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _answering(message_id: str, heads: list[str]
               ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A server's handler answering each request as Infobip accepting `message_id`; the head
    of each request it had, in `heads`."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        heads.append(head)
        length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                      if line.lower().startswith("content-length:"))
        await reader.readexactly(length)
        writer.write(_infobip_answer(message_id))
        await writer.drain()
        writer.close()
    return serve


async def test_the_sender_reaches_a_provider_on_loopback_directly_with_a_proxy_set(
        kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "request_method"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    proxied: list[str] = []
    direct: list[str] = []
    proxy = await asyncio.start_server(_answering("via-the-proxy", proxied), "127.0.0.1", 0)
    provider = await asyncio.start_server(_answering("direct-1", direct), "127.0.0.1", 0)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
    accounts = parse_accounts({"accounts": {"local-infobip": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "ib", "secrets": ["local-ib-webhook"]},
        "outbound": {"base_url": f"http://127.0.0.1:{provider.sockets[0].getsockname()[1]}",
                     "api_key": "local-ib-api-key", "sender": "InfoSMS"}}}})
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_name_prefix=isolated_prefix())
    command = OutboundCommand(id=f"cmd-{uuid.uuid4()}", account="local-infobip",
                              to="+41790000001", text="Hello", created_at=datetime.now(UTC))
    async with proxy, provider:
        [result] = await sent_alone(kafka_bootstrap, settings, accounts, command, "infobip")
    assert (result["status"], result["provider_message_id"]) == ("accepted", "direct-1")
    assert proxied == []
    [head] = direct
    assert head.startswith("POST /messages-api/1/messages HTTP/1.1\r\n")
