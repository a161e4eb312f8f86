"""Bird (formerly MessageBird) webhooks -> message events.

Bird sends four webhook generations, told apart by shape alone (headers only carry
authentication, which the ingest checks):

* A, the legacy MessageBird SMS API: flat fields. Status reports arrive as GET with everything
  in the query string; inbound SMS as a urlencoded form POST; Flow Builder can forward the
  same fields as JSON.
* B, the legacy MessageBird Conversations API: `{"type": "message.created", "contact",
  "conversation", "message"}`.
* C, the Bird Channels API: `{"service", "event": "<platform>.<kind>", "payload"}`.
* D, the Bird platform API (Standard Webhooks): `{"type": "sms.delivered", "timestamp", "data"}`.

See docs/providers/bird.md for the mappings and sources.

This module tells the formats apart; each is read by a private module of its own
(_bird_legacy, _bird_conversations, _bird_channels, _bird_platform): they share nothing but
the SMS error codes, which the Channels API relays from the legacy one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from normalizers import _bird_channels, _bird_conversations, _bird_legacy, _bird_platform
from normalizers.base import (
    DEFAULT_ACK,
    Ack,
    JsonObject,
    Normalized,
    NormalizeError,
    WebhookRequest,
)
from normalizers.bodies import UTF8_BOM, is_form, parse_json_object, request_form_pairs
from switchboard.events import MessageEvent

NAME = "bird"

# The legacy SMS API expects exactly this answer to an inbound SMS (courier's MessageBird
# handler: "MB expects an 'OK' body"); status reports accept it too.
_LEGACY_ACK = Ack(status_code=200, body=b"OK", content_type="text/plain")

ReadJson = Callable[[WebhookRequest, JsonObject], list[MessageEvent]]

# The error codes our events carry when the contact opted out (the newer platform names it).
OPT_OUT_ERROR_CODES = frozenset({_bird_legacy.OPTED_OUT, "recipient_opted_out"})


def normalize(request: WebhookRequest) -> Normalized:
    """One event per Bird webhook (Bird never batches); the family is told by method and shape,
    and answered as it expects: `OK` as text for the legacy SMS API, the default for the JSON
    APIs (B, C, D). A JSON envelope posted as a form is read, and answered, as a legacy form."""
    data = _json_body(request)
    if data is None:
        return Normalized(_legacy_fields_events(request), _LEGACY_ACK)
    read = _json_family(data)
    if read is None:
        return Normalized(_bird_legacy.events(request, {str(key).lower(): value
                                                        for key, value in data.items()}),
                          _LEGACY_ACK)
    return Normalized(read(request, data))


def acknowledge(request: WebhookRequest) -> Ack:
    """The answer `normalize` gives, for a repeat of a webhook already stored, which ingest
    answers without reading its events again: told by the same two steps, so the JSON body is
    parsed once more, on repeats only."""
    try:
        data = _json_body(request)
    except NormalizeError:  # not normalized either: answered with the refusal, not this
        return _LEGACY_ACK
    return DEFAULT_ACK if data is not None and _json_family(data) is not None else _LEGACY_ACK


def _json_body(request: WebhookRequest) -> JsonObject | None:
    """The JSON object Bird sent; None for the legacy SMS API's fields in the query (its
    status reports, by GET) or a form (NormalizeError: a body that is neither)."""
    if _in_query(request) or _is_form_body(request):
        return None
    return parse_json_object(request.body)


def _in_query(request: WebhookRequest) -> bool:
    return request.method.upper() in ("GET", "HEAD") or not request.body.strip()


def _legacy_fields_events(request: WebhookRequest) -> list[MessageEvent]:
    """The legacy SMS API's webhook from its query string or its form body."""
    if not _in_query(request):
        return _bird_legacy.events(request, _bird_legacy.form_fields(request_form_pairs(request)))
    query = request.query.lstrip("?")
    if not query.strip():
        if request.method.upper() in ("GET", "HEAD"):
            return []  # MessageBird checks a status URL with a bare GET before using it
        raise NormalizeError("empty body and no query string; expected a Bird webhook")
    if len(query) != len(request.query):
        # Bird alone reads a query given with its `?` (a URL with `??`, or a query typed so
        # on the CLI) as if without it; query_pairs reads the query as it is.
        request = replace(request, query=query)
    return _bird_legacy.events(request, _bird_legacy.form_fields(request.query_pairs))


def _is_form_body(request: WebhookRequest) -> bool:
    if is_form(request):
        return True
    # Some legacy forwarders omit the content type; a JSON body never starts like a form,
    # even after a byte order mark (parse_json_object reads JSON past one).
    body = request.body.lstrip()
    if body.startswith(UTF8_BOM):
        body = body[len(UTF8_BOM):].lstrip()
    if request.media_type == "application/json" or body[:1] in (b"{", b"["):
        return False
    return b"=" in body


def _json_family(data: JsonObject) -> ReadJson | None:
    """The reader of the JSON API (B, C or D) whose envelope `data` is; None for the legacy SMS
    API's flat fields (Flow Builder forwarding an SMS as JSON)."""
    if _bird_channels.is_envelope(data):
        return _bird_channels.events
    if _bird_platform.is_envelope(data):
        return _bird_platform.events
    if _bird_conversations.is_envelope(data):
        return _bird_conversations.events
    return None
