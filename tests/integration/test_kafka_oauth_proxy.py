"""OAUTHBEARER with a proxy variable httpx cannot use (every process asks the token endpoint
through the proxy variables): `serve` stops at its start with one `error:` line naming it, and a
client that meets one fails as for an unreachable token endpoint, not with a ValueError.

The real broker's SASL_SSL listener and a token endpoint on 127.0.0.1, which is never asked."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess

import pytest
from aiokafka.errors import KafkaConnectionError

from switchboard.localkafka import free_port
from switchboard.producer import DurableProducer
from switchboard.settings import Settings
from tests.integration.processes import EXAMPLES, killed_if_left, switchboard
from tests.kafka_helpers import SecuredKafka
from tests.oauth_server import Issuer, TokenEndpoint, token_endpoint

CLIENT_ID = "switchboard-oauth-proxy"
CLIENT_SECRET = secrets.token_urlsafe(16)
PASSWORD = "oauth-proxy-pass"
UNUSABLE = f"ftp://proxy:{PASSWORD}@127.0.0.1:1"


def _environment(kafka: SecuredKafka, endpoint: TokenEndpoint) -> dict[str, str]:
    clean = {name: value for name, value in os.environ.items()
             if not name.startswith("SWITCHBOARD_")
             and name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    return clean | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "SWITCHBOARD_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "SWITCHBOARD_KAFKA_SSL_CAFILE": str(kafka.cafile),
        "SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL": endpoint.url,
        "SWITCHBOARD_KAFKA_OAUTH_CLIENT_ID": CLIENT_ID,
        "SWITCHBOARD_KAFKA_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLES / "accounts.toml"),
        "SWITCHBOARD_HTTP_PORT": str(free_port()),
        "SWITCHBOARD_LOG_FORMAT": "json",
        "HTTPS_PROXY": UNUSABLE,
    }


def _finished(process: subprocess.Popen[str], timeout_s: float) -> tuple[int | None, str]:
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return None, output
    return process.returncode, output


async def test_serve_with_a_proxy_the_token_requests_cannot_use_stops_at_its_start(
        secured_kafka: SecuredKafka, oauth_issuer: Issuer) -> None:
    # It started, stayed unready (503) and logged "kafka not reachable yet" with the bare
    # ValueError for ever.
    async with token_endpoint(oauth_issuer, {CLIENT_ID: CLIENT_SECRET}) as endpoint:
        with killed_if_left(switchboard(_environment(secured_kafka, endpoint), "serve")) as serve:
            code, output = await asyncio.to_thread(_finished, serve, 60)
    assert code == 2, output
    assert "Traceback" not in output and '"critical"' not in output, output
    [line] = output.splitlines()
    assert line.startswith("error: HTTPS_PROXY (or https_proxy) of the environment names a "
                           "proxy httpx cannot use: Unknown scheme for proxy URL"), line
    assert "SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL" in line
    assert PASSWORD not in output
    assert endpoint.requests == []


async def test_a_client_meeting_such_a_proxy_fails_as_for_an_unreachable_token_endpoint(
        secured_kafka: SecuredKafka, oauth_issuer: Issuer, no_proxies: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # A process that was not started by the CLI's checks (or whose variable changed): aiokafka
    # let the ValueError out of its start.
    async with token_endpoint(oauth_issuer, {CLIENT_ID: CLIENT_SECRET}) as endpoint:
        settings = Settings(
            kafka_bootstrap_servers=secured_kafka.bootstrap, kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="OAUTHBEARER", kafka_ssl_cafile=secured_kafka.cafile,
            kafka_oauth_token_url=endpoint.url, kafka_oauth_client_id=CLIENT_ID,
            kafka_oauth_client_secret=CLIENT_SECRET)
        no_proxies.setenv("HTTPS_PROXY", UNUSABLE)
        producer = DurableProducer(settings.kafka_connection(), timeout_s=5)
        with pytest.raises(KafkaConnectionError):  # as `serve` and the workers handle it
            await asyncio.wait_for(producer.start(), 30)
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert (f"token endpoint {endpoint.url} not asked: HTTPS_PROXY (or https_proxy) of the "
            "environment names a proxy httpx cannot use") in said, said
    assert PASSWORD not in said
    assert endpoint.requests == []
