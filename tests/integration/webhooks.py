"""Webhook requests to an ingest under test: signed bodies, provider fixtures, and an ingest
started with settings of its own."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import uvicorn

from ingest.app import create_app
from ingest.signing import sign
from switchboard.accounts import parse_accounts
from switchboard.serving import EmbeddedServer
from switchboard.settings import Settings
from switchboard.topics import MESSAGE_STATUS
from tests.fixtures import Fixture, load_fixtures
from tests.integration.conftest import DEFAULT_ACCOUNT, TEST_ACCOUNTS, IngestServer, account_with
from tests.kafka_helpers import TopicWatcher


def infobip_report(message_id: str, count: int = 1) -> bytes:
    """An Infobip delivery report of `count` results (ids `message_id-n` when more than one)."""
    return orjson.dumps({"results": [{
        "messageId": f"{message_id}-{n}" if count > 1 else message_id,
        "to": "41793026727", "sender": "InfoSMS",
        "doneAt": "2026-01-01T10:00:00.000+0000", "messageCount": 1,
        "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5,
                   "name": "DELIVERED_TO_HANDSET", "description": "delivered"},
        "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
                  "description": "No Error", "permanent": False}} for n in range(count)]})


def basic(secret: str = "ib-new-secret") -> dict[str, str]:
    """The headers of a JSON post to the `it-infobip` test account, signed with `secret`."""
    return sign("basic", secret, url="", body=b"", username="ib") | {
        "content-type": "application/json"}


FIXTURES = load_fixtures()  # every provider fixture, loaded once

# Bird's webhook APIs sign differently (README, "auth schemes"): the Channels API with
# bird-signature, the legacy MessageBird SMS and Conversations APIs with messagebird-jwt or the
# older messagebird-v1, the platform API with standard-webhooks. A Bird fixture's name starts with
# the API it comes from; the signature headers some keep name the scheme that made them.
BIRD_API_SCHEMES = {"channels": ("bird-signature",),
                    "conversations": ("messagebird-jwt", "messagebird-v1"),
                    "legacy": ("messagebird-jwt", "messagebird-v1"),
                    "platform": ("standard-webhooks",)}
SCHEME_OF_HEADER = {"messagebird-signature-jwt": "messagebird-jwt",
                    "webhook-signature": "standard-webhooks"}


def accounts_for(fixture: Fixture) -> list[str]:
    """The test accounts a fixture comes through: those using its provider's (or for Bird,
    its API's) scheme."""
    if fixture.provider != "bird":
        return [DEFAULT_ACCOUNT[fixture.provider]]
    api = fixture.name.split("_", 1)[0]
    headers = {name.lower() for name in fixture.spec["request"].get("headers", {})}
    named = [scheme for header, scheme in SCHEME_OF_HEADER.items() if header in headers]
    if "messagebird-signature" in headers:
        named.append("messagebird-v1" if api == "legacy" else "bird-signature")
    schemes = named or BIRD_API_SCHEMES.get(api, ("bird-signature",))  # else: of no API
    return [account_with("bird", scheme) for scheme in schemes]


async def send_signed(server: IngestServer, fixture: Fixture, account_name: str,
                      client: httpx.AsyncClient) -> httpx.Response:
    """The fixture's request as its provider sends it to this account: its own headers, any
    signature among them made anew with the account's secret (a kept one is for another)."""
    account = server.accounts.get(fixture.provider, account_name)
    assert account is not None
    spec = fixture.spec["request"]
    method = spec.get("method", "POST")
    query = spec.get("query", "")
    url = server.url(fixture.provider, account_name) + (f"?{query}" if query else "")
    body = fixture.body()
    headers = {name.lower(): value for name, value in spec.get("headers", {}).items()}
    headers |= sign(account.auth.scheme, account.auth.secret_values()[-1], url=url, body=body,
                    query=query, username=account.auth.username, header=account.auth.header)
    if spec.get("content_type"):
        headers["content-type"] = spec["content_type"]
    return await client.request(method, url, content=body if body else None, headers=headers)


async def ingest_answers(settings: Settings, kafka_bootstrap: str
                         ) -> tuple[httpx.Response, httpx.Response, list[Any]]:
    """/readyz, a signed webhook's answer, and the status events it left (watched through the
    plaintext listener), from an ingest started with `settings`."""
    app = create_app(settings, parse_accounts({"accounts": TEST_ACCOUNTS}))
    server = EmbeddedServer(uvicorn.Config(app, host="127.0.0.1", port=settings.http_port,
                                           log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    message_id = f"mtls-{uuid.uuid4()}"
    try:
        async with TopicWatcher(kafka_bootstrap, (MESSAGE_STATUS.name,)) as watcher:
            before = await watcher.snapshot()
            base = f"http://127.0.0.1:{settings.http_port}"
            async with httpx.AsyncClient(timeout=10) as client:
                for _ in range(200):  # bounded: 10 s to listen, log in to Kafka, read results
                    if server.started and app.state.producer.started \
                            and (await client.get(f"{base}/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                ready = await client.get(f"{base}/readyz")
                webhook = await client.post(
                    f"{base}/webhooks/ubiqio/it-ubiqio", params={"token": "ubiqio-token-123"},
                    json={"messageId": message_id, "status": 1})
            found = await watcher.records_since(before, timeout_s=3)
    finally:
        server.should_exit = True
        await task
    events = [orjson.loads(r.value) for r in found.get(MESSAGE_STATUS.name, [])]
    return ready, webhook, [e for e in events if e["message_id"] == message_id]
