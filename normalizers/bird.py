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

from dataclasses import replace

from normalizers import _bird_channels, _bird_conversations, _bird_legacy, _bird_platform
from normalizers.base import DEFAULT_ACK, Ack, JsonObject, NormalizeError, WebhookRequest
from normalizers.bodies import is_form, parse_json_object, request_form_pairs
from switchboard.events import MessageEvent

NAME = "bird"

# The legacy SMS API expects exactly this answer to an inbound SMS (courier's MessageBird
# handler: "MB expects an 'OK' body"); status reports accept it too.
_LEGACY_ACK = Ack(status_code=200, body=b"OK", content_type="text/plain")

# The error codes our events carry when the contact opted out (the newer platform names it).
OPT_OUT_ERROR_CODES = frozenset({_bird_legacy.OPTED_OUT, "recipient_opted_out"})


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    """One event per Bird webhook (Bird never batches); the family is told by method and shape."""
    method = request.method.upper()
    if method in ("GET", "HEAD") or not request.body.strip():
        query = request.query.lstrip("?")
        if not query.strip():
            if method in ("GET", "HEAD"):
                return []  # MessageBird checks a status URL with a bare GET before using it
            raise NormalizeError("empty body and no query string; expected a Bird webhook")
        if len(query) != len(request.query):
            # Bird alone reads a query given with its `?` (a URL with `??`, or a query typed so
            # on the CLI) as if without it; query_pairs reads the query as it is.
            request = replace(request, query=query)
        return _bird_legacy.events(request, _bird_legacy.form_fields(request.query_pairs))
    if _is_form_body(request):
        fields = _bird_legacy.form_fields(request_form_pairs(request))
        return _bird_legacy.events(request, fields)
    return _json(request, parse_json_object(request.body))


def acknowledge(request: WebhookRequest) -> Ack:
    """`OK` as text for the legacy SMS API; the JSON APIs (B, C, D) take any 2xx."""
    return DEFAULT_ACK if _is_json_envelope(request) else _LEGACY_ACK


def _is_form_body(request: WebhookRequest) -> bool:
    if is_form(request):
        return True
    # Some legacy forwarders omit the content type; a JSON body never starts like a form.
    body = request.body.lstrip()
    if request.media_type == "application/json" or body[:1] in (b"{", b"["):
        return False
    return b"=" in body


def _is_json_envelope(request: WebhookRequest) -> bool:
    if request.method.upper() in ("GET", "HEAD") or request.body.lstrip()[:1] != b"{":
        return False
    try:
        data = parse_json_object(request.body)
    except NormalizeError:
        return False
    return (_bird_channels.is_envelope(data) or _bird_platform.is_envelope(data)
            or _bird_conversations.is_envelope(data))


def _json(request: WebhookRequest, data: JsonObject) -> list[MessageEvent]:
    if _bird_channels.is_envelope(data):
        return _bird_channels.events(request, data)
    if _bird_platform.is_envelope(data):
        return _bird_platform.events(request, data)
    if _bird_conversations.is_envelope(data):
        return _bird_conversations.events(request, data)
    return _bird_legacy.events(request, {str(key).lower(): value for key, value in data.items()})

