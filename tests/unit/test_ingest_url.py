"""The URL a URL-signing provider signed is rebuilt with the path as it was sent."""

from __future__ import annotations

from starlette.requests import Request

from ingest.auth import signed_url
from ingest.request_reading import _url_as_sent
from switchboard.accounts import AuthConfig


def _request(path: str, raw_path: bytes, query: bytes) -> Request:
    return Request({
        "type": "http", "method": "POST", "scheme": "https", "server": ("10.0.0.5", 443),
        "path": path, "raw_path": raw_path, "query_string": query, "root_path": "",
        "headers": [(b"host", b"hooks.example")],
    })


def test_the_path_keeps_the_providers_percent_encoding() -> None:
    request = _request("/webhooks/bird/my shop", b"/webhooks/bird/my%20shop", b"a=1&b=%2B")
    assert _url_as_sent(request) == "https://hooks.example/webhooks/bird/my%20shop?a=1&b=%2B"


def test_behind_a_proxy_the_public_url_replaces_scheme_host_and_path() -> None:
    request = _request("/webhooks/bird/shop", b"/webhooks/bird/shop", b"id=7")
    config = AuthConfig.model_validate({"scheme": "bird-signature", "secrets": ["signing-key"],
                                        "public_url": "https://public.example/bird/shop"})
    assert signed_url(_url_as_sent(request), "id=7", config) == \
        "https://public.example/bird/shop?id=7"
