"""What every provider normalizer starts from: the request it reads, the answer it gives,
and the error it raises (with the helpers that keep error reasons short).

Normalizers are pure: bytes and request metadata in, events out. No I/O, no clocks (the
receive time comes in with the request), so they are trivially testable and replayable. The
shared parsing helpers live beside this module, one theme each: bodies, fields, times, prices,
channels and event_builders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from switchboard.events import MessageEvent

JsonObject = dict[str, Any]


class NormalizeError(Exception):
    """The payload is not something this provider's normalizer understands.

    `reason` is shown to humans (HTTP error bodies, dead-letter records, the CLI), so it says
    what was expected, never just "invalid".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One webhook call as received, with the context a normalizer may need."""

    provider: str
    account: str
    body: bytes
    received_at: datetime
    raw_id: str
    content_type: str = "application/json"
    # The query string as ASGI gives it (the CLI hands a typed one on the same way): its bytes
    # decoded as Latin-1, %-escapes kept. Read its fields with query_fields or query_pairs,
    # which give the UTF-8 text; normalizers look at this raw form only to see if there is one.
    query: str = ""
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def query_fields(self) -> dict[str, str]:
        """The query string's fields as UTF-8 text, `+` and %-escapes decoded; a repeated key
        keeps its last value. Reading the raw `query` would mangle raw UTF-8 bytes."""
        return dict(self.query_pairs)

    @property
    def query_pairs(self) -> list[tuple[str, str]]:
        """The query string's fields in order, repeated keys all kept (for providers that repeat
        a key on purpose, as Bird does with media URLs); what query_fields is built from."""
        # Imported here: bodies imports this module. Computed on access, not in __init__: most
        # requests never read their query, and one is built for every webhook.
        from normalizers.bodies import form_pairs, query_text

        return form_pairs(query_text(self.query))

    @property
    def media_type(self) -> str:
        """The content type without parameters, lower case (`application/json`)."""
        content_type = self.content_type
        if content_type in _PLAIN_MEDIA_TYPES:  # already in that form: nothing to strip
            return content_type
        return content_type.split(";", 1)[0].strip().lower()


# Content types providers send as they are (no parameters, lower case): media_type returns them.
_PLAIN_MEDIA_TYPES = frozenset({
    "application/json", "application/xml", "text/xml", "application/x-www-form-urlencoded",
})


@dataclass(frozen=True, slots=True)
class Ack:
    """The success answer a provider expects once its webhook is safely stored."""

    status_code: int = 200
    body: bytes = b'{"ok":true}'
    content_type: str = "application/json"


DEFAULT_ACK = Ack()


class Normalized(list[MessageEvent]):
    """A webhook's events with the answer they were read with: what `normalize` hands back when
    the answer depends on the body (Bird's legacy SMS API wants `OK`), so the body is read
    once. A list, so every reader of the events (replay, the CLI, the tests) reads it as one."""

    __slots__ = ("ack",)

    def __init__(self, events: Iterable[MessageEvent] = (), ack: Ack = DEFAULT_ACK) -> None:
        super().__init__(events)
        self.ack = ack


def key_list(data: Mapping[str, Any]) -> str:
    """The payload's keys for an error message, shortened: bodies can be anything."""
    keys = sorted(data)
    shown = ", ".join(repr(key[:40]) for key in keys[:12])
    return f"[{shown}{', ...' if len(keys) > 12 else ''}]"


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` for an error reason, cut to about `limit` characters: values come from
    webhooks and reasons go to HTTP answers, logs and dead-letter records."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."
