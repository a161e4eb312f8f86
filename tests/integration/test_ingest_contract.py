"""What ingest guarantees for every provider: the shared suite each provider inherits."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import pytest

from ingest.signing import sign
from tests.fixtures import Fixture, load_fixtures
from tests.integration.conftest import DEFAULT_ACCOUNT, TEST_ACCOUNTS, IngestServer
from tests.integration.test_ingest_fixtures import send_signed
from tests.kafka_helpers import TopicWatcher

PROVIDERS = sorted(DEFAULT_ACCOUNT)


def _first_with_events(provider: str) -> Fixture:
    return next(f for f in load_fixtures(provider) if f.spec.get("events")
                and f.spec["request"].get("method", "POST") == "POST")


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged while the test runs, formatted exactly as in production."""
    root = logging.getLogger()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_signature_is_401_publishes_nothing_and_logs_no_secret(
    provider: str, ingest_server: IngestServer, kafka_bootstrap: str, log_output: io.StringIO
) -> None:
    fixture = _first_with_events(provider)
    name = DEFAULT_ACCOUNT[provider]
    account = ingest_server.accounts.get(provider, name)
    assert account is not None
    url = ingest_server.url(provider, name)
    body = fixture.body()
    wrong = sign(account.auth.scheme, "not-the-secret-0123456789", url=url, body=body,
                 username=account.auth.username, header=account.auth.header)
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        unsigned = await client.post(url, content=body)
        badly_signed = await client.post(url, content=body, headers=wrong)
        assert await watcher.snapshot() == before, "a rejected request published something"
    for response in (unsigned, badly_signed):
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    logged = log_output.getvalue()
    assert "authentication failed" in logged
    for secret in TEST_ACCOUNTS[name]["auth"]["secrets"]:  # type: ignore[index]
        assert secret not in logged and secret not in badly_signed.text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_body_is_a_400_and_kept_as_dead_letter(
    provider: str, ingest_server: IngestServer, kafka_bootstrap: str
) -> None:
    fixture = Fixture(provider, "garbage", _first_with_events(provider).path,
                      {"request": {"content_type": "application/json",
                                   "body": f"{{not json for {provider}"}})
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        response = await send_signed(ingest_server, fixture, DEFAULT_ACCOUNT[provider], client)
        found = await watcher.records_since(before)
    assert response.status_code == 400
    assert response.json()["error"] == "unprocessable_payload" and response.json()["message"]
    assert set(found) == {"switchboard.raw.v1", "switchboard.dead-letter.v1"}


async def test_unknown_account_and_provider_are_404(ingest_server: IngestServer) -> None:
    async with httpx.AsyncClient() as client:
        wrong_account = await client.post(ingest_server.url("infobip", "nobody"), content=b"{}")
        wrong_provider = await client.post(ingest_server.url("nope", "it-infobip"), content=b"{}")
        mismatched = await client.post(ingest_server.url("bird", "it-infobip"), content=b"{}")
    for response in (wrong_account, wrong_provider, mismatched):
        assert response.status_code == 404
        assert response.json()["error"] == "unknown_account"
    assert "no provider named 'nope'; known: bird, " in wrong_provider.json()["message"]


async def test_url_validation_head_and_get_answer_200(ingest_server: IngestServer) -> None:
    async with httpx.AsyncClient() as client:
        head = await client.head(ingest_server.url("webex", "it-webex"))
        get = await client.get(ingest_server.url("webex", "it-webex") + "/status")
    assert head.status_code == 200 and get.status_code == 200
