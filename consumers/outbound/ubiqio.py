"""Ubiqio client: a JWT from `POST {base_url}/mvapi/auth/token`, then `POST {base_url}/mvapi/
message/send` with `Authorization: Bearer <token>` (seed 000).

    token: {"clientId": ..., "clientSecret": ...} -> {"token": <JWT>}
    send:  {"accountId": ..., "toNumber": <to>, "message": ..., "templateId": ...,
            "priority": ..., "channel": "SMS" | "MMS", "clientRef": <command id>,
            "statusCallback": <webhook>, "imageUrl": ..., "caption": ...}

`statusCallback` is our guess at the name of the field seed 000 lists unnamed as "URL for status
callbacks"; `status_callback_field` renames it, or (empty) leaves it out.

The token is cached per account and fetched again shortly before the JWT expires (its `exp`
claim, read without verifying the signature: it is Ubiqio's token, not ours to check; with an
`iat`, no later than its lifetime counted from its arrival, so our clock need not agree with
Ubiqio's); a token without a readable `exp`, or without an `iat` and expired by our clock as it
arrives, is used until Ubiqio answers 401. A 401 on send fetches a new token once and sends
again; a second 401 is a permanent error. Concurrent sends share one token request, and
its failure: the sends that waited for it fail with it (and retry as the sender decides). A
token request takes a place in its origin's room for requests in flight (limits.room_for), as a
send request does: the same base_url, so the same origin.

- channel: `MMS` when the command has an image, else `SMS` (a text reply to an MMS, whose
  channel reads `mms`, goes as SMS: an MMS without `imageUrl` has nothing to carry); other
  channels are a permanent error. One image per message (`imageUrl`, its caption as
  `caption`, and as `message` when the command has no text: `message` is required); more
  media, or media that is not an image, is a permanent error.
- buttons: appended to the text ("1) Yes 2) No"); the answer comes back as plain text.
- in_reply_to: not supported by the API; ignored.
- clientRef (= command id) is the correlation id of the status webhooks.

Response: read in consumers.outbound._ubiqio_answers (no doc shows a success body).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from pydantic import Field

from consumers.handling import slot_given_up
from consumers.outbound._ubiqio_answers import error_text, read_response, unauthorized
from consumers.outbound.base import OutboundConfig, SendContext, SendError, SendReceipt
from consumers.outbound.content import guess_content_type, refuse, refuse_media, with_choices
from consumers.outbound.http_errors import classify_http_error, post_json
from consumers.outbound.limits import WINDING_DOWN, Stopping, room_for
from consumers.outbound.provider_client import ProviderClient
from consumers.outbound.responses import as_text, json_body, snippet, web_page
from switchboard.accounts import Secret
from switchboard.commands import OutboundCommand
from switchboard.events import Media
from switchboard.logs import replace_secret

NAME = "ubiqio"

AUTH_PATH = "/mvapi/auth/token"
SEND_PATH = "/mvapi/message/send"
# Fetch a new token this long before it expires (at most half its remaining lifetime).
REFRESH_MARGIN_S = 60.0
# RFC 6750's b64token, what an `Authorization: Bearer` header carries (a JWT is one).
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Config(OutboundConfig):
    """`[accounts.<name>.outbound]` for Ubiqio."""

    client_id: str
    client_secret: Secret
    account_id: str
    template_id: str
    priority: int = Field(default=1, ge=0, description="0 = high priority")
    # Seed 000 lists a per-message "URL for status callbacks" without its name: ours is a
    # guess, so it can be renamed, or left out (the template's webhook URL then reports).
    status_callback_field: str = Field(default="statusCallback",
                                       pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float | None  # epoch seconds; None: use until Ubiqio answers 401


class Client(ProviderClient[Config]):
    """Sends an account's commands through Ubiqio, holding the account's JWT."""

    def __init__(self, config: Config, http: httpx.AsyncClient, context: SendContext, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, http, context)
        self._clock = clock
        base = config.base_url.rstrip("/")
        self._token_url = base + AUTH_PATH
        self._send_url = base + SEND_PATH
        self._token: _Token | None = None
        # One token request at a time: concurrent sends wait for it instead of each fetching.
        self._token_lock = asyncio.Lock()
        # Token requests that failed, and the last one's error: the sends that waited for it
        # fail with it rather than each asking again in turn.
        self._failed_fetches = 0
        self._fetch_failure: SendError | None = None

    async def send(self, command: OutboundCommand) -> SendReceipt:
        payload = build_request(command, self._config, self._context.webhook_url)
        token = await self._valid_token()
        response = await self._send_with(payload, token)
        if unauthorized(response):
            token = await self._valid_token(rejected=token)
            response = await self._send_with(payload, token)
        return read_response(response)

    async def _send_with(self, payload: dict[str, Any], token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return await self._post(self._send_url, payload, headers)

    async def _valid_token(self, rejected: str | None = None) -> str:
        """The cached token unless it is due for refresh or was just `rejected` with a 401."""
        if (cached := self._cached(rejected)) is not None:
            return cached  # nothing to fetch: no wait for the lock
        failures, locked = self._failed_fetches, False
        try:
            # Waiting for another send's token request, this send's concurrency slot is
            # another record's (slot_given_up): a token request left unanswered would
            # otherwise hold a slot per waiting send of the account, up to all of them.
            async with slot_given_up():
                await self._token_lock.acquire()
                locked = True
            if (cached := self._cached(rejected)) is not None:
                return cached  # fetched by the send that held the lock
            if self._failed_fetches != failures and self._fetch_failure is not None:
                # The request it waited for failed: asked again by each waiting send in turn,
                # an endpoint timing out would hold the last of them a timeout per send. A
                # send whose token was `rejected` has called Ubiqio all the same (answered 401).
                raise _shared(self._fetch_failure, called=rejected is not None)
            self._token = None
            stopping = WINDING_DOWN.get()
            if stopping is not None and stopping.is_set():
                raise Stopping()  # the send would not be made: a token request only delays the stop
            # In its origin's room, as a send request is: a token endpoint that hangs would
            # otherwise hold a concurrency slot per account past the room. Not in the `try`: a
            # stop while waiting for room is no failure to share with the sends waiting here.
            async with room_for(self._token_url):
                try:
                    token = await self._fetch_token()
                except SendError as exc:
                    self._failed_fetches += 1
                    self._fetch_failure = exc
                    raise
            # No setting holds it, and only a JWT is masked by its shape: Ubiqio may quote the
            # Authorization header back in a refusal, which becomes the result's description.
            replace_secret(f"ubiqio token of {self._context.account}", token)
            self._token = _Token(token, token_refresh_at(token, self._clock()))
            return token
        finally:
            if locked:
                self._token_lock.release()

    def _cached(self, rejected: str | None) -> str | None:
        cached = self._token
        if cached is None or cached.value == rejected or self._due(cached):
            return None
        return cached.value

    def _due(self, token: _Token) -> bool:
        return token.refresh_at is not None and self._clock() >= token.refresh_at

    async def _fetch_token(self) -> str:
        credentials = {"clientId": self._config.client_id,
                       "clientSecret": self._config.client_secret.get_secret_value()}
        response = await post_json(self._http, self._token_url, credentials,
                                   headers={"Accept": "application/json"},
                                   timeout_s=self._config.timeout_s, idempotent=True)
        body = json_body(response)
        if not response.is_success:
            description = error_text(body) or snippet(response)
            raise classify_http_error(response, f"Ubiqio token request failed: {description}",
                                      idempotent=True)
        token = as_text(body.get("token")) if isinstance(body, dict) else None
        if token is None:
            # Its reason, where the 2xx gives one: a refusal of the credentials in a 2xx
            # ("success": false) otherwise read as no more than "no token".
            said = web_page(response, self._config.base_url) or error_text(body)
            raise SendError("Ubiqio token response has no token" + (f": {said}" if said else ""),
                            retryable=False, code="token_missing")
        if not _BEARER_TOKEN.fullmatch(token):
            # In the Authorization header it would fail each send, before a byte left (not
            # ASCII) or as it was being written (a line break), read as possibly sent.
            raise SendError("Ubiqio token response has no token a Bearer header can carry",
                            retryable=False, code="token_missing")
        return token


def _shared(failure: SendError, *, called: bool) -> SendError:
    """A token request's failure, for a send that waited for it: it made no token request,
    and `called` Ubiqio only if its send request was answered 401 before (results count
    provider calls as attempts)."""
    return SendError(failure.description, retryable=failure.retryable, code=failure.code,
                     retry_after_s=failure.retry_after_s, called=called,
                     maybe_sent=failure.maybe_sent, throttled=failure.throttled,
                     permanent=failure.permanent)


def token_refresh_at(token: str, now: float) -> float | None:
    """When to fetch a new token: shortly before the JWT expires; None if it has no `exp`.

    With an `iat`, no later than its lifetime (`exp` - `iat`) counted from `now`, when it
    arrived: `exp` read against our clock is off by as much as our clock is from Ubiqio's, and
    a token expired by ours as it arrives would be fetched again by every send, one after
    another. Without `iat`, `exp` is all there is; a token already past it here is used until
    Ubiqio answers 401."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    expires, issued = _number(claims.get("exp")), _number(claims.get("iat"))
    if expires is None:
        return None
    if issued is not None and issued < expires:
        # Whichever ends first: a token issued a while ago (handed out again) ends at its `exp`.
        lifetime_ends = now + (expires - issued)
        expires = lifetime_ends if expires <= now else min(expires, lifetime_ends)
    elif expires <= now:
        return None
    return expires - min(REFRESH_MARGIN_S, max(0.0, (expires - now) / 2))


def _number(value: Any) -> float | None:
    """A claim that is a number (NumericDate), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def build_request(command: OutboundCommand, config: Config,
                  webhook_url: str | None) -> dict[str, Any]:
    """The send request body; a permanent SendError if Ubiqio cannot carry the command."""
    channel = (command.channel or config.channel).upper()
    if channel not in ("SMS", "MMS"):
        refuse(f"Ubiqio sends SMS or MMS, not {channel.lower()!r}")
    image = _image(command.media)
    # `message` is required (and must not be empty): an image without text sends its caption
    # as the message too, and one with neither cannot be sent.
    text = command.text or (image.caption if image is not None else None) or ""
    if command.buttons:
        text = with_choices(text, command.buttons)
    if not text.strip():
        refuse("Ubiqio messages need text: give the command a text or the image a caption")
    payload: dict[str, Any] = {
        "accountId": config.account_id,
        "toNumber": command.to,
        "message": text,
        "templateId": config.template_id,
        "priority": config.priority,
        "channel": "MMS" if image is not None else "SMS",
        "clientRef": command.id,
    }
    if webhook_url and config.status_callback_field:
        payload[config.status_callback_field] = webhook_url
    if image is not None:
        payload["imageUrl"] = image.url
        if image.caption:
            payload["caption"] = image.caption
    return payload


def _image(media: Sequence[Media]) -> Media | None:
    if not media:
        return None
    if len(media) > 1:
        refuse(f"Ubiqio carries one image per message, got {len(media)} media items")
    content_type = guess_content_type(media[0])
    if not (content_type or "").lower().startswith("image/"):
        # Seed 000's only media field is `imageUrl` ("Image URL (MMS only)").
        refuse_media(f"Ubiqio MMS carries only images, not {content_type or media[0].url}",
                     "send it through an account on a channel that carries it")
    return media[0]
