"""Header values uvicorn's parsers let through are still read defensively by ingest (another
ASGI server, or a proxy in process, may pass them on)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ingest.dedup import RecentRequests
from ingest.webhooks import WebhookHandler
from switchboard.accounts import parse_accounts

ACCOUNTS = parse_accounts({"accounts": {"acme": {
    "provider": "infobip",
    "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]}}}})


async def test_a_content_length_of_unicode_digits_is_no_crash() -> None:
    # "²".isdigit() is true, int("²") raises: this answered 500.
    scope: dict[str, Any] = {
        "type": "http", "method": "POST", "path": "/webhooks/infobip/acme",
        "raw_path": b"/webhooks/infobip/acme", "query_string": b"", "scheme": "http",
        "server": ("127.0.0.1", 8080), "headers": [(b"content-length", "²".encode("latin-1"))],
        "path_params": {"provider": "infobip", "account": "acme"},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    handler = WebhookHandler(accounts=ACCOUNTS, producer=None,  # type: ignore[arg-type]
                             max_body_bytes=1024, recent=RecentRequests())
    response = await handler.handle(Request(scope, receive))
    assert response.status_code == 401  # read on, then refused for its missing credentials
