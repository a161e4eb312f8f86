"""The base of every provider's `Client`: its state and the rate-limited POST each send
request goes through."""

from __future__ import annotations

from typing import Any, Generic

import httpx

from consumers.outbound.base import ConfigT, SendContext, SendError
from consumers.outbound.http_errors import post_json
from consumers.outbound.limits import (
    HELD_FOR,
    ORIGIN_ROOMS,
    SEND_PROGRESS,
    Held,
    TokenBucket,
)
from consumers.outbound.responses import web_page


class ProviderClient(Generic[ConfigT]):
    """The state every provider's `Client` keeps, and its rate-limited POST.

    Subclasses add their URL and headers and implement `send`; the bucket and the timeout
    are applied here so that no client can skip them.
    """

    def __init__(self, config: ConfigT, http: httpx.AsyncClient, context: SendContext) -> None:
        self._config = config
        self._http = http
        self._context = context
        self._bucket = TokenBucket(config.rate_per_s, config.burst)

    async def _post(self, url: str, payload: Any, headers: dict[str, str]) -> httpx.Response:
        """POST a send request once the account's rate limit allows it and its origin has room
        for one more request in flight (ORIGIN_ROOMS, in the sender)."""
        rooms = ORIGIN_ROOMS.get()
        room = rooms.of(url) if rooms is not None else None
        await self._bucket.acquire(room)
        try:
            return await self._post_now(url, payload, headers)
        finally:
            if room is not None:
                room.give()  # also when the call is cut short (cancelled) by the stop

    async def _post_now(self, url: str, payload: Any, headers: dict[str, str]) -> httpx.Response:
        held_for = HELD_FOR.get()
        if held_for is not None and held_for() > 0:
            raise Held()
        progress = SEND_PROGRESS.get()
        if progress is not None:
            if progress.before_request is not None:
                await progress.before_request()
            progress.awaiting_answer = True
        response = await post_json(self._http, url, payload, headers=headers,
                                   timeout_s=self._config.timeout_s)
        if progress is not None:  # not on a failure: the provider may have the message then
            progress.awaiting_answer = False
        if response.is_success and (problem := web_page(response, self._config.base_url)):
            raise SendError(problem, retryable=True, code="bad_response", maybe_sent=True)
        return response
