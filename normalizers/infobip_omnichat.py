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
from urllib.parse import parse_qsl

from normalizers.base import (
    Ack,
    JsonObject,
    NormalizeError,
    WebhookRequest,
    channel,
    first,
    inbound_event,
    int_field,
    iter_objects,
    parse_json_object,
    parse_time,
    price,
    status_event,
    text_field,
)
from switchboard.events import ErrorInfo, Media, MessageEvent, Price, ProviderStatus, Status

NAME = "infobip-omnichat"

_ACK = Ack(status_code=200)

_LIST_KEYS = ("results", "messages", "events", "reports")
# `_query_channel` holds the webhook URL's label; `_normalised` keys never contain "_".
_QUERY_CHANNEL = "_query_channel"
_INHERITED = ("integrationtype", "channel", _QUERY_CHANNEL)

# Event or message types that say something happened in a chat but carry no message.
_IGNORED_TYPES = frozenset({"typingstarted", "typingstopped", "typing", "test", "ping",
                            "verification", "webhookverification"})
_SEEN_EVENTS = frozenset({"seen", "read"})
_DELIVERY_EVENTS = frozenset({"delivery", "dlr", "status", "deliveryreport"})
_INBOUND_EVENTS = frozenset({"mo", "inbound", "message", "incoming"})
_POSTBACK_TYPES = frozenset({"postback", "button", "buttons", "buttonreply", "quickreply",
                             "quickreplies"})

# Infobip status names whose meaning is narrower than their group's.
_STATUS_BY_NAME = {
    "MESSAGE_ACCEPTED": Status.ACCEPTED,
    "PENDING_ACCEPTED": Status.ACCEPTED,
    "PENDING_ENROUTE": Status.SENT,
    "PENDING_WAITING_DELIVERY": Status.SENT,
    "DELIVERED_TO_OPERATOR": Status.SENT,  # intermediate: the user's device has not confirmed
    "DELIVERED_TO_HANDSET": Status.DELIVERED,
    "SEEN": Status.SEEN,
    "READ": Status.SEEN,
    "FAILED": Status.FAILED,
    "SENT": Status.SENT,
}
_STATUS_BY_GROUP_NAME = {
    "ACCEPTED": Status.ACCEPTED,
    "PENDING": Status.ACCEPTED,  # an unknown PENDING_* name: we do not claim it left Infobip
    "UNDELIVERABLE": Status.UNDELIVERED,
    "DELIVERED": Status.DELIVERED,
    "EXPIRED": Status.EXPIRED,
    "REJECTED": Status.REJECTED,
}
_STATUS_BY_GROUP_ID = {0: Status.ACCEPTED, 1: Status.ACCEPTED, 2: Status.UNDELIVERED,
                       3: Status.DELIVERED, 4: Status.EXPIRED, 5: Status.REJECTED}
_STATUS_BY_PREFIX = (
    ("UNDELIVERABLE_", Status.UNDELIVERED),
    ("EXPIRED_", Status.EXPIRED),
    ("REJECTED_", Status.REJECTED),
    ("DELIVERED_", Status.DELIVERED),
    ("PENDING_", Status.ACCEPTED),
)
_DELIVERED_TO_OPERATOR_ID = 2
_FAILURES = frozenset({Status.FAILED, Status.UNDELIVERED, Status.REJECTED, Status.EXPIRED})
_MAX_DEPTH = 2


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    """One event per report, in order; typing indicators, pings and empty batches give none."""
    defaults = _query_defaults(request.query)
    events: list[MessageEvent] = []
    for index, report in enumerate(_reports(parse_json_object(request.body), defaults, 0)):
        try:
            event = _normalize_report(request, report)
        except NormalizeError as exc:
            raise NormalizeError(f"results[{index}]: {exc.reason}") from None
        if event is not None:
            events.append(event)
    return events


def acknowledge(request: WebhookRequest) -> Ack:
    """HTTP 200, what Infobip's webhooks expect ("your server returns this code if it accepts")."""
    return _ACK


# --- finding the reports ---------------------------------------------------------------------


def _query_defaults(query: str) -> JsonObject:
    """`?integrationType=FACEBOOK` (or `channel=`) on the webhook URL labels payloads without one.

    Omnichat sets one webhookUrl per application, and its inbound example names no channel.
    """
    if not query:
        return {}
    fields = _normalised(dict(parse_qsl(query, keep_blank_values=False)))
    label = first(fields, "integrationtype", "channel")
    return {_QUERY_CHANNEL: label} if label is not None else {}


def _reports(data: JsonObject, inherited: JsonObject, depth: int) -> list[JsonObject]:
    """Items of `results[]` (or messages/events/reports), else the body as one report.

    Only the channel passes from the envelope: its messageCount counts the batch.
    """
    fields = {**inherited, **_normalised(data)}
    if depth < _MAX_DEPTH:
        carried = {key: fields[key] for key in _INHERITED if key in fields}
        for key in _LIST_KEYS:
            value = fields.get(key)
            if isinstance(value, list):
                return [report for item in iter_objects(value, key)
                        for report in _reports(item, carried, depth + 1)]
    return [fields]


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
        f"report) or 'seenAt' (seen report); got keys {_key_list(report)}"
    )


def _message_object(report: JsonObject) -> JsonObject | None:
    """The inbound content: `message` as documented, or the report itself when flattened."""
    value = report.get("message")
    if isinstance(value, dict):
        return _normalised(value)
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
        fields = _normalised(status_obj)
        status = _map_status(fields)
        provider_status = ProviderStatus(
            code=_code(fields),
            name=text_field(fields, "name"),
            group=text_field(fields, "groupname", "groupid"),
            description=text_field(fields, "description"),
        )
    elif isinstance(status_obj, str) and status_obj.strip():
        status = _map_status({"name": status_obj})
        provider_status = ProviderStatus(name=status_obj)
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
        error=_error(report, status, provider_status),
        provider_status=provider_status,
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
    """As the infobip normalizer: specific name, SCHEDULED, group (name, id), name prefix."""
    name = (text_field(fields, "name") or "").upper()
    if name in _STATUS_BY_NAME:
        return _STATUS_BY_NAME[name]
    if "SCHEDULED" in name:
        return Status.SCHEDULED
    group_name = (text_field(fields, "groupname") or "").upper()
    group = _STATUS_BY_GROUP_NAME.get(group_name or name)
    if group is None:
        group_id = _number(fields.get("groupid"))
        group = _STATUS_BY_GROUP_ID.get(group_id) if group_id is not None else None
    if group is Status.DELIVERED and not name \
            and _number(fields.get("id")) == _DELIVERED_TO_OPERATOR_ID:
        return Status.SENT
    if group is not None:
        return group
    for prefix, status in _STATUS_BY_PREFIX:
        if name.startswith(prefix):
            return status
    return Status.UNKNOWN


def _error(report: JsonObject, status: Status, provider_status: ProviderStatus
           ) -> ErrorInfo | None:
    """Infobip's error object, or None when it says there is none (id 0, NO_ERROR, group OK)."""
    value = report.get("error")
    if isinstance(value, dict):
        fields = _normalised(value)
        name = text_field(fields, "name")
        error_id = _number(fields.get("id"))
        no_error = error_id == 0 or (name or "").upper() == "NO_ERROR" or (
            error_id is None and _number(fields.get("groupid")) == 0)
        if no_error:
            return None
        return ErrorInfo(code=_code(fields), description=text_field(fields, "description") or name,
                         permanent=fields.get("permanent") is True)
    if value not in (None, ""):
        raise NormalizeError(f"'error' should be an object, got {type(value).__name__}")
    if status in _FAILURES:
        return ErrorInfo(description=provider_status.description)
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
        raise NormalizeError(f"{message.get('type')!r} message has no 'payload'")
    media: list[Media] = []
    url = text_field(message, "url", "mediaurl", "fileurl")
    if url is not None and message_type not in _POSTBACK_TYPES:
        media.append(Media(url=url,
                           content_type=text_field(message, "contenttype", "mimetype"),
                           caption=text_field(message, "caption")))
    location = _location_url(message)
    if location is not None and (message_type == "location" or not media):
        media = [Media(url=location)]  # coordinates say more than a map link
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
        return text_field(_normalised(value), "payload")
    if value is None:
        return None
    return text_field(message, "payload", "postback", "quickreply")


def _location_url(message: JsonObject) -> str | None:
    """A shared location as a `geo:` URI (RFC 5870), as the infobip normalizer does."""
    latitude, longitude = message.get("latitude"), message.get("longitude")
    if _is_coordinate(latitude) and _is_coordinate(longitude):
        return f"geo:{latitude},{longitude}"
    return None


def _is_coordinate(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- small field helpers ---------------------------------------------------------------------


def _normalised(data: Mapping[str, Any]) -> JsonObject:
    return {key.replace("_", "").replace("-", "").lower(): value for key, value in data.items()}


def _word(value: Any) -> str | None:
    """A type or event name compared loosely: TYPING_STARTED == typing-started."""
    if not isinstance(value, str) or not value.strip():
        return None
    return "".join(ch for ch in value.lower() if ch.isalnum())


def _channel(report: JsonObject) -> str:
    """integrationType (FACEBOOK -> messenger, ...), channel, the URL's label, else unknown."""
    return channel(text_field(report, "integrationtype", "channel", _QUERY_CHANNEL))


def _number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _code(fields: JsonObject) -> str | None:
    """The `id` as a string ("5" whether the JSON said 5 or "5")."""
    number = _number(fields.get("id"))
    return str(number) if number is not None else text_field(fields, "id")


def _price(report: JsonObject) -> Price | None:
    value = report.get("price")
    if not isinstance(value, dict):
        return None
    fields = _normalised(value)
    return price(first(fields, "pricepermessage", "amount"), first(fields, "currency"))


def _key_list(report: JsonObject) -> str:
    keys = sorted(report)
    shown = ", ".join(repr(key[:40]) for key in keys[:12])
    return f"[{shown}{', ...' if len(keys) > 12 else ''}]"
