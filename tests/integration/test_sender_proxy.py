"""The sender behind an egress proxy: a real sender worker and Kafka, and a forward proxy on
127.0.0.1 that answers as Infobip would. The provider's host resolves nowhere: only the proxy
the environment names reaches it."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.settings import Settings
from tests.integration.processes import killed_if_left, switchboard
from tests.integration.stack import isolated_prefix, sent_alone

PASSWORD = "egress-proxy-pass"
EXAMPLES = Path(__file__).parents[2] / "examples"
ANSWER = orjson.dumps({"messages": [{"messageId": "via-proxy-1", "status": {
    "groupId": 1, "groupName": "PENDING", "id": 26, "name": "MESSAGE_ACCEPTED"}}]})


async def test_the_sender_reaches_its_provider_through_the_environments_proxy(
        kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sender's client has a transport of its own, for which httpx reads no proxy variable:
    # behind an egress proxy every send failed, the provider's name unresolvable.
    heads: list[str] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        heads.append(head)
        length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                      if line.lower().startswith("content-length:"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)
        await writer.drain()
        writer.close()

    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://sender:{PASSWORD}@127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    accounts = parse_accounts({"accounts": {"proxied-infobip": {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "ib", "secrets": ["proxied-ib-webhook"]},
        "outbound": {"base_url": "http://infobip.invalid", "api_key": "proxied-ib-api-key",
                     "sender": "InfoSMS"}}}})
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_name_prefix=isolated_prefix())
    command = OutboundCommand(id=f"cmd-{uuid.uuid4()}", account="proxied-infobip",
                              to="+41790000001", text="Hello", created_at=datetime.now(UTC))
    async with server:
        [result] = await sent_alone(kafka_bootstrap, settings, accounts, command, "infobip")
    assert (result["status"], result["provider_message_id"]) == ("accepted", "via-proxy-1")
    [head] = heads
    assert head.startswith("POST http://infobip.invalid/messages-api/1/messages HTTP/1.1\r\n")
    login = base64.b64encode(f"sender:{PASSWORD}".encode()).decode()
    assert f"Proxy-Authorization: Basic {login}" in head


def test_a_proxy_variable_the_sender_cannot_use_stops_it_with_one_line(
        kafka_bootstrap: str) -> None:
    # It ended in a traceback once Kafka answered, the proxy's password in it.
    env = {name: value for name, value in os.environ.items()
           if name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    sender = switchboard(env | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SWITCHBOARD_KAFKA_NAME_PREFIX": f"it-proxy-{uuid.uuid4().hex[:8]}.",
        "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLES / "accounts.toml"),
        "SWITCHBOARD_TOPIC_PARTITIONS": "1",
        "HTTPS_PROXY": f"ftp://sender:{PASSWORD}@proxy.invalid:21"}, "worker", "sender")
    with killed_if_left(sender) as process:
        output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output
    assert "Traceback" not in output
    assert PASSWORD not in output
    [line] = [line for line in output.splitlines() if line.startswith("error:")]
    assert "HTTPS_PROXY" in line
