"""switchboard_ingest_older_secret_total during a rotation: scraped at zero from the start for
an account with two secrets, and counting only requests that were accepted (authenticated,
their body taken whole), whichever scheme."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.requests import Request

from ingest.app import create_app
from ingest.deadlines import BodyDeadlines
from ingest.dedup import RecentRequests
from ingest.webhooks import WebhookHandler
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from tests.fakes import KeepingProducer

NEW = "the-new-password-123"
OLD = "the-old-password-123"


def _older_secret_count(account: str) -> float | None:
    return REGISTRY.get_sample_value("switchboard_ingest_older_secret_total",
                                     {"provider": "infobip", "account": account})


def _basic(password: str) -> tuple[bytes, bytes]:
    return b"authorization", b"Basic " + base64.b64encode(f"u:{password}".encode())


async def test_an_account_with_two_secrets_has_its_older_secret_series_at_zero_from_start(
        ) -> None:
    # Before, it was shown only once a request had used the old secret: an alert on "the old
    # secret is still used" missed that first one (rate() needs a sample before it), and one
    # on "no longer used" had nothing to look at.
    rotating, single = (f"{kind}-{uuid.uuid4().hex[:12]}" for kind in ("rotating", "single"))
    accounts = parse_accounts({"accounts": {
        rotating: {"provider": "infobip",
                   "auth": {"scheme": "basic", "username": "u", "secrets": [NEW, OLD]}},
        single: {"provider": "infobip",
                 "auth": {"scheme": "basic", "username": "u", "secrets": [NEW]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingest") as client:
        scraped = (await client.get("/metrics")).text  # before any webhook

    assert (f'switchboard_ingest_older_secret_total{{account="{rotating}",provider="infobip"}} '
            "0.0") in scraped
    assert single not in scraped.partition("switchboard_ingest_older_secret_total")[2] \
        .partition("# HELP")[0]  # one secret: nothing to rotate, no series that stays at 0


async def _answer(account: str, password: str, receive: Any, *,
                  max_body_bytes: int = 1_000_000, scheme: str = "basic",
                  method: str = "POST") -> int:
    """The status of one request to `account` (two secrets), given `password` in a Basic
    header, or for the token scheme in the URL."""
    accounts = parse_accounts({"accounts": {account: {
        "provider": "infobip",
        "auth": {"scheme": scheme, "username": "u", "secrets": [NEW, OLD]}}}})
    path = f"/webhooks/infobip/{account}"
    basic = scheme == "basic"
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": b"" if basic else f"token={password}".encode(),
        "scheme": "https", "server": ("127.0.0.1", 443),
        "headers": [(b"host", b"hooks.example"), (b"content-type", b"application/json"),
                    *([_basic(password)] if basic else [])],
        "path_params": {"provider": "infobip", "account": account},
    }
    handler = WebhookHandler(accounts=accounts, producer=KeepingProducer(),  # type: ignore[arg-type]
                             max_body_bytes=max_body_bytes, recent=RecentRequests(),
                             deadlines=BodyDeadlines(30.0))
    return (await handler.handle(Request(scope, receive))).status_code


def _body_in_chunks(chunk: bytes, count: int) -> Any:
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": chunk, "more_body": sent < count}
    return receive


async def _disconnects() -> dict[str, Any]:
    return {"type": "http.disconnect"}


@pytest.mark.parametrize(("refusal", "receive", "status"), [
    # No content-length: the body is found too large only as it is read, after the password.
    ("too large", _body_in_chunks(b" " * 1024, 20), 413),
    ("sender gone", _disconnects, 400),
])
async def test_a_request_refused_for_its_body_is_not_counted_as_the_older_secrets(
        refusal: str, receive: Any, status: int) -> None:
    # A Basic password is checked before the body is read: such a request was counted, and a
    # signed scheme's (checked once the body is whole) was not.
    account = f"refused-{uuid.uuid4().hex[:12]}"
    assert await _answer(account, OLD, receive, max_body_bytes=10_000) == status
    assert not _older_secret_count(account)  # 0, or no series


async def test_an_accepted_request_and_a_url_check_with_the_older_secret_are_counted() -> None:
    account = f"accepted-{uuid.uuid4().hex[:12]}"
    body = (b'{"results": [{"messageId": "m-1", "to": "41793026727", '
            b'"status": {"groupName": "DELIVERED"}}]}')
    assert await _answer(account, OLD, _body_in_chunks(body, 1)) == 200
    assert _older_secret_count(account) == 1.0
    assert await _answer(account, NEW, _body_in_chunks(body.replace(b"m-1", b"m-2"), 1)) == 200
    assert _older_secret_count(account) == 1.0
    # A provider checking its URL, token and all, still has the old one.
    checking = f"checking-{uuid.uuid4().hex[:12]}"
    assert await _answer(checking, OLD, _disconnects, scheme="token", method="GET") == 200
    assert _older_secret_count(checking) == 1.0
