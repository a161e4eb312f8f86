from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
import uvicorn

from ingest.app import create_app
from switchboard.accounts import Accounts, parse_accounts
from switchboard.localkafka import free_port
from switchboard.serving import EmbeddedServer
from switchboard.settings import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


# --- a real ingest server on 127.0.0.1, against the session's real broker ---------------------




# One account per provider (the scheme that provider uses by default) plus the other Bird ones.
TEST_ACCOUNTS = {
    "it-infobip": {"provider": "infobip", "auth": {"scheme": "basic", "username": "ib",
                                                   "secrets": ["ib-new-secret", "ib-old-secret"]}},
    "it-omnichat": {"provider": "infobip-omnichat",
                    "auth": {"scheme": "basic", "username": "oc", "secrets": ["oc-secret-1"]}},
    "it-bird": {"provider": "bird", "auth": {"scheme": "bird-signature",
                                             "secrets": ["bird-signing-key"]}},
    "it-messagebird": {"provider": "bird", "auth": {
        "scheme": "messagebird-jwt", "secrets": ["mb-signing-key-0123456789abcdef-32"]}},
    "it-messagebird-v1": {"provider": "bird", "auth": {"scheme": "messagebird-v1",
                                                       "secrets": ["mb-v1-signing-key"]}},
    "it-bird-platform": {"provider": "bird", "auth": {
        "scheme": "standard-webhooks", "secrets": ["whsec_aXQtYmlyZC1wbGF0Zm9ybS1zZWNyZXQ="]}},
    "it-webex": {"provider": "webex", "auth": {"scheme": "hub-signature",
                                               "secrets": ["webex-hub-secret"]}},
    "it-ubiqio": {"provider": "ubiqio", "auth": {"scheme": "token",
                                                 "secrets": ["ubiqio-token-123"]}},
}
DEFAULT_ACCOUNT = {
    "infobip": "it-infobip", "infobip-omnichat": "it-omnichat", "bird": "it-bird",
    "webex": "it-webex", "ubiqio": "it-ubiqio",
}


def provider_of(account: str) -> str:
    return cast(str, TEST_ACCOUNTS[account]["provider"])


def auth_of(account: str) -> dict[str, Any]:
    """The test account's `auth` table: scheme, secrets, username."""
    return cast(dict[str, Any], TEST_ACCOUNTS[account]["auth"])


def account_with(provider: str, scheme: str) -> str:
    """The test account of `provider` that authenticates with `scheme`."""
    [name] = [name for name in TEST_ACCOUNTS
              if provider_of(name) == provider and auth_of(name)["scheme"] == scheme]
    return name


@dataclass
class IngestServer:
    base_url: str
    accounts: Accounts
    server: uvicorn.Server

    def url(self, provider: str, account: str) -> str:
        return f"{self.base_url}/webhooks/{provider}/{account}"


async def start_ingest(bootstrap: str, accounts: Accounts, port: int | None = None,
                       **overrides: Any) -> tuple[IngestServer, asyncio.Task[None]]:
    port = port or free_port()
    settings = Settings(kafka_bootstrap_servers=bootstrap, http_port=port, **overrides)
    app = create_app(settings, accounts)
    server = EmbeddedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(300):  # ready: connected and (with Omnichat) the results read
            if server.started and (await client.get(f"{base_url}/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        else:
            server.should_exit = True
            raise AssertionError("ingest server did not become ready")
    return IngestServer(base_url, accounts, server), task


@pytest.fixture(scope="session")
async def ingest_server(kafka_bootstrap: str) -> AsyncIterator[IngestServer]:
    server, task = await start_ingest(kafka_bootstrap, parse_accounts({"accounts": TEST_ACCOUNTS}))
    try:
        yield server
    finally:
        server.server.should_exit = True
        await task
