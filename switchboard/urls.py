"""The check every URL setting shares: one we call, or give a provider to call, must be an
absolute http(s) URL, or every request to it fails later, far from the setting."""

from __future__ import annotations

import httpx


def http_url(value: str, example: str) -> httpx.URL:
    """`value` parsed; ValueError saying what is wrong (`example` shows a good one)."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"must be an http(s) URL, e.g. {example}")
    return url


def origin(host: str, port: int) -> str:
    """`http://host:port`, an IPv6 address in brackets as a URL needs it: `http://:::8080`
    (SWITCHBOARD_HTTP_HOST=::) is no URL, so the simulator could never call ingest back."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
