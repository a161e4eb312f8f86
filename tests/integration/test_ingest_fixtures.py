"""Every provider fixture, signed and sent to a real ingest server, lands correctly in Kafka."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ingest.signing import sign
from switchboard.records import conversation_key, raw_body
from switchboard.topics import DEAD_LETTER, MESSAGE_INBOUND, MESSAGE_STATUS, RAW
from tests.fixtures import Fixture, comparable, load_fixtures
from tests.integration.conftest import DEFAULT_ACCOUNT, IngestServer, account_with
from tests.kafka_helpers import TopicWatcher

FIXTURES = load_fixtures()

# Bird's webhook APIs sign differently (README, "auth schemes"): the Channels API with
# bird-signature, the legacy MessageBird SMS API with messagebird-jwt or the older
# messagebird-v1, the platform API with standard-webhooks. A Bird fixture's name starts with
# the API it comes from; the signature headers some keep name the scheme that made them.
BIRD_API_SCHEMES = {"channels": ("bird-signature",), "conversations": ("bird-signature",),
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


CASES = [pytest.param(fixture, account,
                      id=fixture.id if account == DEFAULT_ACCOUNT[fixture.provider]
                      else f"{fixture.id}@{account}")
         for fixture in FIXTURES for account in accounts_for(fixture)]


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


def _headers(record: Any) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers}


@pytest.mark.parametrize(("fixture", "account"), CASES)
async def test_signed_fixture_lands_in_kafka(fixture: Fixture, account: str,
                                             ingest_server: IngestServer,
                                             kafka_bootstrap: str) -> None:
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        response = await send_signed(ingest_server, fixture, account, client)
        found = await watcher.records_since(before)

    spec = fixture.spec["request"]
    if spec.get("method") in ("GET", "HEAD") and not spec.get("query"):
        # A URL check (Webex, MessageBird): answered 200, nothing to keep.
        assert response.status_code == 200
        assert not found, f"a URL check published {list(found)}"
        return

    assert len(found.get(RAW.name, [])) == 1, "every authenticated request is kept raw"
    raw = orjson.loads(found[RAW.name][0].value)
    assert raw["provider"] == fixture.provider and raw["account"] == account
    assert raw_body(raw) == fixture.body()

    if "error" in fixture.spec:
        assert response.status_code in (400, 415), response.text
        assert response.json()["error"] in ("unprocessable_payload", "unsupported_media_type")
        dead = found.get(DEAD_LETTER.name, [])
        assert len(dead) == 1 and orjson.loads(dead[0].value)["payload"]["id"] == raw["id"]
        assert not found.get(MESSAGE_INBOUND.name) and not found.get(MESSAGE_STATUS.name)
        return

    assert response.status_code == 200, response.text
    expected = fixture.spec["events"]
    records = found.get(MESSAGE_INBOUND.name, []) + found.get(MESSAGE_STATUS.name, [])
    assert len(records) == len(expected)
    published = {orjson.loads(r.value)["id"]: r for r in records}
    for want in ({**event, "account": account} for event in expected):
        matches = [r for r in published.values()
                   if comparable(orjson.loads(r.value), keep_id=False)
                   == comparable(want, keep_id=False)]
        assert matches, f"no published event matches {want}"
        record = matches[0]
        event = orjson.loads(record.value)
        wanted_topic = MESSAGE_INBOUND if event["type"] == "message.inbound" else MESSAGE_STATUS
        assert record.topic == wanted_topic.name
        contact = event["from"] if event["direction"] == "inbound" else event["to"]
        assert record.key == conversation_key(fixture.provider, account, contact)
        headers = _headers(record)
        assert headers["ce_specversion"] == "1.0" and headers["ce_id"] == event["id"]
        assert headers["ce_type"] == f"dev.switchboard.{event['type']}.v1"
        assert headers["ce_source"] == f"/switchboard/{fixture.provider}/{account}"
        assert headers["content-type"] == "application/json"
        assert event["raw_id"] == raw["id"]
