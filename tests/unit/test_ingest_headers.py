"""Header values and query bytes uvicorn's parsers refuse are still read defensively by ingest
(another ASGI server, or a proxy in process, may pass them on)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from ingest.deadlines import BodyDeadlines
from ingest.dedup import RecentRequests
from ingest.webhooks import WebhookHandler
from switchboard.accounts import parse_accounts


async def _status(auth: dict[str, Any], method: str, headers: list[tuple[bytes, bytes]],
                  query: bytes = b"") -> int:
    """The answer's status to one request for account `acme` (provider infobip, or bird for
    the URL-signing schemes), straight through the handler (no HTTP parser in between)."""
    provider = "bird" if auth["scheme"] in ("bird-signature", "messagebird-jwt") else "infobip"
    accounts = parse_accounts({"accounts": {"acme": {"provider": provider, "auth": auth}}})
    path = f"/webhooks/{provider}/acme"
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": query, "scheme": "https", "server": ("127.0.0.1", 443),
        "headers": [(b"host", b"hooks.example"), *headers],
        "path_params": {"provider": provider, "account": "acme"},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    handler = WebhookHandler(accounts=accounts, producer=None,  # type: ignore[arg-type]
                             max_body_bytes=1024, recent=RecentRequests(),
                             deadlines=BodyDeadlines(30.0))
    return (await handler.handle(Request(scope, receive))).status_code


async def test_a_content_length_of_unicode_digits_is_no_crash() -> None:
    # "²".isdigit() is true, int("²") raises: this answered 500.
    basic = {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]}
    status = await _status(basic, "POST", [(b"content-length", "²".encode("latin-1"))])
    assert status == 401  # read on, then refused for its missing credentials


@pytest.mark.parametrize(("digits", "status"), [
    ("9" * 5000, 413), ("9" * 20, 413),
    ("0" * 5000 + "2", 401),  # 2 bytes: read on, then refused for its missing credentials
])
async def test_a_content_length_of_thousands_of_digits_is_no_crash(
        digits: str, status: int) -> None:
    # int() refuses more than 4,300 digits: this answered 500 (uvicorn's parsers refuse such a
    # header; another server or an in-process proxy may pass it on).
    basic = {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]}
    assert await _status(basic, "POST", [(b"content-length", digits.encode())]) == status


@pytest.mark.parametrize("scheme", ["bird-signature", "messagebird-jwt"])
async def test_a_query_that_is_not_utf8_is_refused_not_a_crash(scheme: str) -> None:
    # Rebuilding the signed URL read `request.url`, which decodes the query as UTF-8: an
    # unauthenticated request answered 500.
    signed = {"scheme": scheme, "secrets": ["signing-key-123"]}
    assert await _status(signed, "GET", [], query=b"id=\xff") == 401


async def test_a_signature_timestamp_of_hundreds_of_digits_is_refused_not_a_crash() -> None:
    # Compared with the clock as a float, it raised OverflowError: an unsigned request got a 500.
    signed = {"scheme": "bird-signature", "secrets": ["signing-key-123"]}
    headers = [(b"messagebird-request-timestamp", b"9" * 400),
               (b"messagebird-signature", b"eA==")]
    assert await _status(signed, "POST", headers) == 401
