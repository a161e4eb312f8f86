"""A real sender worker and Kafka, whose account's base_url points where nothing listens: the
result and the log line say where it tried, and nothing secret of the URL."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.logs import configure_logging
from switchboard.settings import Settings
from tests.integration.stack import isolated_prefix, sent_alone

SECRETS = ("unreachable-user", "unreachable-url-pass", "unreachable-api-key", "/wrong-path")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_send_to_a_wrong_base_url_says_where_it_tried(
        kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    # "network error: ConnectError: All connection attempts failed" named no host: a wrong
    # base_url could not be told from a provider that is down.
    configure_logging("INFO", "json")
    port = closed_port()
    account = f"unreachable-{uuid.uuid4().hex[:8]}"
    accounts = parse_accounts({"accounts": {account: {
        "provider": "infobip",
        "auth": {"scheme": "basic", "username": "ib", "secrets": ["unreachable-webhook"]},
        "outbound": {
            "base_url": f"http://unreachable-user:unreachable-url-pass@127.0.0.1:{port}"
                        f"/wrong-path",
            "api_key": "unreachable-api-key", "sender": "InfoSMS"}}}})
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_name_prefix=isolated_prefix())
    command = OutboundCommand(id=f"cmd-{uuid.uuid4()}", account=account, to="+41790000001",
                              text="Hello", created_at=datetime.now(UTC))
    [result] = await sent_alone(kafka_bootstrap, settings, accounts, command, "infobip")
    where = f"(sending to http://127.0.0.1:{port})"
    assert result["status"] == "failed" and result["error"]["code"] == "network"
    assert result["error"]["description"].startswith("network error: ConnectError")
    assert where in result["error"]["description"]
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    [failed] = [line for line in lines
                if line["event"] == "send failed" and line.get("command") == command.id]
    assert where in failed["error"]
    for secret in SECRETS:
        assert secret not in result["error"]["description"] and secret not in failed["error"]
