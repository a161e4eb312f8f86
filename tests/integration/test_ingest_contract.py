"""What ingest guarantees for every provider and every auth scheme: the shared suite each
provider inherits, run through every test account (each scheme at least once)."""

from __future__ import annotations

import base64
import io
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from ingest.signing import sign
from switchboard.topics import DEAD_LETTER, MESSAGE_INBOUND, MESSAGE_STATUS, RAW
from tests.fixtures import Fixture
from tests.integration.conftest import TEST_ACCOUNTS, IngestServer, auth_of, provider_of
from tests.integration.webhooks import FIXTURES, accounts_for, send_signed
from tests.kafka_helpers import TopicWatcher

ACCOUNTS = sorted(TEST_ACCOUNTS)
TOKEN_ACCOUNTS = [name for name in ACCOUNTS if auth_of(name)["scheme"] == "token"]
WRONG_SECRET = "not-the-secret-0123456789abcdefghij"  # long enough for an HS256 key


def _wrong_secret(scheme: str) -> str:
    """A secret of the form the scheme takes, but not the account's."""
    if scheme == "standard-webhooks":
        return "whsec_" + base64.b64encode(WRONG_SECRET.encode()).decode()
    return WRONG_SECRET


def _first_with_events(account: str) -> Fixture:
    """The first JSON fixture with events that comes by POST through this account."""
    return next(f for f in FIXTURES if account in accounts_for(f) and f.spec.get("events")
                and f.spec["request"].get("method", "POST") == "POST"
                and f.spec["request"].get("content_type") == "application/json")


def _secrets(account: str) -> list[str]:
    secrets: list[str] = auth_of(account)["secrets"]
    return secrets


def _published_text(found: dict[str, list[Any]]) -> str:
    """Every value and header published, as one text to search."""
    return "\n".join(repr((record.value, record.headers))
                     for records in found.values() for record in records)


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


@pytest.mark.parametrize("name", ACCOUNTS)
async def test_bad_signature_is_401_publishes_nothing_and_logs_no_secret(
    name: str, ingest_server: IngestServer, kafka_bootstrap: str, log_output: io.StringIO
) -> None:
    provider = provider_of(name)
    fixture = _first_with_events(name)
    account = ingest_server.accounts.get(provider, name)
    assert account is not None
    url = ingest_server.url(provider, name)
    body = fixture.body()
    wrong = sign(account.auth.scheme, _wrong_secret(account.auth.scheme), url=url, body=body,
                 username=account.auth.username, header=account.auth.header)
    # Basic: the real password under another user name, which the request does carry.
    wrong_user = [sign("basic", secret, url=url, body=body, username="not-the-user")
                  for secret in _secrets(name) if account.auth.scheme == "basic"]
    app: Any = ingest_server.server.config.app
    refusals = app.state.handler.refusals
    refusals.flush()  # this test's refusals in a window of their own
    log_output.seek(0)
    log_output.truncate()
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        refused = [await client.post(url, content=body, headers=headers)
                   for headers in [{}, wrong, *wrong_user]]
        assert await watcher.snapshot() == before, "a rejected request published something"
    for response in refused:
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    refusals.flush()  # repeats of a reason are logged as a count once the window ends
    logged = log_output.getvalue()
    lines = [line for line in logged.splitlines() if "authentication failed" in line]
    repeats = [re.search(r"authentication failed: (\d+) more", line) for line in lines]
    assert sum(int(more.group(1)) if more else 1 for more in repeats) == len(refused)
    for secret in _secrets(name):
        assert secret not in logged
        assert all(secret not in response.text for response in refused)


@pytest.mark.parametrize("name", ACCOUNTS)
async def test_a_credential_header_sent_twice_is_401_and_publishes_nothing(
    name: str, ingest_server: IngestServer, kafka_bootstrap: str
) -> None:
    # The last copy was checked: a proxy in front taking the first saw other credentials.
    provider = provider_of(name)
    account = ingest_server.accounts.get(provider, name)
    assert account is not None
    url = ingest_server.url(provider, name)
    body = _first_with_events(name).body()
    signed = sign(account.auth.scheme, _secrets(name)[0], url=url, body=body,
                  username=account.auth.username, header=account.auth.header)
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        for repeated in signed:
            response = await client.post(url, content=body, headers=[
                (repeated, "a-first-copy"), *signed.items(),
                ("content-type", "application/json")])
            assert (response.status_code, response.json()) == (401, {
                "error": "unauthorized",
                "message": f"{repeated} header sent more than once"}), repeated
        assert await watcher.snapshot() == before, "a refused request published something"


@pytest.mark.parametrize("name", ACCOUNTS)
async def test_a_signed_request_is_stored_and_logs_no_secret(
    name: str, ingest_server: IngestServer, kafka_bootstrap: str, log_output: io.StringIO
) -> None:
    fixture = _first_with_events(name)
    # One more byte (JSON allows it) so this is not an exact repeat of the fixture's own test,
    # which ingest would answer as a duplicate without publishing.
    unique = Fixture(fixture.provider, fixture.name, fixture.path,
                     {**fixture.spec, "request": {**fixture.spec["request"],
                                                  "body": fixture.body().decode() + "\n"}})
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        response = await send_signed(ingest_server, unique, name, client)
        found = await watcher.records_since(before)
    assert response.status_code == 200, response.text
    assert len(found[RAW.name]) == 1
    events = found.get(MESSAGE_INBOUND.name, []) + found.get(MESSAGE_STATUS.name, [])
    assert len(events) == len(fixture.spec["events"])
    logged, published = log_output.getvalue(), _published_text(found)
    for secret in _secrets(name):
        assert secret not in logged and secret not in response.text
        assert secret not in published


@pytest.mark.parametrize("name", TOKEN_ACCOUNTS)
async def test_a_token_in_the_query_is_not_logged_or_kept_with_a_bad_body(
    name: str, ingest_server: IngestServer, kafka_bootstrap: str, log_output: io.StringIO
) -> None:
    secret = _secrets(name)[-1]
    url = f"{ingest_server.url(provider_of(name), name)}?token={secret}&kept=1"
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        response = await client.post(url, content=b"{not json, with a valid token",
                                     headers={"content-type": "application/json"})
        found = await watcher.records_since(before)
    assert response.status_code == 400, response.text  # authenticated, then refused
    assert set(found) == {RAW.name, DEAD_LETTER.name}
    # Whoever reads those topics must not be able to call the webhook URL as the provider;
    # the rest of the query is kept.
    assert orjson.loads(found[RAW.name][0].value)["query"] == "kept=1"
    logged = log_output.getvalue()
    assert "dead letter" in logged
    for secret in _secrets(name):
        assert secret not in logged and secret not in response.text
        assert secret not in _published_text(found)


@pytest.mark.parametrize("name", ACCOUNTS)
async def test_bad_body_is_a_400_and_kept_as_dead_letter(
    name: str, ingest_server: IngestServer, kafka_bootstrap: str
) -> None:
    fixture = Fixture(provider_of(name), "garbage", _first_with_events(name).path,
                      {"request": {"content_type": "application/json",
                                   "body": f"{{not json for {name}"}})
    async with TopicWatcher(kafka_bootstrap) as watcher, httpx.AsyncClient() as client:
        before = await watcher.snapshot()
        response = await send_signed(ingest_server, fixture, name, client)
        found = await watcher.records_since(before)
    assert response.status_code == 400
    assert response.json()["error"] == "unprocessable_payload" and response.json()["message"]
    assert set(found) == {RAW.name, DEAD_LETTER.name}


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
