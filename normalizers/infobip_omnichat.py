"""Infobip OMNI Chat (legacy `/omnichat/1`) webhooks -> message events. PARTLY INFERRED.

Omnichat posts to the `webhookUrl` of an application. The only published example is an
inbound text message (dev.infobip.com/omni-chat/receive-message):

    {"results": [{"from": <user key>, "to": <application key>, "receivedAt": ...,
                  "callbackData": ..., "message": {"type": "TEXT", "text": ...},
                  "price": {"pricePerMessage": 0, "currency": "EUR"}}],
     "messageCount": 1, "pendingMessageCount": 0}

Everything else is inferred from the send API (user keys, `messageId`, the Infobip `status`
object, message types TEXT/IMAGE/BUTTONS with POSTBACK payloads, `integrationType`) and from
Infobip's other report shapes of the same era (OMNI `results[]` with `status`/`error`/`doneAt`,
`seenAt` seen reports). Keys are compared without case, `_` or `-`. Shapes and mappings are
listed in docs/providers/infobip-omnichat.md; anything else is a NormalizeError naming the
keys looked for, so the payload is kept in the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from normalizers.base import Ack, JsonObject, NormalizeError, WebhookRequest, key_list, shown
from normalizers.bodies import parse_json_object
from normalizers.channels import channel
from normalizers.event_builders import each_event, inbound_event, status_event
from normalizers.fields import (
    Batch,
    first,
    geo_uri,
    int_field,
    loose_key,
    loose_keys,
    place_caption,
    text_field,
)
from normalizers.infobip import STATUS_BY_NAME, error_info, map_status, provider_status
from normalizers.prices import price
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, Media, MessageEvent, Price, ProviderStatus, Status

NAME = "infobip-omnichat"
# The send API takes no reference of ours, so reports cannot echo one: ingest fills
# correlation_id from the sender's results by provider message id (ingest/correlation.py).
ECHOES_CORRELATION = False

_ACK = Ack(status_code=200)

# `_query_channel` holds the webhook URL's label; `loose_keys` never contain "_".
_QUERY_CHANNEL = "_query_channel"
# Items of `results[]` (or messages/events/reports), else the body as one report. Only the
# channel passes from the envelope: its messageCount counts the batch.
_BATCH = Batch(list_keys=("results", "messages", "events", "reports"),
               carried_keys=("integrationtype", "channel", _QUERY_CHANNEL), max_depth=2)

# Event or message types that say something happened in a chat but carry no message.
_IGNORED_TYPES = frozenset({"typingstarted", "typingstopped", "typing", "test", "ping",
                            "verification", "webhookverification"})
_SEEN_EVENTS = frozenset({"seen", "read"})
_DELIVERY_EVENTS = frozenset({"delivery", "dlr", "status", "deliveryreport"})
_INBOUND_EVENTS = frozenset({"mo", "inbound", "message", "incoming"})
_POSTBACK_TYPES = frozenset({"postback", "button", "buttons", "buttonreply", "quickreply",
                             "quickreplies"})

# Infobip's status names (the infobip normalizer maps the rest of the status object), plus
# bare words some reports give. PENDING_TIME_VIOLATION, an SMS time-window status, is left to
# its group/prefix here (accepted), as this normalizer has always mapped it.
_STATUS_BY_NAME = {
    **{name: status for name, status in STATUS_BY_NAME.items()
       if name != "PENDING_TIME_VIOLATION"},
    "SEEN": Status.SEEN,
    "READ": Status.SEEN,
    "FAILED": Status.FAILED,
    "SENT": Status.SENT,
}
# Status and error object keys as Infobip spells them, by their `loose_key`.
_INFOBIP_KEYS = {loose_key(name): name for name in
                 ("id", "name", "groupId", "groupName", "description", "permanent")}
_FAILURES = frozenset({Status.FAILED, Status.UNDELIVERED, Status.REJECTED, Status.EXPIRED})


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    """One event per report, in order; typing indicators, pings and empty batches give none."""
    defaults = _query_defaults(request)
    reports = _BATCH.reports(parse_json_object(request.body), defaults)
    return each_event(request, reports, _normalize_report)


def acknowledge(request: WebhookRequest) -> Ack:
    """HTTP 200, what Infobip's webhooks expect ("your server returns this code if it accepts")."""
    return _ACK


# --- finding the reports ---------------------------------------------------------------------


def _query_defaults(request: WebhookRequest) -> JsonObject:
    """`?integrationType=FACEBOOK` (or `channel=`) on the webhook URL labels payloads without one.

    Omnichat sets one webhookUrl per application, and its inbound example names no channel.
    """
    if not request.query:
        return {}
    fields = loose_keys(request.query_fields)
    label = first(fields, "integrationtype", "channel")
    return {_QUERY_CHANNEL: label} if label is not None else {}


def _normalize_report(request: WebhookRequest, report: JsonObject) -> MessageEvent | None:
    event = _word(report.get("event")) or _word(report.get("eventtype"))
    message = _message_object(report)
    message_type = _word(message.get("type")) if message is not None else None
    if event in _IGNORED_TYPES or message_type in _IGNORED_TYPES:
        return None
    if event in _SEEN_EVENTS:
        return _seen_report(request, report)
    if event in _DELIVERY_EVENTS:
        return _delivery_report(request, report)
    if event in _INBOUND_EVENTS:
        return _inbound(request, report, message or {})
    # No (known) event name: Infobip's own rule, a report with a status is a delivery report.
    if report.get("status") not in (None, ""):
        return _delivery_report(request, report)
    if "seenat" in report and message is None:
        return _seen_report(request, report)
    if message is not None:
        return _inbound(request, report, message)
    raise NormalizeError(
        "not a recognised Omnichat webhook (its shape is partly inferred): expected "
        "'results' items with a 'message' object (inbound), a 'status' object (delivery "
        f"report) or 'seenAt' (seen report); got keys {key_list(report)}"
    )


def _message_object(report: JsonObject) -> JsonObject | None:
    """The inbound content: `message` as documented, or the report itself when flattened."""
    value = report.get("message")
    if isinstance(value, dict):
        return loose_keys(value)
    if isinstance(value, str) and value:
        return {"type": "TEXT", "text": value}
    if value not in (None, ""):
        raise NormalizeError(f"'message' should be an object, got {type(value).__name__}")
    if "status" not in report and any(key in report for key in ("text", "url", "payload")):
        return report
    return None


# --- status reports --------------------------------------------------------------------------


def _delivery_report(request: WebhookRequest, report: JsonObject) -> MessageEvent:
    status_obj = report.get("status")
    if isinstance(status_obj, dict):
        fields = _infobip_keys(status_obj)
        status = _map_status(fields)
        reported = provider_status(fields)
    elif isinstance(status_obj, str) and status_obj.strip():
        status = _map_status({"name": status_obj})
        reported = ProviderStatus.build(name=status_obj)
    else:
        raise NormalizeError("delivery report has no 'status' object "
                             "{groupId, groupName, id, name, description}")
    return status_event(
        request,
        channel=_channel(report),
        status=status,
        message_id=_message_id(report),
        correlation_id=text_field(report, "callbackdata"),
        sender=text_field(report, "from", "applicationkey", "sender"),
        recipient=text_field(report, "to", "userkey", "destination"),
        error=_error(report, status, reported),
        provider_status=reported,
        segments=int_field(report, "messagecount", "smscount"),
        price=_price(report),
        occurred_at=parse_time(first(report, "doneat", "sentat", "timestamp")),
    )


def _seen_report(request: WebhookRequest, report: JsonObject) -> MessageEvent:
    return status_event(
        request,
        channel=_channel(report),
        status=Status.SEEN,
        message_id=_message_id(report),
        correlation_id=text_field(report, "callbackdata"),
        sender=text_field(report, "from", "applicationkey", "sender"),
        recipient=text_field(report, "to", "userkey", "destination"),
        occurred_at=parse_time(first(report, "seenat", "timestamp")),
    )


def _message_id(report: JsonObject) -> str | None:
    message_id = text_field(report, "messageid", "id")
    if message_id is None and text_field(report, "callbackdata") is None:
        raise NormalizeError("report names no message (no 'messageId' and no 'callbackData')")
    return message_id


def _map_status(fields: JsonObject) -> Status:
    """The infobip normalizer's mapping; a bare status word without a group (`"status":
    "DELIVERED"`) is also looked up as a group name."""
    if first(fields, "groupName") is None and "name" in fields:
        fields = {**fields, "groupName": fields["name"]}
    return map_status(fields, _STATUS_BY_NAME)


def _error(report: JsonObject, status: Status, reported: ProviderStatus) -> ErrorInfo | None:
    """Infobip's error object, or None when it says there is none (id 0, NO_ERROR, group OK).
    An object with neither code nor description (`"error": {}`) says nothing, as for plain
    Infobip: it counts as no error object, so a failure still gets the status description."""
    value = report.get("error")
    permanent = False
    if isinstance(value, dict):
        error = error_info(_infobip_keys(value))
        if error is None or error.code is not None or error.description is not None:
            return error
        permanent = error.permanent
    elif value not in (None, ""):
        raise NormalizeError(f"'error' should be an object, got {type(value).__name__}")
    if status in _FAILURES:
        return ErrorInfo.build(description=reported.description, permanent=permanent)
    return None


# --- inbound messages ------------------------------------------------------------------------


def _inbound(request: WebhookRequest, report: JsonObject, message: JsonObject) -> MessageEvent:
    sender = text_field(report, "from", "userkey", "sender")
    if sender is None:
        raise NormalizeError("inbound message has no sender ('from' or 'userKey')")
    message_type = _word(message.get("type"))
    text = text_field(message, "text", "body")
    postback = _postback(message)
    if message_type in _POSTBACK_TYPES and postback is None:
        raise NormalizeError(f"{shown(message.get('type'))} message has no 'payload'")
    media: list[Media] = []
    url = text_field(message, "url", "mediaurl", "fileurl")
    if url is not None and message_type not in _POSTBACK_TYPES:
        # A LOCATION's url is its map link, which stands in for the place when there are no
        # coordinates: the place's name and address caption it, as they caption a geo: item.
        caption = (place_caption(message, "name", "address") if message_type == "location"
                   else text_field(message, "caption"))
        media.append(Media.build(url=url,
                                 content_type=text_field(message, "contenttype", "mimetype"),
                                 caption=caption))
    elif url is None and message_type not in _POSTBACK_TYPES:
        # A file it could not fetch: no media item (v1 needs a URL), but the words the
        # contact typed with it are kept, as add_file keeps them for every other provider,
        # after a text the message has beside them (the same words once).
        caption = text_field(message, "caption")
        if caption is not None and caption != text:
            text = caption if text is None else f"{text}\n{caption}"
    location = geo_uri(message)
    if location is not None and (message_type == "location" or not media):
        # coordinates say more than a map link; the place's name and address caption them
        media = [Media.build(url=location, caption=place_caption(message, "name", "address"))]
    if message_type is None and text is None and postback is None and not media:
        raise NormalizeError("inbound message has no 'type', 'text', 'url' or 'payload'")
    return inbound_event(
        request,
        channel=_channel(report),
        message_id=text_field(report, "messageid", "id"),
        sender=sender,
        recipient=text_field(report, "to", "applicationkey", "destination"),
        text=text,
        media=media,
        postback=postback,
        in_reply_to=text_field(report, "pairedmessageid", "inreplyto"),
        correlation_id=text_field(report, "callbackdata"),
        price=_price(report),
        occurred_at=parse_time(first(report, "receivedat", "timestamp")),
    )


def _postback(message: JsonObject) -> str | None:
    """The button payload: `payload`, or Facebook-style {postback|quickReply: {payload}}."""
    value = first(message, "payload", "postback", "quickreply")
    if isinstance(value, dict):
        return text_field(loose_keys(value), "payload")
    if value is None:
        return None
    return text_field(message, "payload", "postback", "quickreply")


# --- small field helpers ---------------------------------------------------------------------


def _infobip_keys(data: Mapping[str, Any]) -> JsonObject:
    """A status or error object with its keys spelled as Infobip does, however the report
    spelled them, for the infobip normalizer's mapping."""
    fields = loose_keys(data)
    return {name: fields[key] for key, name in _INFOBIP_KEYS.items() if key in fields}


def _word(value: Any) -> str | None:
    """A type or event name compared loosely: TYPING_STARTED == typing-started."""
    if not isinstance(value, str) or not value.strip():
        return None
    return "".join(ch for ch in value.lower() if ch.isalnum())


def _channel(report: JsonObject) -> str:
    """integrationType (FACEBOOK -> messenger, ...), channel, the URL's label, else unknown."""
    return channel(text_field(report, "integrationtype", "channel", _QUERY_CHANNEL))


def _price(report: JsonObject) -> Price | None:
    value = report.get("price")
    if not isinstance(value, dict):
        return None
    fields = loose_keys(value)
    return price(first(fields, "pricepermessage", "amount"), first(fields, "currency"))
