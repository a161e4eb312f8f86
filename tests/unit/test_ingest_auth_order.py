"""Ingest checks credentials that are all in the headers before it reads a body."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from starlette.requests import Request

from ingest.auth import credential_headers
from ingest.deadlines import BodyDeadlines
from ingest.dedup import RecentRequests
from ingest.webhooks import WebhookHandler
from switchboard.accounts import AuthConfig, parse_accounts
from tests.fakes import KeepingProducer

BASIC = {"scheme": "basic", "username": "infobip", "secrets": ["webhook-password-123"]}
TOKEN = {"scheme": "token", "secrets": ["webhook-token-123"]}
SIGNED = {scheme: {"scheme": scheme, "secrets": [secret]} for scheme, secret in [
    ("bird-signature", "signing-key-123"), ("messagebird-v1", "signing-key-123"),
    ("messagebird-jwt", "signing-key-123"), ("hub-signature", "signing-key-123"),
    ("standard-webhooks", "whsec_" + base64.b64encode(b"standard-secret").decode()),
]}


async def _answer(auth: dict[str, Any], headers: list[tuple[bytes, bytes]],
                  query: bytes = b"") -> tuple[int, int]:
    """(status, body messages read) for one request to account `acme` (provider infobip),
    whose 1 MiB body arrives in 64 KiB messages."""
    accounts = parse_accounts({"accounts": {"acme": {"provider": "infobip", "auth": auth}}})
    path = "/webhooks/infobip/acme"
    scope: dict[str, Any] = {
        "type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
        "query_string": query, "scheme": "https", "server": ("127.0.0.1", 443),
        "headers": [(b"host", b"hooks.example"), (b"content-type", b"application/json"),
                    *headers],
        "path_params": {"provider": "infobip", "account": "acme"},
    }
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b" " * 65536, "more_body": read < 16}

    handler = WebhookHandler(accounts=accounts, producer=KeepingProducer(),  # type: ignore[arg-type]
                             max_body_bytes=1_500_000, recent=RecentRequests(),
                             deadlines=BodyDeadlines(30.0))
    response = await handler.handle(Request(scope, receive))
    return response.status_code, read


def _basic(password: str) -> tuple[bytes, bytes]:
    return b"authorization", b"Basic " + base64.b64encode(f"infobip:{password}".encode())


@pytest.mark.parametrize(("auth", "headers", "query"), [
    (BASIC, [], b""),
    (BASIC, [_basic("wrong-password")], b""),
    (TOKEN, [(b"x-switchboard-token", b"wrong-token")], b""),
    (TOKEN, [], b"token=wrong-token"),
])
async def test_a_caller_without_credentials_is_refused_before_its_body_is_read(
        auth: dict[str, Any], headers: list[tuple[bytes, bytes]], query: bytes) -> None:
    # Read first, a body up to max_body_bytes (1.5 MB at most) was taken in and held for every
    # such request, however slowly it came, only to be refused once it was all there.
    assert await _answer(auth, headers, query) == (401, 0)


@pytest.mark.parametrize(("auth", "headers", "query"), [
    (BASIC, [_basic("webhook-password-123")], b""),
    (TOKEN, [], b"token=webhook-token-123"),
])
async def test_an_authenticated_body_is_read_whole(
        auth: dict[str, Any], headers: list[tuple[bytes, bytes]], query: bytes) -> None:
    status, read = await _answer(auth, headers, query)
    assert read == 16 and status == 400  # read, then refused as a payload (blank JSON)


@pytest.mark.parametrize(("auth", "repeated"), [
    (auth, name) for auth in SIGNED.values()
    for name in credential_headers(AuthConfig.model_validate(auth))])
async def test_a_signed_request_with_a_credential_header_sent_twice_is_refused_unread(
        auth: dict[str, Any], repeated: str) -> None:
    # Refused all the same, but only once its body (up to max_body_bytes) had been read.
    headers = [(repeated.encode(), b"a-first-copy"), (repeated.encode(), b"a-second-copy")]
    assert await _answer(auth, headers) == (401, 0)


@pytest.mark.parametrize("auth", SIGNED.values())
async def test_a_signed_request_is_read_whole_before_its_signature_is_checked(
        auth: dict[str, Any]) -> None:
    # Any other header may come twice (proxies each add their x-forwarded-for).
    headers = [(b"x-forwarded-for", b"10.0.0.1"), (b"x-forwarded-for", b"10.0.0.2")]
    assert await _answer(auth, headers) == (401, 16)
