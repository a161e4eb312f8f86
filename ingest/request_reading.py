"""What ingest reads of a webhook's request before it keeps it (WebhookHandler's part): its
credentials checked, over the URL as the provider sent it where the signature covers it, and
which of the account's secrets matched; and its body, read whole within max_body_bytes and the
body's deadline. Kept apart from the request's flow (ingest.webhooks), which decides when each
is done and answers what they refuse.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import ClientDisconnect, Request

from ingest import metrics
from ingest.auth import SignedRequest, signed_url, verify
from ingest.deadlines import BodyDeadlines
from switchboard.accounts import Account

# Schemes whose signature covers the URL: only then is the full URL worth building.
URL_SIGNING_SCHEMES = frozenset({"bird-signature", "messagebird-jwt"})


def _url_as_sent(request: Request) -> str:
    """The URL with its path as the provider encoded it: Starlette's `request.url` has the
    decoded path, so a signature over `/webhooks/bird/my%20shop` would never match."""
    try:
        url = request.url
    except UnicodeDecodeError:  # a query that is not UTF-8 (Starlette decodes it): no
        return ""               # provider signed that URL, so no signature matches ""
    raw_path = request.scope.get("raw_path")
    if not raw_path:
        return str(url)
    return str(url.replace(path=raw_path.decode("latin-1")))


class RequestReading:
    """WebhookHandler's reading of a request; the settings it reads are the handler's."""

    max_body_bytes: int
    deadlines: BodyDeadlines

    @staticmethod
    def _verify(request: Request, account: Account, query: str, headers: dict[str, str],
                repeated: frozenset[str], body: bytes) -> int:
        """The index of the account's secret that authenticates the request; else AuthError."""
        url = (signed_url(_url_as_sent(request), query, account.auth)
               if account.auth.scheme in URL_SIGNING_SCHEMES else "")
        return verify(SignedRequest(method=request.method, url=url, query=query, headers=headers,
                                    body=body, now=time.time(), repeated=repeated), account.auth)

    @staticmethod
    def _count_secret(account: Account, matched: int) -> None:
        if matched:  # not the first secret: an older one, during a rotation
            metrics.OLDER_SECRET.labels(account.provider, account.name).inc()

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None once it grows past the cap (we stop reading there); BodyTimeout
        if it has not arrived whole within the deadline."""
        task = self.deadlines.begin()
        try:
            return await self._receive_body(request)
        except asyncio.CancelledError:
            self.deadlines.raise_if_expired(task)
            raise
        finally:
            self.deadlines.end(task)

    async def _receive_body(self, request: Request) -> bytes | None:
        message = await request.receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")  # the usual case: one message, no loop
            return body if len(body) <= self.max_body_bytes else None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks: list[bytes] = [message.get("body", b"")]
        size = len(chunks[0])
        if size > self.max_body_bytes:
            return None
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
